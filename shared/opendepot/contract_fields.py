"""The reading helpers of ``opendepot.contracts``: each gets one key of a JSON object with its
type checked, and names the record and the key on failure (``ContractError``).

Private to the contracts (``opendepot.contracts`` re-exports ``ContractError`` and
``JsonObject``): ``_str(d, "Manifest", "version")`` returns ``d["version"]`` when it is a string,
its ``default`` when the key is absent and a default is given, and raises ``ContractError``
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

JsonObject = dict[str, Any]
"""A JSON object as ``json.loads`` returns it."""

T = TypeVar("T")


class ContractError(ValueError):
    """A JSON document does not fit its record: a required key is missing or has a wrong type.

    ``record`` is the record's name (``Manifest``), ``key`` the offending key.
    """

    def __init__(self, record: str, key: str, problem: str) -> None:
        super().__init__(f"{record}.{key}: {problem}")
        self.record = record
        self.key = key


# --- reading helpers (each names the record and key on failure) -------------------------------

_MISSING = object()


def _get(d: Mapping[str, Any], where: str, key: str, default: Any = _MISSING) -> Any:
    if not isinstance(d, Mapping):
        raise ContractError(where, "<document>", f"expected an object, got {type(d).__name__}")
    if key in d:
        return d[key]
    if default is _MISSING:
        raise ContractError(where, key, "missing")
    return default


def _str(d: Mapping[str, Any], where: str, key: str, default: Any = _MISSING) -> str:
    value = _get(d, where, key, default)
    if not isinstance(value, str):
        raise ContractError(where, key, f"expected a string, got {value!r}")
    return value


def _opt_str(d: Mapping[str, Any], where: str, key: str) -> str | None:
    value = _get(d, where, key, None)
    if value is not None and not isinstance(value, str):
        raise ContractError(where, key, f"expected a string or null, got {value!r}")
    return value


def _int(d: Mapping[str, Any], where: str, key: str, default: Any = _MISSING) -> int:
    value = _get(d, where, key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(where, key, f"expected an integer, got {value!r}")
    return value


def _opt_int(d: Mapping[str, Any], where: str, key: str) -> int | None:
    value = _get(d, where, key, None)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ContractError(where, key, f"expected an integer or null, got {value!r}")
    return value


def _object(d: Mapping[str, Any], where: str, key: str, default: Any = _MISSING) -> JsonObject:
    value = _get(d, where, key, default)
    if not isinstance(value, Mapping):
        raise ContractError(where, key, f"expected an object, got {value!r}")
    return dict(value)


def _counts(d: Mapping[str, Any], where: str, key: str) -> dict[str, int]:
    value = _object(d, where, key)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in value.values()):
        raise ContractError(where, key, "expected an object of integers")
    return value


def _list(d: Mapping[str, Any], where: str, key: str, default: Any = _MISSING) -> list[Any]:
    value = _get(d, where, key, default)
    if not isinstance(value, list | tuple):
        raise ContractError(where, key, f"expected an array, got {value!r}")
    return list(value)


def _strs(d: Mapping[str, Any], where: str, key: str, default: Any = _MISSING) -> tuple[str, ...]:
    value = _list(d, where, key, default)
    if not all(isinstance(v, str) for v in value):
        raise ContractError(where, key, "expected an array of strings")
    return tuple(value)


def _each(
    d: Mapping[str, Any], where: str, key: str, parse: Callable[[Any], T], default: Any = _MISSING
) -> tuple[T, ...]:
    return tuple(parse(item) for item in _list(d, where, key, default))


def _extra(d: Mapping[str, Any], known: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in known}


def _with_extra(body: JsonObject, extra: Mapping[str, Any]) -> JsonObject:
    for k, v in extra.items():
        body.setdefault(k, v)
    return body
