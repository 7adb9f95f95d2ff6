"""The reference's expected values, computed once per example for all the backends checked on it.

`vaespec check` draws a law's examples once and checks every backend on each (`check.runner`), so
the float64 reference's value, vjp and magnitudes at an example's arguments were computed once per
backend: four times with the default backends, for the same numbers. `memoized` computes them once.

The key is the *content* of the arguments (every array's dtype, shape and bytes; mappings, tuples,
numbers, strings and frozen dataclasses such as an `Architecture`, a `Convention` or a `Key`,
field by field), never an object's identity: arguments rebuilt per backend (a declared variant's
inputs, say) or changed in place get their own entry. Arguments of any other type are not
memoized at all. The reference is a pure function of its arguments, so a memoized result is the
one a fresh call would give; a call that raises stores nothing. Cached arrays are read-only and
every call gets fresh containers, so no caller can change what the next one reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

SIZE = 256  # entries: an example's few expected values for every backend, with room for interleaved laws
_CACHE: OrderedDict[bytes, Any] = OrderedDict()
_STATS = {"hits": 0, "misses": 0}


class _Unkeyable(Exception):
    """An argument whose content `_feed` cannot state: the call is not memoized."""


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:  # its bytes are pointers, not content
            raise _Unkeyable
        h.update(b"a%s%r" % (value.dtype.str.encode(), value.shape))
        h.update(np.ascontiguousarray(value).data)  # the buffer itself, not a copy of it
    elif isinstance(value, Mapping):
        h.update(b"{%d" % len(value))
        keys = list(value)
        for k in (sorted(keys) if all(type(k) is str for k in keys) else sorted(keys, key=repr)):
            _feed(h, k)
            _feed(h, value[k])
    elif type(value) is str:
        encoded = value.encode()
        h.update(b"str%d:%s" % (len(encoded), encoded))
    elif isinstance(value, (tuple, list)):
        h.update(b"(%d" % len(value))
        for v in value:
            _feed(h, v)
    elif value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        h.update(_dataclass_digest(value))
    else:
        raise _Unkeyable


# id -> (the frozen dataclass, the digest of its content), the object held so that its id is not reused
_DATACLASS_DIGESTS: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()


def _dataclass_digest(value: Any) -> bytes:
    """The digest of a frozen dataclass's type and fields, computed once per object when nothing in it can change
    (an architecture, a convention or a key: every call of an example passes the same object)."""
    held = _DATACLASS_DIGESTS.get(id(value))
    if held is not None and held[0] is value:
        return held[1]
    h = hashlib.blake2b(f"<{type(value).__module__}.{type(value).__qualname__}".encode(), digest_size=20)
    fields = [getattr(value, field.name) for field in dataclasses.fields(value)]
    for field in fields:
        _feed(h, field)
    digest = h.digest()
    if all(_unchanging(f) for f in fields):
        _DATACLASS_DIGESTS[id(value)] = (value, digest)
        while len(_DATACLASS_DIGESTS) > SIZE:
            _DATACLASS_DIGESTS.popitem(last=False)
    return digest


def _unchanging(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        return True
    if type(value) is tuple:
        return all(_unchanging(v) for v in value)
    return dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.frozen \
        and all(_unchanging(getattr(value, f.name)) for f in dataclasses.fields(value))


def _frozen(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.flags.writeable = False
        return value
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_frozen(v) for v in value)
    return value


def _fresh(value: Any) -> Any:
    """New containers around the (read-only) cached arrays."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_fresh(v) for v in value)
    return value


def memoized(kind: str, compute: Callable[[], Any], *key_parts: Any) -> Any:
    """`compute()`, or the result stored for the same `kind` and content of `key_parts`.

    **Arguments**
    - `kind`: what is computed ("value", "vjp", "magnitude", …), part of the key.
    - `compute`: the call, with no arguments; a pure function of `key_parts`.
    - `key_parts`: everything the result depends on (function name, arguments, cotangent, choices, variants).

    **Returns** the result: read-only arrays in fresh tuples, lists and dicts.
    """
    h = hashlib.blake2b(kind.encode(), digest_size=20)
    try:
        _feed(h, key_parts)
    except _Unkeyable:
        return compute()
    key = h.digest()
    if key in _CACHE:
        _STATS["hits"] += 1
        _CACHE.move_to_end(key)
        return _fresh(_CACHE[key])
    _STATS["misses"] += 1
    result = _frozen(compute())
    _CACHE[key] = result
    while len(_CACHE) > SIZE:
        _CACHE.popitem(last=False)
    return _fresh(result)


def stats() -> dict[str, int]:
    """Hits and misses so far in this process (for benchmarks.suite_profile)."""
    return dict(_STATS)


def clear() -> None:
    """Forget every stored result."""
    _CACHE.clear()
    _DATACLASS_DIGESTS.clear()
