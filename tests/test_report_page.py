"""Validation reports as HTML pages for producers (issue 15, item 6): ``opendepot validate
--html`` and the validate function write, beside each JSON report, a standalone page naming
each issue's line, column and value, with the real lines of the file around it."""

from __future__ import annotations

import codecs
import gzip
import json
import re
import tracemalloc
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import HOSP, Pipeline
from opendepot.cli import main
from opendepot.issues import CATALOGUE
from opendepot.site import report_page
from opendepot.site.report_page import (
    AROUND,
    EXCERPTS,
    LINE_CHARS,
    TITLES_FR,
    WARNING_EXCERPTS,
    html_key,
    read_lines,
    report_html,
    wanted_lines,
)

INCID = "covid-hospit-incid-reg"
NOV = "donnees-hospitalieres-covid19-2020-11-07-19h00.csv"
MIRROR = "opencovid19-fr-mirror/2020-03-25_8b00bef/covid_hospit.csv"
INCID_2022 = "covid-hospit-incid-reg-2022-03-11-19h00.csv"  # cp1252, 723 rows with reg 'NA'
VOID = {"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr"}


# ------------------------------------------------------------------------- reading the page


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str, **attrs: str) -> list[Node]:
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if c.tag == tag and all(
                        v in c.attrs.get(k.rstrip("_"), "").split() if k == "class_"
                        else c.attrs.get(k) == v for k, v in attrs.items()):
                    out.append(c)
                out += c.all(tag, **attrs)
        return out


