"""Model governance (模型治理): do the points predict anything?

Pure functions over numpy arrays, each returning a frozen dataclass with `to_dict()` (JSON):
discrimination (AUC, Gini, KS with bootstrap intervals and curves), bad rate by tier with rank
ordering and calibration, stability (PSI, CSI), migration and concentration, fairness by group,
and `validate`, which runs them all for one model version and period with the provenance of
every input. No I/O, no database: the caller loads the published scores and observed outcomes.
Bad input raises `GovernanceInputError` (a ValueError) with a message fit for a 422.
"""

from services.scoring.governance._base import GovernanceInputError, Result, fingerprint
from services.scoring.governance.discrimination import (
    CurvePoints,
    Discrimination,
    Interval,
    discrimination,
)
from services.scoring.governance.fairness import (
    AGE_BAND_EDGES,
    FairnessMetric,
    FairnessReport,
    Grouping,
    GroupValue,
    MetricDisparity,
    age_band_labels,
    age_bands,
    fairness,
)
from services.scoring.governance.migration import (
    Concentration,
    Migration,
    concentration,
    match_enterprises,
    migration_matrix,
)
from services.scoring.governance.stability import (
    PsiBin,
    StabilityIndex,
    characteristic_stability,
    psi,
    psi_flag,
)
from services.scoring.governance.tiers import (
    AdjacentTest,
    Calibration,
    CalibrationRow,
    RankOrdering,
    TierRow,
    TierTable,
    TrendTest,
    calibration,
    tier_table,
    traffic_light,
)
from services.scoring.governance.validation import (
    InputDigest,
    PeriodScores,
    Provenance,
    ValidationConfig,
    ValidationReport,
    expected_rates,
    validate,
)

__all__ = [
    "AGE_BAND_EDGES",
    "AdjacentTest",
    "Calibration",
    "CalibrationRow",
    "Concentration",
    "CurvePoints",
    "Discrimination",
    "FairnessMetric",
    "FairnessReport",
    "GovernanceInputError",
    "GroupValue",
    "Grouping",
    "InputDigest",
    "Interval",
    "MetricDisparity",
    "Migration",
    "PeriodScores",
    "Provenance",
    "PsiBin",
    "RankOrdering",
    "Result",
    "StabilityIndex",
    "TierRow",
    "TierTable",
    "TrendTest",
    "ValidationConfig",
    "ValidationReport",
    "age_band_labels",
    "age_bands",
    "calibration",
    "characteristic_stability",
    "concentration",
    "discrimination",
    "expected_rates",
    "fairness",
    "fingerprint",
    "match_enterprises",
    "migration_matrix",
    "psi",
    "psi_flag",
    "tier_table",
    "traffic_light",
    "validate",
]
