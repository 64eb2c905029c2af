"""A scoring model as data (评分模型).

The engine reads everything that can change between model versions from a `ModelSpec`: stage
thresholds, points per dimension and stage, relative indicator weights, the cohort size below
which stages are merged, the capping quantiles and the tier shares. A model is stored as JSON
(`to_dict`/`from_dict`) next to every evaluation run, so any score can be recomputed with the
exact model that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.catalogue import (
    DIMENSIONS,
    INDICATOR_CODES,
    INDICATORS,
    STAGES,
    Dimension,
    Stage,
)

# Points must add up to exactly this per stage; the tolerance absorbs decimal weights like 33.3.
TOTAL_POINTS = 100.0
_SUM_TOLERANCE = 1e-6

DEFAULT_STAGE_BANDS: tuple[float, ...] = (50.0, 500.0, 2000.0, 10000.0)

DEFAULT_DIMENSION_WEIGHTS: dict[str, dict[str, float]] = {
    Stage.SEED: {"input": 35.0, "output": 20.0, "growth": 20.0, "auxiliary": 25.0},
    Stage.SEEDLING: {"input": 35.0, "output": 25.0, "growth": 20.0, "auxiliary": 20.0},
    Stage.GROWTH: {"input": 30.0, "output": 30.0, "growth": 25.0, "auxiliary": 15.0},
    Stage.EXPANSION: {"input": 25.0, "output": 30.0, "growth": 30.0, "auxiliary": 15.0},
    Stage.MATURE: {"input": 20.0, "output": 35.0, "growth": 30.0, "auxiliary": 15.0},
}

# Shares of a cohort per tier, best tier first: tier 5 = top 10% ... tier 1 = bottom 10%.
DEFAULT_TIER_BANDS: tuple[float, ...] = (0.10, 0.225, 0.35, 0.225, 0.10)

_FIELDS = frozenset(
    {
        "version",
        "stage_bands",
        "dimension_weights",
        "indicator_weights",
        "min_cohort",
        "cap_low",
        "cap_high",
        "tier_bands",
    }
)


def _default_dimension_weights() -> dict[str, dict[str, float]]:
    return {
        str(s): {str(d): w for d, w in dims.items()}
        for s, dims in DEFAULT_DIMENSION_WEIGHTS.items()
    }


def _default_indicator_weights() -> dict[str, float]:
    return dict.fromkeys(INDICATOR_CODES, 1.0)


@dataclass(frozen=True)
class ModelSpec:
    """One version of the scoring model.

    The dicts are not copied defensively: treat a spec as immutable once built, because its JSON
    is part of every score's fingerprint.
    """

    version: str
    # Revenue thresholds in 万元 between consecutive stages; a firm at a threshold belongs to the
    # upper stage (50 万元 is seedling), as in the Binjiang bands "0.5M - <5M".
    stage_bands: tuple[float, ...] = DEFAULT_STAGE_BANDS
    # stage -> dimension -> maximum points; each stage sums to 100.
    dimension_weights: dict[str, dict[str, float]] = field(
        default_factory=_default_dimension_weights
    )
    # Relative weight of an indicator inside its dimension; 0 switches an indicator off.
    indicator_weights: dict[str, float] = field(default_factory=_default_indicator_weights)
    min_cohort: int = 30
    cap_low: float = 0.05
    cap_high: float = 0.95
    tier_bands: tuple[float, ...] = DEFAULT_TIER_BANDS

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "stage_bands": [float(b) for b in self.stage_bands],
            "dimension_weights": {
                str(s): {str(d): float(w) for d, w in dims.items()}
                for s, dims in self.dimension_weights.items()
            },
            "indicator_weights": {str(c): float(w) for c, w in self.indicator_weights.items()},
            "min_cohort": int(self.min_cohort),
            "cap_low": float(self.cap_low),
            "cap_high": float(self.cap_high),
            "tier_bands": [float(b) for b in self.tier_bands],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Build a spec from its JSON form.

        Raises ValueError only when the shape is wrong (unknown field, wrong type); semantic
        problems (weights not adding up, unknown indicators) are left to `validate()` so an
        administrator sees all of them at once.
        """
        unknown = set(data) - _FIELDS
        if unknown:
            raise ValueError(f"unknown model fields: {', '.join(sorted(unknown))}")
        if "version" not in data:
            raise ValueError("model field 'version' is required")
        version = data["version"]
        if not isinstance(version, str):
            raise ValueError("model field 'version' must be a string")
        kwargs: dict[str, Any] = {"version": version}
        for name, read in _READERS.items():
            if name in data:
                kwargs[name] = read(data[name], name)
        return cls(**kwargs)

    # -- checks ----------------------------------------------------------------------------

    def validate(self) -> list[str]:
        """Every problem with this spec, in words an administrator can act on; [] when valid."""
        errors: list[str] = []
        if not self.version.strip():
            errors.append("version must not be empty")
        errors += self._stage_band_errors()
        errors += self._dimension_weight_errors()
        errors += self._indicator_weight_errors()
        errors += self._cohort_and_cap_errors()
        errors += self._tier_band_errors()
        return errors

    def _stage_band_errors(self) -> list[str]:
        errors: list[str] = []
        bands = self.stage_bands
        if len(bands) != len(STAGES) - 1:
            errors.append(
                f"stage_bands needs {len(STAGES) - 1} thresholds between the {len(STAGES)} "
                f"stages, got {len(bands)}"
            )
        if not all(math.isfinite(b) and b > 0 for b in bands):
            errors.append("stage_bands must be positive finite revenue thresholds (万元)")
        if any(b >= a for a, b in zip(bands[1:], bands, strict=False)):
            errors.append("stage_bands must be strictly increasing")
        return errors

    def _dimension_weight_errors(self) -> list[str]:
        errors: list[str] = []
        stage_names = {str(s) for s in STAGES}
        dim_names = {str(d) for d in DIMENSIONS}
        for stage in sorted(set(self.dimension_weights) - stage_names):
            errors.append(f"dimension_weights: unknown stage '{stage}'")
        for stage in STAGES:
            dims = self.dimension_weights.get(stage)
            if dims is None:
                errors.append(f"dimension_weights: stage '{stage}' is missing")
                continue
            for dim in sorted(set(dims) - dim_names):
                errors.append(f"dimension_weights.{stage}: unknown dimension '{dim}'")
            for dim in DIMENSIONS:
                if dim not in dims:
                    errors.append(f"dimension_weights.{stage}: dimension '{dim}' is missing")
            weights = [w for d, w in dims.items() if d in dim_names]
            for d, w in dims.items():
                if not math.isfinite(w) or w < 0:
                    errors.append(f"dimension_weights.{stage}.{d}: {w} is not a weight >= 0")
            total = sum(w for w in weights if math.isfinite(w))
            if abs(total - TOTAL_POINTS) > _SUM_TOLERANCE:
                errors.append(
                    f"dimension_weights.{stage}: weights sum to {total:g}, not {TOTAL_POINTS:g}"
                )
        return errors

    def _indicator_weight_errors(self) -> list[str]:
        errors: list[str] = []
        codes = set(INDICATOR_CODES)
        for code in sorted(set(self.indicator_weights) - codes):
            errors.append(f"indicator_weights: unknown indicator '{code}'")
        for code in INDICATOR_CODES:
            if code not in self.indicator_weights:
                errors.append(f"indicator_weights: indicator '{code}' is missing")
        for code, w in self.indicator_weights.items():
            if not math.isfinite(w) or w < 0:
                errors.append(f"indicator_weights.{code}: {w} is not a weight >= 0")
        for dim in DIMENSIONS:
            members = [i.code for i in INDICATORS if i.dimension == dim]
            inner = sum(max(self.indicator_weights.get(c, 0.0), 0.0) for c in members)
            carries_points = any(
                self.dimension_weights.get(s, {}).get(dim, 0.0) > 0 for s in STAGES
            )
            if carries_points and not inner > 0:
                errors.append(
                    f"indicator_weights: every indicator of dimension '{dim}' weighs 0, "
                    "so its points cannot be earned"
                )
        return errors

    def _cohort_and_cap_errors(self) -> list[str]:
        errors: list[str] = []
        if isinstance(self.min_cohort, bool) or not isinstance(self.min_cohort, int):
            errors.append("min_cohort must be an integer")
        elif self.min_cohort < 1:
            errors.append(f"min_cohort must be at least 1, got {self.min_cohort}")
        if not (0.0 <= self.cap_low < self.cap_high <= 1.0):
            errors.append(
                f"caps must satisfy 0 <= cap_low < cap_high <= 1, got {self.cap_low}, "
                f"{self.cap_high}"
            )
        return errors

    def _tier_band_errors(self) -> list[str]:
        if not self.tier_bands:
            return ["tier_bands must not be empty"]
        if not all(math.isfinite(b) and b > 0 for b in self.tier_bands):
            return ["tier_bands must be positive shares"]
        if abs(sum(self.tier_bands) - 1.0) > _SUM_TOLERANCE:
            return [f"tier_bands sum to {sum(self.tier_bands):g}, not 1"]
        return []

    # -- derived values --------------------------------------------------------------------

    def stage_of(self, revenue: float | None) -> Stage | None:
        return stage_of(revenue, self.stage_bands)

    def max_points(self, stage: Stage | str | int) -> npt.NDArray[np.float64]:
        """The 24 indicators' maximum points for one stage, in INDICATOR_CODES order."""
        stage_key = STAGES[stage] if isinstance(stage, int) else Stage(stage)
        dims = self.dimension_weights[stage_key]
        inner: dict[Dimension, float] = {d: 0.0 for d in DIMENSIONS}
        for ind in INDICATORS:
            inner[ind.dimension] += self.indicator_weights[ind.code]
        out = np.zeros(len(INDICATORS), dtype=np.float64)
        for j, ind in enumerate(INDICATORS):
            if inner[ind.dimension] > 0:
                share = self.indicator_weights[ind.code] / inner[ind.dimension]
                out[j] = dims[ind.dimension] * share
        return out

    def dimension_max(self, stage: Stage | str | int) -> list[float]:
        """The four dimensions' maximum points for one stage, in DIMENSIONS order."""
        stage_key = STAGES[stage] if isinstance(stage, int) else Stage(stage)
        weights = self.dimension_weights[stage_key]
        return [float(weights[d.value]) for d in DIMENSIONS]

    def max_points_matrix(self) -> npt.NDArray[np.float64]:
        """[stage, indicator] maxima, so the engine looks them up by stage index."""
        return np.stack([self.max_points(s) for s in STAGES])

    def percentile_boundaries(self) -> tuple[float, ...]:
        """Cumulative shares from the bottom (0.10, 0.325, 0.675, 0.90, 1.0 by default).

        They are the percentiles at which an indicator's value enters the next band; the last is
        always 1.0 so that "reach the best in the cohort" is a boundary too.
        """
        bounds = np.cumsum(np.asarray(self.tier_bands[::-1], dtype=np.float64))
        out = [round(float(b), 12) for b in bounds]
        if out:
            out[-1] = 1.0
        return tuple(out)