class Tree(HTMLParser):
    """The page as a tree; raises on an end tag that closes nothing open (not well formed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: bytes) -> Node:
    tree = Tree()
    tree.feed(page.decode("utf-8"))
    tree.close()
    assert [n.tag for n in tree.stack] == ["#document"], "elements left open"
    return tree.root


@dataclass
class Excerpt:
    rows: dict[int, str]
    """Every line of the excerpt showing this line, as shown."""
    flags: list[str]
    """Links to the issues of this line."""
    marked: list[str]
    """The values marked in this line."""


def excerpts(root: Node) -> dict[int, Excerpt]:
    """Each issue line an excerpt shows, by its number."""
    out: dict[int, Excerpt] = {}
    for article in root.all("article", class_="excerpt-block"):
        rows, current = {}, {}
        for tr in article.all("table", class_="excerpt")[0].all("tbody")[0].all("tr"):
            number = int(tr.all("th")[0].text())
            text, flags = tr.all("td")
            rows[number] = text.text().removeprefix("(ligne signalée) ")
            if "current" in tr.attrs.get("class", "").split():
                assert tr.attrs["id"] == f"ligne-{number}"
                current[number] = ([a.attrs["href"] for a in flags.all("a")],
                                   [m.text() for m in text.all("mark")])
            else:
                assert not flags.all("a") and not text.all("mark")
        assert current and min(rows) == 1  # the header line first
        for number, (flags, marked) in current.items():
            assert number not in out  # excerpts do not overlap
            out[number] = Excerpt(rows, flags, marked)
    return out


def listed(root: Node) -> list[tuple[str, str, str]]:
    """(line, column, value) of every row of the issue tables, in page order."""
    return [row[:3] for row in issue_rows(root).values()]


def issue_rows(root: Node) -> dict[str, tuple[str, str, str, str | None]]:
    """Every row of the issue tables by its id: line, column, value, the excerpt it links to."""
    out = {}
    for table in root.all("table", class_="issues"):
        for tr in table.all("tbody")[0].all("tr"):
            cells = tr.all("td")
            column = re.sub(r"\s*\(n° \d+\)$", "", cells[1].text())
            link = cells[0].all("a")
            out[tr.attrs["id"]] = (cells[0].text(), column, cells[2].text(),
                                   link[0].attrs["href"] if link else None)
    return out


def run_cli(path: Path, dataset: str, out: Path, capsys: pytest.CaptureFixture[str]
            ) -> tuple[int, dict[str, Any], Node]:
    """``opendepot validate FILE --dataset D --json --html OUT``: exit code, JSON, page."""
    code = main(["validate", str(path), "--dataset", dataset, "--json", "--html", str(out)])
    captured = capsys.readouterr()
    assert f"HTML report written to {out}" in captured.err
    return code, json.loads(captured.out), parse(out.read_bytes())


def source_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    return path.read_bytes().decode(encoding).splitlines()


def assert_excerpts_are_the_file(page: Node, report: dict[str, Any], lines: list[str]) -> int:
    """Every issue line shown is the file's line, with the lines around it and the header as
    in the file; the lines shown are those of the first issues; each issue row links to its
    line. Returns how many issue lines are shown."""
    shown = excerpts(page)
    rows = issue_rows(page)
    errors = report["tasks"][0]["errors"]
    warnings = report["opendepot"]["warnings"]
    seen: set[int] = set()
    for kind, items, most in (("erreur", errors, EXCERPTS),
                              ("avertissement", warnings, WARNING_EXCERPTS)):
        lined = []  # the first issues on a line no issue before them names
        for i, e in enumerate(items, 1):
            if e.get("rowNumber") and e["rowNumber"] not in seen and len(lined) < most:
                lined.append((i, e))
                seen.add(e["rowNumber"])
        for i, e in lined:
            n = e["rowNumber"]
            got = shown[n]
            assert f"#{kind}-{i}" in got.flags and rows[f"{kind}-{i}"][3] == f"#ligne-{n}"
            window = [k for k in range(max(n - AROUND, 1), n + AROUND + 1) if k <= len(lines)]
            assert {1, *window} <= set(got.rows)
            assert got.rows == {k: lines[k - 1] for k in got.rows}
    assert set(shown) == seen
    return len(shown)


# ------------------------------------------------------------------------------- the CLI


def test_cli_html__real_file_rows_left_out__page_names_json_line_column_value_and_real_lines(
        real_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = real_dir / HOSP / NOV
    code, report, page = run_cli(path, HOSP, tmp_path / "report.html", capsys)
    assert code == 0 and report["opendepot"]["status"] == "accepted"
    errors = report["tasks"][0]["errors"]
    assert [(e["rowNumber"], e["fieldName"], e["cell"]) for e in errors] == [
        (2123, "dep", ""), (2124, "dep", ""), (2125, "dep", "")]
    assert listed(page)[:3] == [("2123", "dep", ""), ("2124", "dep", ""), ("2125", "dep", "")]
    lines = source_lines(path)
    shown = excerpts(page)
    assert shown[2123].rows is shown[2125].rows  # lines close together: one excerpt
    assert {k: v for k, v in shown[2123].rows.items() if k <= 2125} == {
        1: '"dep";"sexe";"jour";"hosp";"rea";"rad";"dc"',
        2121: '"976";1;"2020-03-24";0;0;0;0', 2122: '"976";2;"2020-03-24";0;0;0;0',
        2123: '"";0;"2020-03-24";13;13;0;0', 2124: '"";1;"2020-03-24";12;12;0;0',
        2125: '"";2;"2020-03-24";1;1;0;0'}
    assert shown[2123].flags == ["#erreur-1"] and shown[2125].flags == ["#erreur-3"]
    assert assert_excerpts_are_the_file(page, report, lines) == 3 + WARNING_EXCERPTS
    assert len(shown) == 3 + WARNING_EXCERPTS
    summary = {tr.all("th")[0].text(): tr.all("td")[0].text()
               for tr in page.all("table", class_="summary")[0].all("tr")}
    assert summary["Lignes de données lues"] == "71\u202f208"
    assert summary["Lignes publiées"] == "71\u202f205"
    assert summary["Lignes écartées (avec erreur)"] == "3"
    assert summary["Avertissements"] == str(report["stats"]["warnings"]) == "941"
    assert page.all("strong", class_="badge")[0].text() == "Accepté"


def test_cli_html__case_c06__the_value_marked_in_the_real_line(
        cases_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cases_dir / "C06-corsica-20.csv"
    code, report, page = run_cli(path, HOSP, tmp_path / "c06.html", capsys)
    assert code == 1
    (error,) = report["tasks"][0]["errors"]
    assert (error["rowNumber"], error["fieldName"], error["cell"]) == (4, "dep", "20")
    shown = excerpts(page)[4]
    assert shown.rows == dict(enumerate(source_lines(path), 1))
    assert shown.rows[4] == "20;0;2020-04-01;96;25;102;21" and shown.marked == ["20"]
    assert shown.flags == ["#erreur-1"] and issue_rows(page)["erreur-1"][3] == "#ligne-4"
    assert listed(page) == [("4", "dep", "20")]
    section = page.all("section", id="erreur-foreign-key")[0]
    assert section.attrs["data-count"] == "1"
    assert "Code géographique inconnu" in section.all("h3")[0].text()
    assert "foreign-key, ForeignKey Error" in section.all("h3")[0].text()
    assert page.all("strong", class_="badge")[0].text() == "Refusé"


def test_cli_html__rejected_real_file_312_errors__20_excerpts_every_error_listed_by_type(
        real_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = real_dir / HOSP / MIRROR
    code, report, page = run_cli(path, HOSP, tmp_path / "mirror.html", capsys)
    assert code == 1 and report["stats"]["errors"] == 312
    errors = report["tasks"][0]["errors"]
    assert len(listed(page)) == len(errors) == 312
    assert sorted(listed(page)) == sorted(
        (str(e["rowNumber"]) if "rowNumber" in e else "–", e.get("fieldName") or "–",
         e.get("cell", "–")) for e in errors)
    by_type = report["tasks"][0]["stats"]["errorsByType"]
    sections = {s.attrs["data-type"]: int(s.attrs["data-count"])
                for s in page.all("section", class_="issue-type")}
    assert sections == by_type
    assert assert_excerpts_are_the_file(page, report, source_lines(path)) == EXCERPTS
    note = page.all("p", class_="excerpts-note")[0].text()
    first_lines = list(dict.fromkeys(e["rowNumber"] for e in errors))[:EXCERPTS]
    unshown = sum(e["rowNumber"] not in first_lines for e in errors)
    assert unshown == 289  # 3 more errors are on a line already shown: they link to it
    assert f"les {unshown} autres problèmes sont seulement listés" in note


def test_cli_html__real_cp1252_file__excerpts_are_the_decoded_text(
        real_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = real_dir / INCID / INCID_2022
    code, report, page = run_cli(path, INCID, tmp_path / "incid.html", capsys)
    assert code == 0 and report["opendepot"]["encoding"] == "cp1252"
    lines = source_lines(path, "cp1252")
    assert assert_excerpts_are_the_file(page, report, lines) == EXCERPTS + WARNING_EXCERPTS
    shown = excerpts(page)
    assert shown[13016].rows[13016] == "2020-03-19;NA;NA;0"
    assert shown[13016].marked == ["NA"]
    assert shown[2171].rows[2171] == '2020-03-19;"La Réunion";4;0'
    assert shown[2171].marked == ["4"] and shown[2171].flags == ["#avertissement-4"]  # to 04


@pytest.mark.parametrize("packing", ["gzip", "utf-16-crlf"])
def test_cli_html__gzip_and_utf16_uploads__excerpts_are_the_decoded_lines(
        cases_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], packing: str) -> None:
    text = (cases_dir / "C06-corsica-20.csv").read_text("utf-8")
    path = tmp_path / f"C06.{packing}.csv"
    if packing == "gzip":
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_bytes(codecs.BOM_UTF16_LE + text.replace("\n", "\r\n").encode("utf-16-le"))
    code, report, page = run_cli(path, HOSP, tmp_path / "page.html", capsys)
    assert code == 1 and report["tasks"][0]["errors"][0]["rowNumber"] == 4
    shown = excerpts(page)[4]
    assert shown.rows == dict(enumerate(text.splitlines(), 1))
    assert shown.marked == ["20"]


@pytest.mark.parametrize("where", ["cell", "label"])
def test_cli_html__cells_and_labels_are_escaped(
        cases_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    text = (cases_dir / "C06-corsica-20.csv").read_text("utf-8")
    evil = "<script>alert(1)</script>"
    path = tmp_path / "evil.csv"
    path.write_text(text.replace("\n20;", f"\n{evil};") if where == "cell"
                    else text.replace("dc\n", f"dc;{evil}\n"))
    code, report, _ = run_cli(path, HOSP, tmp_path / "evil.html", capsys)
    body = (tmp_path / "evil.html").read_text("utf-8")
    assert code == 1
    (error,) = report["tasks"][0]["errors"]
    assert (error["type"], error["cell"]) == (
        ("foreign-key", evil) if where == "cell" else ("extra-label", evil))
    assert "<script" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    page = parse(body.encode("utf-8"))
    assert listed(page)[0][2] == evil  # shown as written, as text
    line = 4 if where == "cell" else 1  # a label error: the header line
    shown = excerpts(page)[line]
    assert shown.marked == [evil]
    assert shown.rows[line] == path.read_text().splitlines()[line - 1]
    assert evil in shown.rows[line]


def test_cli_html__unwritable_page__usage_error(
        cases_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing-folder" / "page.html"
    assert main(["validate", str(cases_dir / "C06-corsica-20.csv"), "--dataset", HOSP,
                 "--html", str(out)]) == 2
    assert f"cannot write {out}" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the page


def test_page__standalone_valid_and_accessible(
        cases_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, report, _ = run_cli(cases_dir / "C04-cumulative-decrease.csv", HOSP,
                           tmp_path / "c04.html", capsys)
    body = report_html(report, {})
    page = parse(body)
    (html,) = page.all("html")
    assert html.attrs["lang"] == "fr"
    assert len(page.all("h1")) == 1 and page.all("title")[0].text().startswith("Rapport")
    tables = page.all("table")
    assert tables and all(len(t.all("caption")) == 1 for t in tables)
    assert all(th.attrs.get("scope") in ("col", "row") for th in page.all("th"))
    assert not page.all("script") and not page.all("img")
    # the one link is the empty icon (no favicon request): nothing is fetched from elsewhere
    assert [(a.attrs["rel"], a.attrs["href"]) for a in page.all("link")] == [("icon", "data:,")]
    assert not re.search(rb"""(src|href)=["']?(https?:)?//""", body)
    assert not re.search(rb"url\(", body)  # no stylesheet request either
    assert len({n.attrs["id"] for n in page.all("section") + page.all("article")}) == len(
        page.all("section") + page.all("article"))
    (warning,) = report["opendepot"]["warnings"]
    assert (warning["type"], warning["rowNumber"], warning["fieldName"]) == (
        "cumulative-decrease", 5, "dc")
    assert listed(page) == [("5", "dc", warning["cell"])]
    assert not excerpts(page)  # no context given: listed without an excerpt


