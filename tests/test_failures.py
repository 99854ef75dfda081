"""Failures sorted by cause (``opendepot.failures``): Arrow's messages matched against the
pinned pyarrow, infrastructure errors told from the file's problems, and a MemoryError during
validation retried by the queue (a batch item failure), never a rejection report."""

from __future__ import annotations

import errno

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError
from report_invariant import assert_agrees

from opendepot import checks
from opendepot.checks import Batch, Check
from opendepot.failures import ARROW_MESSAGES, arrow_problem, is_infrastructure
from opendepot.registry import load_cog, load_registry
from opendepot.validate import validate

HOSP = "donnees-hospitalieres-covid19"
HEADER = "dep;sexe;jour;hosp;rea;rad;dc\n"


def arrow_error(data: bytes, block: int) -> BaseException:
    try:
        reader = pacsv.open_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=["a", "b"], block_size=block),
            parse_options=pacsv.ParseOptions(delimiter=";", newlines_in_values=True))
        for _ in reader:
            pass
    except pa.ArrowInvalid as exc:
        return exc
    raise AssertionError("no error")


def test_arrow_messages__each_produced_for_real_by_the_pinned_pyarrow():
    long_row = arrow_error(b"a;b\n" + b'"' + b"x" * 500 + b'";1\n', 64)
    assert arrow_problem(long_row) == "row-too-long"
    assert str(long_row).startswith(ARROW_MESSAGES["row-too-long"])
    header_only = arrow_error(b"a;b", 1 << 20)
    assert arrow_problem(header_only) == "header-without-line-end"
    assert str(header_only).startswith(ARROW_MESSAGES["header-without-line-end"])
    assert arrow_problem(pa.ArrowInvalid("CSV parse error: Expected 2 columns, got 3")) is None
    assert arrow_problem(ValueError(ARROW_MESSAGES["row-too-long"])) is None  # not Arrow's


@pytest.mark.parametrize("exc, infrastructure", [
    (MemoryError(), True),
    (pa.ArrowMemoryError("malloc of size 64 failed"), True),
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EIO, "Input/output error"), True),
    (TimeoutError("read timed out"), True),
    (ClientError({"Error": {"Code": "SlowDown", "Message": "throttled"}}, "GetObject"), True),
    (ConnectTimeoutError(endpoint_url="https://s3"), True),
    (pa.ArrowInvalid("CSV parse error"), False),
    (ValueError("bad value"), False),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), False),
])
def test_infrastructure_errors__told_from_the_files_problems(exc, infrastructure):
    assert is_infrastructure(exc) is infrastructure


class Exploding(Check):
    """A check that fails on the first batch with the exception class in ``error``."""

    error: type[BaseException] = MemoryError

    def batch(self, batch: Batch) -> None:
        raise self.error("simulated")


def hosp():
    return load_registry().get(HOSP)


def test_memory_error_in_a_check__raised_for_the_queue_to_retry():
    Exploding.error = MemoryError
    with checks.registered(Exploding), pytest.raises(MemoryError, match="simulated"):
        validate((HEADER + "75;0;2020-03-24;1;1;1;1\n").encode(), hosp(), load_cog(), name="t.csv")


def test_disk_full_in_a_check__raised_for_the_queue_to_retry():
    class DiskFull(Check):
        def batch(self, batch: Batch) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    with checks.registered(DiskFull), pytest.raises(OSError, match="No space left"):
        validate((HEADER + "75;0;2020-03-24;1;1;1;1\n").encode(), hosp(), load_cog(), name="t.csv")


def test_unforeseen_bug_in_a_check__a_rejection_asking_to_report_it():
    Exploding.error = KeyError
    with checks.registered(Exploding):
        v = validate((HEADER + "75;0;2020-03-24;1;1;1;1\n").encode(), hosp(), load_cog(),
                     name="t.csv")
    assert not v.accepted and v.errors.items[0].type == "source-error"
    assert "KeyError: 'simulated'" in v.rejection and "please report this" in v.rejection
    assert_agrees(v)


def test_register__a_check_emitting_an_uncatalogued_type_is_refused():
    class Unknown(Check):
        emits = ("no-such-issue",)

    with pytest.raises(ValueError, match="no-such-issue"):
        checks.register(Unknown)
    assert Unknown not in checks.CHECKS
