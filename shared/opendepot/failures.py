"""Failures sorted by cause: what the infrastructure did (retried) versus what the file is.

``validate`` turns problems of the file into rejection reports (the producer gets an answer);
an infrastructure failure (memory, disk, storage, throttling, a timeout) is not the file's
fault and must reach the queue, which retries the message and, past its retries, keeps it in
the dead-letter queue (``opendepot redrive`` moves it back). ``is_infrastructure`` says which
is which; ``arrow_problem`` is the one place where Arrow's error text is matched.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

try:  # boto3 is a dependency; the import is guarded only so that this module stays pure
    from botocore.exceptions import BotoCoreError, ClientError

    BOTO_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError)
except ImportError:  # pragma: no cover - botocore ships with boto3
    BOTO_ERRORS = ()

INFRASTRUCTURE: tuple[type[BaseException], ...] = (MemoryError, OSError, *BOTO_ERRORS)
"""Exceptions that are the infrastructure's, never the file's: ``MemoryError`` (Arrow's
``ArrowMemoryError`` too), ``OSError`` (a full or failing ``/tmp``: ENOSPC, EIO; Arrow's
``ArrowIOError``; ``TimeoutError``, ``ConnectionError``) and botocore's errors (throttling,
storage and credential errors, read and connect timeouts)."""

ArrowProblem = Literal["row-too-long", "header-without-line-end"]

ARROW_MESSAGES: dict[ArrowProblem, str] = {
    "row-too-long": "straddling object straddles two block boundaries",
    "header-without-line-end": "Could not skip initial",
}
"""The start of the text of each ``ArrowInvalid`` that means something about the file
(pyarrow's CSV reader; checked against the pinned version by tests/test_failures.py)."""


def is_infrastructure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the infrastructure (to be retried by the queue), not a
    problem of the file being validated."""
    return isinstance(exc, INFRASTRUCTURE)


def arrow_problem(exc: BaseException) -> ArrowProblem | None:
    """What an Arrow error says about the CSV text, or None when it is not one of those:

    - ``row-too-long``: a row (a quoted value, maybe left open) is longer than the reader's
      block;
    - ``header-without-line-end``: the text is a header line without a line end (no row)."""
    if not isinstance(exc, pa.ArrowInvalid):
        return None
    text = str(exc)
    for problem, start in ARROW_MESSAGES.items():
        if text.startswith(start) or start in text:
            return problem
    return None