def test_every_catalogued_issue_type_has_a_french_title() -> None:
    assert sorted(TITLES_FR) == sorted(CATALOGUE)
    assert all(TITLES_FR[s] != CATALOGUE[s].title for s in CATALOGUE)


def test_wanted_lines__the_header_and_the_windows_of_the_first_issues(
        cases_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, report, _ = run_cli(cases_dir / "C03-duplicate-day-first-upload.csv", HOSP,
                           tmp_path / "c03.html", capsys)
    rows = sorted({e["rowNumber"] for e in report["tasks"][0]["errors"][:EXCERPTS]
                   if "rowNumber" in e})
    assert rows == [14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]  # dep empty; keys repeated
    assert wanted_lines(report) == {1} | {
        n for r in rows for n in range(max(r - AROUND, 1), r + AROUND + 1)}


# ------------------------------------------------------------------------ reading lines


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_read_lines__any_block_size_gives_the_real_lines(
        real_dir: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    path = real_dir / HOSP / MIRROR  # CRLF: read_lines splits on LF (decoded text has no CR)
    lines = path.read_bytes().decode("utf-8").rstrip("\n").split("\n")
    wanted = {1, 2, 3, 500, 2123, 2124, len(lines) - 1, len(lines), len(lines) + 5}
    monkeypatch.setattr(report_page, "CHUNK_BYTES", chunk)
    got = read_lines(str(path), wanted)
    assert got == {n: lines[n - 1] for n in wanted if n <= len(lines)}
    assert read_lines(path.read_bytes().rstrip(b"\n"), {len(lines)}) == {
        len(lines): lines[-1]}  # the last line without a line end


def test_read_lines__long_lines_cut_memory_one_block_whatever_the_file(
        real_dir: Path, tmp_path: Path) -> None:
    lines = source_lines(real_dir / HOSP / NOV)
    big = tmp_path / "big.csv"
    with big.open("w") as f:  # the real rows 12 times over (~27 MB), then a 1 MB line
        for _ in range(12):
            f.write("\n".join(lines[1:]) + "\n")
        f.write("x" * (1 << 20) + "\n" + lines[-1] + "\n")
    total = 12 * (len(lines) - 1)
    tracemalloc.start()
    got = read_lines(str(big), {1, 2, total, total + 1, total + 2})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert got[1] == lines[1] and got[total] == lines[-1] and got[total + 2] == lines[-1]
    assert got[total + 1] == "x" * LINE_CHARS + "…"
    assert peak < 4 * report_page.CHUNK_BYTES + (1 << 20), peak  # blocks, not the 28 MB file


# ------------------------------------------------------------------ the validate function


def internal(p: Pipeline, key: str) -> bytes:
    return p.store.get(p.settings.internal_bucket, key)


def test_ingest__writes_the_page_beside_each_json_report(
        pipeline: Pipeline, cases_dir: Path) -> None:
    body = (cases_dir / "C06-corsica-20.csv").read_bytes()
    out = pipeline.drop(f"{HOSP}/spf/C06-corsica-20.csv", body)
    assert out.status == "rejected" and out.report_key and out.report_key.endswith(".json")
    assert html_key(out.report_key) == out.report_key[: -len(".json")] + ".html"
    report = json.loads(internal(pipeline, out.report_key))
    page = parse(internal(pipeline, html_key(out.report_key)))
    shown = excerpts(page)[4]
    assert shown.rows == dict(enumerate(body.decode().splitlines(), 1)) and shown.marked == ["20"]
    assert shown.flags == ["#erreur-1"]
    assert issue_rows(page)["erreur-1"] == ("4", "dep", "20", "#ligne-4")
    assert report["tasks"][0]["errors"][0]["rowNumber"] == 4
    summary = page.all("table", class_="summary")[0].text()
    assert "spf" in summary and out.upload_id in summary
    head = pipeline.store.head(pipeline.settings.internal_bucket, html_key(out.report_key))
    assert head is not None and head.content_type.startswith("text/html")


def test_ingest__a_page_that_cannot_be_rendered__the_json_report_and_outcome_stay(
        pipeline: Pipeline, cases_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import opendepot.ingest

    def broken(*_: object) -> bytes:
        raise RuntimeError("template defect")

    monkeypatch.setattr(opendepot.ingest, "report_html", broken)
    body = (cases_dir / "C06-corsica-20.csv").read_bytes()
    out = pipeline.drop(f"{HOSP}/spf/C06-corsica-20.csv", body)
    assert out.status == "rejected" and out.report_key
    report = json.loads(internal(pipeline, out.report_key))
    assert report["tasks"][0]["errors"][0]["rowNumber"] == 4
    assert pipeline.store.head(pipeline.settings.internal_bucket,
                               html_key(out.report_key)) is None


def test_ingest__accepted_upload_page_shows_its_warning_in_context(
        pipeline: Pipeline, cases_dir: Path) -> None:
    body = (cases_dir / "C04-cumulative-decrease.csv").read_bytes()
    out = pipeline.drop(f"{HOSP}/spf/C04.csv", body)
    assert out.status == "accepted" and out.report_key
    page = parse(internal(pipeline, html_key(out.report_key)))
    assert list(excerpts(page)) == [5]
    shown = excerpts(page)[5]
    lines = body.decode().splitlines()
    assert shown.rows == {k: lines[k - 1] for k in (1, 3, 4, 5, 6, 7)}  # header, 2 around
    assert page.all("strong", class_="badge")[0].text() == "Accepté"


def test_ingest__refused_upload_has_its_page_too(pipeline: Pipeline, cases_dir: Path) -> None:
    body = (cases_dir / "C06-corsica-20.csv").read_bytes()
    out = pipeline.drop("no-such-dataset/spf/file.csv", body)
    assert out.status == "rejected" and out.report_key and out.report_key.startswith(
        "reports/_refused/")
    page = parse(internal(pipeline, html_key(out.report_key)))
    assert [s.attrs["data-type"] for s in page.all("section", class_="issue-type")] == [
        "unrouted-key"]
    assert "Fichier déposé au mauvais endroit" in page.text()


def test_cli_html__header_errors_share_one_excerpt_of_the_header_line(
        cases_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cases_dir / "C01-separator-change-unsplittable.csv"
    code, report, page = run_cli(path, HOSP, tmp_path / "c01.html", capsys)
    errors = report["tasks"][0]["errors"]
    assert code == 1 and [e["type"] for e in errors] == ["format-error", "extra-label"] + [
        "missing-label"] * 7
    shown = excerpts(page)
    assert {e["rowNumber"] for e in errors} == {1}
    assert list(shown) == [1]  # one excerpt of line 1, the header
    assert shown[1].rows == dict(enumerate(source_lines(path), 1)) == {
        1: "dep|sexe|jour|hosp|rea|rad|dc", 2: "01|0|2020-03-27|49|9|17|2"}
    assert shown[1].flags == [f"#erreur-{i}" for i in range(1, 10)]  # each issue of the line
    assert [row[3] for row in issue_rows(page).values()] == ["#ligne-1"] * 9