def stage_of(revenue: float | None, bands: Sequence[float] = DEFAULT_STAGE_BANDS) -> Stage | None:
    """The growth stage for last year's operating revenue (万元); None when revenue is unknown."""
    if revenue is None or math.isnan(revenue):
        return None
    return STAGES[int(np.searchsorted(np.asarray(bands, dtype=np.float64), revenue, "right"))]


def stage_indices(
    revenue: npt.ArrayLike, bands: Sequence[float] = DEFAULT_STAGE_BANDS
) -> npt.NDArray[np.int8]:
    """Vectorised `stage_of`: index into STAGES, -1 where revenue is missing (nan)."""
    rev = np.asarray(revenue, dtype=np.float64)
    idx = np.searchsorted(np.asarray(bands, dtype=np.float64), rev, side="right").astype(np.int8)
    idx[np.isnan(rev)] = -1
    return idx


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"model field '{name}' must be a number")
    return float(value)


def _float_tuple(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"model field '{name}' must be a list of numbers")
    return tuple(_float(v, name) for v in value)


def _float_dict(value: Any, name: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"model field '{name}' must be an object of numbers")
    return {str(k): _float(v, f"{name}.{k}") for k, v in value.items()}


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"model field '{name}' must be an integer")
    return value


def _dimension_weights(value: Any, name: str) -> dict[str, dict[str, float]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"model field '{name}' must be an object")
    return {str(stage): _float_dict(dims, f"{name}.{stage}") for stage, dims in value.items()}


# The optional fields of a spec's JSON form, each with what reads it, in the order checked.
_READERS: dict[str, Callable[[Any, str], Any]] = {
    "stage_bands": _float_tuple,
    "tier_bands": _float_tuple,
    "dimension_weights": _dimension_weights,
    "indicator_weights": _float_dict,
    "min_cohort": _int,
    "cap_low": _float,
    "cap_high": _float,
}

DEFAULT_MODEL = ModelSpec(version="1.0")
