"""A synthetic back-book (合成贷款表现, SYNTHETIC): loans granted on one period's scores and how
they performed over the following year, so the demo's model validation has outcomes to
measure. Nothing here is real lending data; every report it produces carries
`synthetic: true`, and docs/governance.md describes the relation.

The relation is to the period's indicators, not to the score, so the validation measures
how well the model's weighting recovers a risk it was not built from:

    z(x)   = (x - median) / (1.4826 * MAD), clipped to [-3, 3], 0 where missing
    logit p = b0 - 0.7 z(revenue_growth) - 0.6 z(roe) - 0.4 z(tax_growth)
              - 0.3 z(rd_intensity) - 0.8 tax_grade_a - 0.3 qualified + 0.8 e,  e ~ N(0, 1)

with b0 set so that the mean probability is `BASE_BAD_RATE`. A firm is bad (90+ days overdue,
then in default) with probability p, drawn from a generator seeded by the demo's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import expit

from contracts.catalogue import INDICATOR_CODES
from devtools.demo import DemoData

BASE_BAD_RATE = 0.10
NOISE = 0.8
WEIGHTS = {
    "revenue_growth": -0.7,
    "roe": -0.6,
    "tax_growth": -0.4,
    "rd_intensity": -0.3,
    "tax_grade_a": -0.8,
    "qualified": -0.3,
}
BINARY = ("tax_grade_a", "qualified")


def robust_z(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    present = x[~np.isnan(x)]
    if present.size == 0:
        return np.zeros_like(x)
    med = float(np.median(present))
    mad = float(np.median(np.abs(present - med))) * 1.4826 or 1.0
    z = np.clip((x - med) / mad, -3.0, 3.0)
    return np.where(np.isnan(z), 0.0, z)


@dataclass(frozen=True)
class BackBook:
    period: int
    probability: npt.NDArray[np.float64]
    bad: npt.NDArray[np.bool_]
    # The month (1..12 of the year after the period) a bad loan first falls 30 days overdue.
    first_missed: npt.NDArray[np.int64]

    def path(self, i: int, amount: int) -> list[dict[str, object]]:
        """The reports a bank would send over the year for enterprise row i's loan."""
        year = self.period + 1
        reports: list[dict[str, object]] = [
            {"state": "current", "as_of": date(year, 3, 31).isoformat(), "outstanding": amount}
        ]
        if not self.bad[i]:
            reports.append(
                {
                    "state": "current",
                    "as_of": date(year, 9, 30).isoformat(),
                    "outstanding": amount // 2,
                }
            )
            reports.append(
                {"state": "repaid", "as_of": date(year, 12, 20).isoformat(), "outstanding": 0}
            )
            return reports
        m = int(self.first_missed[i])
        left = int(amount * 0.7)
        for step, state in enumerate(("overdue_30", "overdue_60", "overdue_90_plus", "default")):
            month = m + step if state != "default" else m + 4
            if month > 12:
                break
            reports.append(
                {"state": state, "as_of": date(year, month, 28).isoformat(), "outstanding": left}
            )
        return reports


def backbook(data: DemoData, period: int, seed: int | None = None) -> BackBook:
    facts = data.periods[period]
    rng = np.random.default_rng((data.seed if seed is None else seed) + period)
    linear = np.zeros(data.n)
    for code, weight in WEIGHTS.items():
        if code in INDICATOR_CODES:
            x = facts.column(code)
        else:
            x = np.asarray(facts.profile[code], dtype=np.float64)
        term = np.where(np.isnan(x), 0.0, x) if code in BINARY else robust_z(x)
        linear += weight * term
    linear += NOISE * rng.standard_normal(data.n)
    b0 = brentq(lambda b: float(expit(b + linear).mean()) - BASE_BAD_RATE, -20.0, 20.0)
    p = expit(b0 + linear)
    bad = rng.random(data.n) < p
    return BackBook(
        period=period,
        probability=p,
        bad=bad,
        first_missed=rng.integers(3, 10, size=data.n),
    )
