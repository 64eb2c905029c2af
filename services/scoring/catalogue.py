"""The scoring service's view of the catalogue: the published vocabulary in `contracts`."""

from contracts.catalogue import (
    DIMENSIONS,
    INDICATOR_CODES,
    INDICATORS,
    INDICATORS_BY_CODE,
    NEGATIVE_FLAGS,
    PROFILE,
    PROFILE_BY_CODE,
    PROFILE_CODES,
    QUALIFICATIONS,
    STAGES,
    Dimension,
    Indicator,
    Kind,
    ProfileAttribute,
    ProfileKind,
    Stage,
)

__all__ = [
    "DIMENSIONS",
    "INDICATORS",
    "INDICATORS_BY_CODE",
    "INDICATOR_CODES",
    "NEGATIVE_FLAGS",
    "PROFILE",
    "PROFILE_BY_CODE",
    "PROFILE_CODES",
    "QUALIFICATIONS",
    "STAGES",
    "Dimension",
    "Indicator",
    "Kind",
    "ProfileAttribute",
    "ProfileKind",
    "Stage",
]
