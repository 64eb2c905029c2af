"""What every governance statistic shares: the input error, the result base and array checks.

Results are frozen dataclasses holding plain Python values (int, float, str, bool, None,
tuples and nested results), never numpy scalars, so `to_dict()` is JSON as it stands and two
equal computations compare equal. Non-finite floats become None in `to_dict()` because JSON
has no NaN and a portal chart must not receive one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class GovernanceInputError(ValueError):
    """The inputs cannot give a meaningful statistic (wrong shape, values out of range, no
    defaults at all...). The message says which input and why; an API maps it to a 422."""


class Result:
    """Base of every result: `to_dict()` gives the JSON form (lists, dicts, None for NaN)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def opt_float(value: float | np.floating[Any]) -> float | None:
    """A float, or None where it is undefined (0/0)."""
    f = float(value)
    return f if math.isfinite(f) else None


def as_float_vector(values: npt.ArrayLike, name: str, *, allow_nan: bool = False) -> FloatArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise GovernanceInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise GovernanceInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    out = np.asarray(arr, dtype=np.float64)
    if np.isinf(out).any():
        raise GovernanceInputError(f"{name} contains infinite values")
    if not allow_nan and np.isnan(out).any():
        raise GovernanceInputError(f"{name} contains missing (NaN) values")
    return out


def as_outcome(values: npt.ArrayLike, name: str = "bad") -> BoolArray:
    """A 0/1 outcome as booleans; anything else (2, 0.5, NaN) is refused, not rounded."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise GovernanceInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "iuf":
        raise GovernanceInputError(f"{name} must be 0/1 or boolean, got dtype {arr.dtype}")
    out = arr.astype(bool)
    if not np.array_equal(arr, out):
        raise GovernanceInputError(f"{name} must hold only 0 and 1")
    return out


def as_tier_vector(values: npt.ArrayLike, name: str, n_tiers: int) -> IntArray:
    """Tiers 1..n_tiers; 0 means "not rated" (the engine's value for an unscored firm)."""
    if n_tiers < 2:
        raise GovernanceInputError("n_tiers must be at least 2")
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise GovernanceInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.array_equal(arr, np.round(arr)):
            arr = arr.astype(np.int64)
        elif arr.size:
            raise GovernanceInputError(f"{name} must hold whole tier numbers")
    out = np.asarray(arr, dtype=np.int64)
    if out.size and (int(out.min()) < 0 or int(out.max()) > n_tiers):
        raise GovernanceInputError(f"{name} must lie in 0..{n_tiers} (0 = not rated)")
    return out


def same_length(name_a: str, a: npt.NDArray[Any], name_b: str, b: npt.NDArray[Any]) -> None:
    if a.shape[0] != b.shape[0]:
        raise GovernanceInputError(
            f"{name_a} and {name_b} must have one entry per enterprise "
            f"({a.shape[0]} != {b.shape[0]})"
        )


def fingerprint(*arrays: npt.ArrayLike) -> str:
    """sha256 over the dtype, shape and bytes of each array, in order.

    One NaN payload and no negative zero for floats, so equal inputs hash equally however they
    were made (the same canonical form as the engine's run fingerprint). String arrays hash
    their UTF-8 text, so the digest does not depend on numpy's fixed-width padding.
    """
    h = hashlib.sha256()
    for a in arrays:
        arr = np.asarray(a)
        if arr.dtype.kind == "f":
            arr = np.ascontiguousarray(np.where(np.isnan(arr), np.nan, arr) + 0.0, dtype="<f8")
            payload = arr.tobytes()
        elif arr.dtype.kind in "biu":
            payload = np.ascontiguousarray(arr, dtype="<i8").tobytes()
        elif arr.dtype.kind == "M":
            payload = np.ascontiguousarray(arr.astype("datetime64[D]").view("<i8")).tobytes()
        else:
            payload = "\x1e".join(str(v) for v in arr.ravel().tolist()).encode()
        h.update(f"{arr.dtype.kind}{arr.shape}".encode())
        h.update(len(payload).to_bytes(8, "little"))
        h.update(payload)
    return h.hexdigest()
