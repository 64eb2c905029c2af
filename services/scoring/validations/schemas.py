"""The validation's JSON contract: the headline figures typed, every section below them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TierOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    tier: int = Field(description="1 (worst) .. n (best)")
    count: int = Field(description="Scored enterprises of the tier with an observed outcome")
    bad: int
    bad_rate: float | None


class ValidationOut(BaseModel):
    """`auc`, `ks`, `gini`, `psi` and `tiers` are the contract; the sections (discrimination
    with bootstrap intervals and curves, rank_ordering, calibration, stability,
    characteristics (CSI), migration, concentration, fairness), the provenance (run ids and
    input sha256s) and the outcomes' snapshot follow, as docs/governance.md describes them."""

    model_config = ConfigDict(extra="allow")

    model_version: str
    period: int
    run_id: str
    reference_run_id: str | None
    auc: float | None
    ks: float | None
    gini: float | None
    psi: float | None
    psi_flag: str | None
    tiers: list[TierOut]
    scored: int
    observed: int
    synthetic: bool = Field(description="Computed on synthetic (demo) outcomes")
    outcomes: dict[str, Any]
    provenance: dict[str, Any]
    cached: bool = Field(description="Read from the stored report of the same inputs")


class ValidationPoint(BaseModel):
    period: int
    run_id: str
    auc: float | None
    ks: float | None
    gini: float | None
    psi: float | None
    psi_flag: str | None
    observed: int | None
    synthetic: bool
    computed_at: str
