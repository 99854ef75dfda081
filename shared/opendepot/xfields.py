"""``X-Fields`` masks, as udata (flask-restx) reads them: which keys of a JSON answer to send.

Syntax (flask-restx's): names separated by commas, ``name{...}`` for the keys of a nested
object (or of each object of a list), ``*`` for every key not named, optional outer braces:
``id,title,resources{id,url,internal{last_modified_internal}}``, ``data{id,slug},next_page``,
``{id,*}``. Names are letters, digits, ``_``, ``-`` and ``:``; blanks are ignored.

Applying a mask (flask-restx's ``Mask.filter_data``): a list is masked element by element; an
object keeps the keys named, in the mask's order, a name it lacks giving ``null``; ``*`` adds
every other key as is; a nested mask on ``null`` gives ``null``. Pure functions.

Errors (``index.BadRequest``, message naming the header): unbalanced braces, a comma where a
name is due, a brace not after a name, any other character, a nested mask on a value that is
neither an object nor a list of objects.
"""

from __future__ import annotations

import re
from typing import Any

from opendepot.index import BadRequest

HEADER = "X-Fields"
"""The request header (any case)."""
MAX_LENGTH = 2000
"""Longest mask read (a longer one is a 400)."""

Mask = dict[str, "Mask | bool"]
"""A parsed mask: name -> True (the value as is) or the mask of its keys."""

_TOKEN = re.compile(r"\{|\}|,|[\w:\-*]+|\s+|.", re.UNICODE)


def _fail(why: str) -> BadRequest:
    return BadRequest(f"{HEADER}: {why} (e.g. id,title,resources{{id,url}})")


def parse(text: str) -> Mask | None:
    """The mask in ``text`` (None when blank: no mask).

    Raises:
        BadRequest: malformed (see the module's list).
    """
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_LENGTH:
        raise _fail(f"mask longer than {MAX_LENGTH} characters")
    if text[0] == "{":
        if text[-1] != "}":
            raise _fail("missing closing bracket")
        text = text[1:-1]
    root: Mask = {}
    fields, stack, previous = root, [], None  # type: ignore[var-annotated]
    for token in _TOKEN.findall(text):
        if token.isspace():
            continue
        if token == "{":
            if previous is None or previous in "{},":
                raise _fail("unexpected opening bracket")
            nested: Mask = {}
            fields[previous] = nested
            stack.append(fields)
            fields = nested
        elif token == "}":
            if not stack:
                raise _fail("unexpected closing bracket")
            fields = stack.pop()
        elif token == ",":
            if previous is None or previous in ",{":
                raise _fail("unexpected comma")
        elif re.fullmatch(r"[\w:\-*]+", token):
            fields[token] = True
        else:
            raise _fail(f"unexpected character {token!r}")
        previous = token
    if stack:
        raise _fail("missing closing bracket")
    return root


def apply(mask: Mask, doc: Any, path: str = "") -> Any:
    """``doc`` with only the keys ``mask`` names (see the module's rules).

    Raises:
        BadRequest: a nested mask on a value that is neither an object nor a list of objects.
    """
    if isinstance(doc, list):
        return [apply(mask, item, path) for item in doc]
    if not isinstance(doc, dict):
        raise _fail(f"{path or 'the answer'} is not an object: it takes no nested mask")
    out: dict[str, Any] = {}
    for name, sub in mask.items():
        if name == "*":
            continue
        value = doc.get(name)
        if isinstance(sub, dict) and value is not None:
            out[name] = apply(sub, value, f"{path}.{name}" if path else name)
        else:
            out[name] = value
    if "*" in mask:
        out.update((k, v) for k, v in doc.items() if k not in out)
    return out


def header(headers: Any) -> str:
    """The ``X-Fields`` header of a request's headers (any case), "" when absent."""
    for name, value in (headers or {}).items():
        if name.lower() == HEADER.lower():
            return str(value or "")
    return ""
