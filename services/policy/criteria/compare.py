"""Numeric comparisons and gaps, shared by both paths: one function serves a float (one
enterprise) and a numpy column (bulk) alike."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np

from services.policy.criteria.facts import FloatArray

# Values computed upstream (ratios, growth rates) arrive with float noise; a firm at exactly
# 5.0% must not fail a >= 5% criterion because it was stored as 4.999999999999.
REL_TOL = 1e-9


def tolerance(t: float) -> float:
    return REL_TOL * max(1.0, abs(t))


NumThreshold: TypeAlias = float | tuple[float, ...]
# The threshold a comparison sees: static, per row (banded, bulk path), or a list / range.
_Against: TypeAlias = float | FloatArray | tuple[float, ...]


def compare(op: str, v: Any, t: _Against) -> Any:
    """`v op t` within tolerance, for a float or a column alike (numpy ufuncs take both)."""
    if isinstance(t, tuple):
        if op == "between":
            lo, hi = t
            return np.logical_and(v >= lo - tolerance(lo), v <= hi + tolerance(hi))
        hit = np.logical_or.reduce([np.abs(v - x) <= tolerance(x) for x in t])
        return hit if op == "in" else np.logical_not(hit)
    tol = REL_TOL * np.maximum(1.0, np.abs(t))
    if op == ">=":
        return v >= t - tol
    if op == ">":
        return v > t + tol
    if op == "<=":
        return v <= t + tol
    if op == "<":
        return v < t - tol
    eq = np.abs(v - t) <= tol
    return eq if op == "==" else np.logical_not(eq)


def gap_to_pass(op: str, v: Any, t: _Against, integer: bool) -> Any:
    """Signed change of v that makes a failing comparison pass (counts move in whole units);
    None where no distance applies (!=, in, not_in)."""
    if op == "between":
        assert isinstance(t, tuple)
        lo, hi = t
        return np.where(
            v < lo, gap_to_pass(">=", v, lo, integer), gap_to_pass("<=", v, hi, integer)
        )
    if isinstance(t, tuple) or op == "!=":
        return None
    target: Any = t
    if integer:
        target = {
            ">=": np.ceil(t),
            ">": np.floor(t) + 1,
            "<=": np.floor(t),
            "<": np.ceil(t) - 1,
        }.get(op, t)
    # Nine decimals hide float noise (5 - 3.8) yet stay within tolerance, so v + gap still passes.
    return np.round(target - v, 9)
