"""Deterministic demo data: a Binjiang-like population of tech firms over several periods.

Everything is drawn from one numpy Generator in a fixed order, so a (n, seed, periods) triple
always yields the same data, and every step is vectorised (a million firms take seconds).

The shape follows domain.md: five revenue stages (seed 20%, seedling 35%, growth 22%,
expansion 15%, mature 8% in the first period), log-normal amounts scaled with revenue, many
zero patent counts, ratios inside 0-100, growth rates mostly 10-30% with a tail of negatives.
A persistent latent "innovativeness" ties a firm's indicators together and to the next period,
in which revenue, staff, R&D and patent stocks evolve from the previous one, so trends exist.
About 0.5% of firms carry a negative-list flag and about 1% miss one to three indicator values.
Revenue is never missing (the import needs it to place a firm in a stage).

Identity columns look real but are invented (`devtools.demo.identity`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from contracts.catalogue import INDICATOR_CODES, NEGATIVE_FLAGS, QUALIFICATIONS, STAGES
from devtools.demo.identity import INDUSTRIES, districts, legal_reps, names, usccs
from services.scoring.specs.spec import DEFAULT_STAGE_BANDS, stage_indices

DEFAULT_SEED = 20200908
DEFAULT_PERIODS: tuple[int, ...] = (2024, 2025)
STAGE_MIX: tuple[float, ...] = (0.20, 0.35, 0.22, 0.15, 0.08)
# Tags are kept as bit masks: bit i set = vocabulary[i] held.
TAG_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "qualifications": QUALIFICATIONS,
    "negative_flags": NEGATIVE_FLAGS,
}
NEGATIVE_LIST_REASON = "negative_list"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

# -- stage shape ----------------------------------------------------------------------------

_BAND_LOW = np.array([0.5, *DEFAULT_STAGE_BANDS])
_BAND_HIGH = np.array([*DEFAULT_STAGE_BANDS, np.inf])
_AGE_YEARS = np.array([(0.2, 4.0), (1.0, 8.0), (2.0, 12.0), (4.0, 18.0), (6.0, 30.0)])
_GROWTH_MEAN = np.array([40.0, 30.0, 22.0, 16.0, 10.0])
_GROWTH_SD = np.array([45.0, 35.0, 25.0, 20.0, 15.0])


def _pick(per_stage: Sequence[float], stage: npt.NDArray[np.int8]) -> FloatArray:
    return np.asarray(per_stage, dtype=np.float64)[stage]


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


def _logit(p: Sequence[float]) -> FloatArray:
    a = np.asarray(p, dtype=np.float64)
    out: FloatArray = np.log(a / (1.0 - a))
    return out


def _bernoulli(rng: np.random.Generator, p: FloatArray) -> BoolArray:
    return rng.random(p.shape[0]) < p


def _money(x: FloatArray) -> FloatArray:
    # Amounts and percentages carry two decimals, as in the import files.
    return np.round(x, 2)


# -- containers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodData:
    """One period's facts. `indicators` is [n, 24] in INDICATOR_CODES order (NaN = missing);
    `profile` maps each PROFILE code to a column: float64 (NaN = missing) for numbers, bool for
    yes/no, uint16 bit masks over TAG_VOCABULARIES for tags."""

    period: int
    indicators: FloatArray
    profile: dict[str, npt.NDArray[Any]]

    @property
    def revenue(self) -> FloatArray:
        out: FloatArray = self.profile["operating_revenue"]
        return out

    def stage(self) -> npt.NDArray[np.int8]:
        return stage_indices(self.revenue, DEFAULT_STAGE_BANDS)

    def column(self, code: str) -> FloatArray:
        out: FloatArray = self.indicators[:, INDICATOR_CODES.index(code)]
        return out


@dataclass(frozen=True)
class DemoData:
    seed: int
    uscc: StrArray
    name: StrArray
    founded_on: npt.NDArray[np.datetime64]
    industry: StrArray
    legal_rep: StrArray
    periods: dict[int, PeriodData]

    @property
    def n(self) -> int:
        return int(self.uscc.shape[0])

    @cached_property
    def district(self) -> StrArray:
        """区县: where each firm's code was registered."""
        return districts(self.uscc)


# -- indicator generation -------------------------------------------------------------------


@dataclass
class _State:
    """What the next period grows from."""

    revenue: FloatArray
    revenue_growth: FloatArray
    rd_expense: FloatArray
    employees: FloatArray
    patents: FloatArray
    class2: FloatArray
    platform: BoolArray
    grade_a: BoolArray
    equity: FloatArray
    negative: npt.NDArray[np.uint16]
    hnte: BoolArray
    srdi: BoolArray


def _first_revenue(rng: np.random.Generator, stage: npt.NDArray[np.int8]) -> FloatArray:
    n = int(stage.shape[0])
    low, high = _BAND_LOW[stage], _BAND_HIGH[stage]
    # Within a band, density falls with size (log-position u^1.3); mature firms get a
    # heavy tail above 100M.
    pos = rng.random(n) ** 1.3
    finite = np.isfinite(high)
    rev = np.empty(n)
    rev[finite] = np.exp(
        np.log(low[finite]) + pos[finite] * (np.log(high[finite]) - np.log(low[finite]))
    )
    tail = ~finite
    rev[tail] = low[tail] * np.exp(rng.exponential(1.1, size=int(tail.sum())))
    rev = np.minimum(_money(rev), 5_000_000.0)
    # Rounding must not push a firm over its band's upper edge.
    return np.where(finite, np.minimum(rev, high - 0.01), rev)


@dataclass(frozen=True)
class _Draw:
    """What every step of one period draws from. The steps draw from `rng` in a fixed order
    (the order `_period` calls them in), which is what makes the data reproducible."""

    rng: np.random.Generator
    n: int
    stage: npt.NDArray[np.int8]
    z: FloatArray  # the firm's persistent innovativeness
    noise: FloatArray  # this period's innovativeness
    revenue: FloatArray
    revenue_growth: FloatArray
    revenue_growth_prev: FloatArray
    age_years: FloatArray
    prev: _State | None


def _period(
    rng: np.random.Generator,
    period: int,
    revenue: FloatArray,
    revenue_growth: FloatArray,
    revenue_growth_prev: FloatArray,
    z: FloatArray,
    age_years: FloatArray,
    prev: _State | None,
) -> tuple[PeriodData, _State]:
    n = int(revenue.shape[0])
    stage = stage_indices(revenue, DEFAULT_STAGE_BANDS)
    noise = z + 0.35 * rng.standard_normal(n)  # this period's innovativeness
    d = _Draw(
        rng, n, stage, z, noise, revenue, revenue_growth, revenue_growth_prev, age_years, prev
    )
    ind: dict[str, FloatArray] = {}
    prof: dict[str, npt.NDArray[Any]] = {}
    rd_expense = _research(d, ind)
    employees, rd_staff, platform, headcount_growth = _staff(d, ind, rd_expense)
    patents, class2 = _outputs(d, ind)
    _growth(d, ind, headcount_growth)
    equity, grade_a = _auxiliary(d, ind, employees)
    listed, total_assets = _profile(d, ind, prof, employees, rd_staff, equity)
    hnte, srdi = _qualifications(d, ind, prof, patents, class2, employees, total_assets, listed)
    negative = _negative_list(d, prof)
    values = _indicator_values(d, ind)
    state = _State(
        revenue=revenue,
        revenue_growth=revenue_growth,
        rd_expense=rd_expense,
        employees=employees,
        patents=patents,
        class2=class2,
        platform=platform,
        grade_a=grade_a,
        equity=equity,
        negative=negative,
        hnte=hnte,
        srdi=srdi,
    )
    return PeriodData(period=period, indicators=values, profile=prof), state


def _research(d: _Draw, ind: dict[str, FloatArray]) -> FloatArray:
    """R&D expense, intensity and growth; returns the expense."""
    rng, n, stage, z, noise, revenue, prev = d.rng, d.n, d.stage, d.z, d.noise, d.revenue, d.prev
    # R&D: intensity falls with size; ~6% of firms (the least innovative) do none.
    intensity = _pick((25.0, 10.0, 6.0, 4.5, 3.5), stage) * np.exp(
        0.55 * noise + 0.3 * rng.standard_normal(n)
    )
    no_rd = _bernoulli(rng, _sigmoid(-3.0 - 1.2 * noise))
    if prev is not None:
        no_rd |= (prev.rd_expense == 0) & (rng.random(n) < 0.8)
    intensity = np.where(no_rd, 0.0, np.minimum(intensity, 100.0))
    rd_expense = _money(revenue * intensity / 100.0)
    ind["rd_expense"] = rd_expense
    ind["rd_intensity"] = np.minimum(_money(rd_expense / revenue * 100.0), 100.0)
    if prev is None:
        rd_growth = np.clip(20.0 + 30.0 * rng.standard_normal(n) + 5.0 * z, -95.0, 400.0)
    else:
        # Growth from nothing is undefined; report 0 rather than an infinite rate.
        base = np.where(prev.rd_expense > 0, prev.rd_expense, 1.0)
        rd_growth = np.where(prev.rd_expense > 0, (rd_expense / base - 1.0) * 100.0, 0.0)
    ind["rd_growth"] = np.where(rd_expense > 0, np.clip(_money(rd_growth), -100.0, 10000.0), 0.0)
    return rd_expense


def _staff(
    d: _Draw, ind: dict[str, FloatArray], rd_expense: FloatArray
) -> tuple[FloatArray, FloatArray, BoolArray, FloatArray]:
    """Employees, R&D staff and platforms; returns employees, R&D staff, platform and
    headcount growth."""
    rng, n, stage, noise, revenue, prev = d.rng, d.n, d.stage, d.noise, d.revenue, d.prev
    revenue_growth = d.revenue_growth
    if prev is None:
        employees = np.rint(np.exp(0.65 * np.log(revenue + 1.0) + 0.45 * rng.standard_normal(n)))
        headcount_growth = np.clip(8.0 + 20.0 * rng.standard_normal(n), -90.0, 300.0)
    else:
        step = np.clip(0.6 * revenue_growth / 100.0 + 0.08 * rng.standard_normal(n), -0.6, 3.0)
        employees = np.rint(prev.employees * (1.0 + step))
        employees = np.maximum(employees, 1.0)
        headcount_growth = (employees / prev.employees - 1.0) * 100.0
    employees = np.clip(employees, 1.0, 100_000.0)
    share = _sigmoid(_pick((0.0, -0.4, -0.8, -1.1, -1.4), stage) + 0.8 * noise)
    rd_staff = rng.binomial(employees.astype(np.int64), share).astype(np.float64)
    rd_staff = np.where(rd_expense > 0, rd_staff, 0.0)
    ind["rd_staff"] = rd_staff
    ind["rd_staff_share"] = _money(rd_staff / employees * 100.0)
    ind["postgrad_staff"] = rng.binomial(
        rd_staff.astype(np.int64), _sigmoid(-1.8 + 0.6 * noise)
    ).astype(np.float64)
    platform = _bernoulli(rng, _sigmoid(_logit((0.01, 0.03, 0.10, 0.25, 0.5))[stage] + noise))
    if prev is not None:
        platform = prev.platform | (platform & (rng.random(n) < 0.15))
    ind["rd_platform"] = platform.astype(np.float64)
    return employees, rd_staff, platform, headcount_growth


def _outputs(d: _Draw, ind: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
    """Patents, other IP, standards, contracts and high-tech revenue; returns the invention
    patents and the class II IP held."""
    rng, n, stage, z, noise, revenue, prev = d.rng, d.n, d.stage, d.z, d.noise, d.revenue, d.prev
    # Output: zero-inflated, over-dispersed counts that grow with stage and innovativeness.
    rate = _pick((1.0, 2.0, 4.0, 10.0, 40.0), stage) * np.exp(0.8 * noise)
    if prev is None:
        has = _bernoulli(rng, _sigmoid(_logit((0.2, 0.4, 0.6, 0.75, 0.9))[stage] + 0.8 * z))
        patents = np.where(has, 1.0 + rng.poisson(rate * rng.gamma(2.0, 0.5, n)), 0.0)
        granted = rng.binomial(patents.astype(np.int64), 0.25).astype(np.float64)
    else:
        active = (prev.patents > 0) | _bernoulli(rng, np.full(n, 0.05) + 0.05 * (z > 1))
        granted = np.where(active, rng.poisson(rate * 0.25), 0).astype(np.float64)
        lapsed = rng.binomial(prev.patents.astype(np.int64), 0.03).astype(np.float64)
        patents = np.maximum(prev.patents + granted - lapsed, granted)
    ind["invention_patents"] = patents
    ind["invention_patents_granted"] = granted
    c2_rate = _pick((3.0, 6.0, 12.0, 25.0, 60.0), stage) * np.exp(0.7 * noise)
    if prev is None:
        c2_has = _bernoulli(rng, _pick((0.65, 0.75, 0.85, 0.9, 0.95), stage))
        class2 = np.where(c2_has, rng.poisson(c2_rate), 0).astype(np.float64)
    else:
        class2 = prev.class2 + rng.poisson(c2_rate * 0.2)
    ind["class2_ip"] = class2
    pct_has = _bernoulli(rng, _sigmoid(_logit((0.02, 0.05, 0.12, 0.25, 0.45))[stage] + 0.7 * z))
    ind["pct_filings"] = np.where(pct_has, 1 + rng.poisson(np.exp(0.5 * noise)), 0).astype(
        np.float64
    )
    std_has = _bernoulli(rng, _sigmoid(_logit((0.01, 0.04, 0.10, 0.25, 0.5))[stage] + 0.7 * z))
    ind["standards"] = np.where(std_has, 1 + rng.poisson(np.exp(0.3 * noise)), 0).astype(np.float64)
    contract_has = _bernoulli(rng, _pick((0.10, 0.20, 0.30, 0.35, 0.40), stage))
    ind["tech_contract_turnover"] = np.where(
        contract_has, _money(revenue * np.exp(np.log(0.08) + rng.standard_normal(n))), 0.0
    )
    hightech = _bernoulli(rng, _sigmoid(_logit((0.5, 0.6, 0.7, 0.75, 0.8))[stage] + 0.5 * z))
    ind["hightech_revenue"] = np.where(
        hightech, np.minimum(_money(revenue * rng.beta(5.0, 2.0, n)), revenue), 0.0
    )
    return patents, class2


def _growth(d: _Draw, ind: dict[str, FloatArray], headcount_growth: FloatArray) -> None:
    """Growth and operation."""
    rng, n, stage, z, revenue_growth = d.rng, d.n, d.stage, d.z, d.revenue_growth
    ind["revenue_growth"] = revenue_growth
    ind["roe"] = _money(
        np.clip(
            _pick((-5.0, 3.0, 8.0, 10.0, 11.0), stage)
            + _pick((20.0, 15.0, 12.0, 10.0, 8.0), stage) * rng.standard_normal(n)
            + 3.0 * z,
            -1000.0,
            1000.0,
        )
    )
    ind["net_asset_growth"] = _money(
        np.clip(12.0 + 25.0 * rng.standard_normal(n) + 0.3 * revenue_growth, -100.0, 10000.0)
    )
    ind["headcount_growth"] = _money(np.clip(headcount_growth, -100.0, 10000.0))
    ind["tax_growth"] = _money(
        np.clip(0.8 * revenue_growth + 25.0 * rng.standard_normal(n), -100.0, 10000.0)
    )


def _auxiliary(
    d: _Draw, ind: dict[str, FloatArray], employees: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Graduates, equity raised, awards, tax grade; returns equity raised and grade A."""
    rng, n, stage, z, noise, prev = d.rng, d.n, d.stage, d.z, d.noise, d.prev
    ind["graduates_hired"] = rng.poisson(employees * 0.04 * np.exp(0.5 * noise)).astype(np.float64)
    raised = _bernoulli(rng, _sigmoid(_logit((0.08, 0.12, 0.10, 0.08, 0.05))[stage] + 0.5 * z))
    equity = np.where(
        raised,
        _money(_pick((200.0, 800.0, 2000.0, 5000.0, 20000.0), stage) * rng.lognormal(0.0, 0.8, n)),
        0.0,
    )
    ind["equity_raised"] = equity
    ind["st_awards"] = np.where(
        _bernoulli(rng, _pick((0.005, 0.02, 0.06, 0.15, 0.3), stage)), 1 + rng.poisson(0.5, n), 0
    ).astype(np.float64)
    grade_a = _bernoulli(rng, _pick((0.05, 0.15, 0.30, 0.45, 0.60), stage))
    if prev is not None:
        grade_a = np.where(rng.random(n) < 0.85, prev.grade_a, grade_a)
    ind["tax_grade_a"] = grade_a.astype(np.float64)
    return equity, grade_a


def _profile(
    d: _Draw,
    ind: dict[str, FloatArray],
    prof: dict[str, npt.NDArray[Any]],
    employees: FloatArray,
    rd_staff: FloatArray,
    equity: FloatArray,
) -> tuple[BoolArray, FloatArray]:
    """The profile attributes; returns whether listed, and total assets."""
    rng, n, stage, revenue, prev = d.rng, d.n, d.stage, d.revenue, d.prev
    revenue_growth, revenue_growth_prev = d.revenue_growth, d.revenue_growth_prev
    age_years = d.age_years
    main_share = np.where(
        rng.random(n) < 0.9, rng.uniform(70.0, 100.0, n), rng.uniform(40.0, 70.0, n)
    )
    prof["operating_revenue"] = revenue
    prof["main_business_share"] = _money(main_share)
    prof["main_business_revenue"] = _money(revenue * main_share / 100.0)
    total_assets = _money(
        revenue * _pick((3.0, 1.5, 1.1, 1.0, 1.2), stage) * rng.lognormal(0.0, 0.5, n)
    )
    prof["total_assets"] = total_assets
    prof["employees"] = employees
    st_staff = rd_staff + rng.binomial((employees - rd_staff).astype(np.int64), 0.15)
    prof["st_staff"] = st_staff.astype(np.float64)
    prof["rd_ratio_3y"] = _money(
        np.minimum(ind["rd_intensity"] * rng.lognormal(0.0, 0.15, n), 100.0)
    )
    prof["rd_domestic_share"] = np.where(
        rng.random(n) < 0.85, 100.0, _money(rng.uniform(60.0, 100.0, n))
    )
    prof["rd_cost_ratio"] = _money(
        np.minimum(ind["rd_intensity"] * rng.lognormal(np.log(1.15), 0.15, n), 100.0)
    )
    prof["revenue_growth_prev"] = revenue_growth_prev
    earlier = (
        prev.equity
        if prev is not None
        else np.where(_bernoulli(rng, np.full(n, 0.06)), equity * rng.uniform(0.3, 1.5, n), 0.0)
    )
    new_equity = _money(equity + earlier)
    prof["new_equity_2y"] = new_equity
    listed = _bernoulli(rng, _pick((0.0, 0.0, 0.002, 0.015, 0.12), stage))
    multiple = rng.lognormal(np.log(3.0 + np.maximum(revenue_growth, 0.0) / 10.0), 0.6)
    valuation = _money(revenue / 720.0 * multiple * np.where(new_equity > 0, 2.0, 1.0))
    # Unfunded, unlisted firms have no valuation anyone could cite.
    prof["valuation_usd_m"] = np.where((new_equity > 0) | listed, valuation, np.nan)
    prof["debt_ratio"] = _money(rng.beta(3.0, 4.0, n) * 100.0)
    prof["niche_years"] = np.floor(age_years * rng.uniform(0.5, 1.0, n))
    prof["niche_market_share"] = _money(
        np.minimum(_pick((0.1, 0.3, 1.0, 3.0, 8.0), stage) * rng.lognormal(-1.2, 1.0, n), 100.0)
    )
    prof["listed"] = listed
    prof["private_funded"] = rng.random(n) < 0.93
    prof["major_incident"] = rng.random(n) < 0.003
    return listed, total_assets


def _qualifications(
    d: _Draw,
    ind: dict[str, FloatArray],
    prof: dict[str, npt.NDArray[Any]],
    patents: FloatArray,
    class2: FloatArray,
    employees: FloatArray,
    total_assets: FloatArray,
    listed: BoolArray,
) -> tuple[BoolArray, BoolArray]:
    """Qualifications, from the facts above (loosely: the policy engine owns the exact
    rules); returns the HNTE and SRDI ones, which persist."""
    rng, n, stage, z, revenue, prev = d.rng, d.n, d.stage, d.z, d.revenue, d.prev
    revenue_growth, revenue_growth_prev = d.revenue_growth, d.revenue_growth_prev
    age_years = d.age_years
    innovative = (ind["rd_intensity"] >= 3.0) & ((patents > 0) | (class2 >= 6))
    hnte = innovative & (age_years >= 1.0) & (rng.random(n) < 0.8)
    srdi = (stage >= 1) & _bernoulli(rng, _sigmoid(-2.5 + 0.8 * z + 0.3 * stage))
    if prev is not None:
        hnte |= prev.hnte & (rng.random(n) < 0.9)
        srdi |= prev.srdi
    st_sme = (employees <= 500) & (revenue <= 20000) & (total_assets <= 20000)
    st_sme &= rng.random(n) < 0.6
    little_giant = srdi & (stage >= 3) & (rng.random(n) < 0.15)
    eaglet = (stage == 1) & (age_years <= 5.0) & (rng.random(n) < 0.3)
    gazelle = (revenue >= 1000) & (revenue_growth >= 25) & (revenue_growth_prev >= 25)
    gazelle &= rng.random(n) < 0.7
    young_private = ~listed & (age_years <= 10.0)
    val = np.nan_to_num(prof["valuation_usd_m"], nan=0.0)
    quasi = young_private & (val >= 100.0) & (val < 1000.0)
    unicorn = young_private & (val >= 1000.0)
    mask = np.zeros(n, dtype=np.uint16)
    for bit, held in enumerate((hnte, st_sme, srdi, little_giant, eaglet, gazelle, quasi, unicorn)):
        mask |= held.astype(np.uint16) << np.uint16(bit)
    prof["qualifications"] = mask
    ind["qualified"] = (hnte | srdi | st_sme).astype(np.float64)
    return hnte, srdi


def _negative_list(d: _Draw, prof: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.uint16]:
    """Negative list: ~0.5%, mostly persistent."""
    rng, n, prev = d.rng, d.n, d.prev
    flagged = rng.random(n) < 0.005
    negative = np.where(
        flagged, np.uint16(1) << rng.integers(0, len(NEGATIVE_FLAGS), n).astype(np.uint16), 0
    ).astype(np.uint16)
    if prev is not None:
        keep = rng.random(n) < 0.7
        negative = np.where(keep & (prev.negative > 0), prev.negative, negative).astype(np.uint16)
    prof["negative_flags"] = negative
    return negative


def _indicator_values(d: _Draw, ind: dict[str, FloatArray]) -> FloatArray:
    """The [n, 24] indicator matrix, with ~1% of firms leaving one to three cells empty."""
    rng, n = d.rng, d.n
    values = np.column_stack([ind[c] for c in INDICATOR_CODES]).astype(np.float64)
    gaps = np.flatnonzero(rng.random(n) < 0.01)
    for _ in range(3):
        cols = rng.integers(0, len(INDICATOR_CODES), gaps.size)
        values[gaps, cols] = np.nan
        gaps = gaps[rng.random(gaps.size) < 0.4]
    return values


def generate(
    n: int, seed: int = DEFAULT_SEED, periods: Sequence[int] = DEFAULT_PERIODS
) -> DemoData:
    """`n` firms over consecutive `periods` (years), fully determined by (n, seed, periods)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    periods = tuple(int(p) for p in periods)
    if not periods or any(b != a + 1 for a, b in itertools.pairwise(periods)):
        raise ValueError("periods must be consecutive years, e.g. (2024, 2025)")
    rng = np.random.default_rng(seed)

    stage = rng.choice(len(STAGES), size=n, p=STAGE_MIX).astype(np.int8)
    z = rng.standard_normal(n)
    lo, hi = _AGE_YEARS[stage, 0], _AGE_YEARS[stage, 1]
    age_years = lo + (hi - lo) * rng.beta(1.5, 2.0, n)
    first_end = np.datetime64(f"{periods[0]}-12-31")
    founded_on = first_end - np.rint(age_years * 365.25).astype("timedelta64[D]")

    uscc = usccs(rng, founded_on)
    weights = np.array([w for _, w, _ in INDUSTRIES])
    industry = rng.choice(len(INDUSTRIES), size=n, p=weights / weights.sum())
    name, industry_label = names(rng, industry, stage == 4)
    legal_rep = legal_reps(rng, n)

    revenue = _first_revenue(rng, stage)
    growth = _money(
        np.clip(
            _GROWTH_MEAN[stage] + _GROWTH_SD[stage] * rng.standard_normal(n) + 5 * z, -90.0, 400.0
        )
    )
    growth_prev = _money(
        np.clip(_GROWTH_MEAN[stage] + _GROWTH_SD[stage] * rng.standard_normal(n), -90.0, 400.0)
    )
    out: dict[int, PeriodData] = {}
    state: _State | None = None
    for k, period in enumerate(periods):
        if state is not None:
            s = stage_indices(state.revenue, DEFAULT_STAGE_BANDS)
            growth_prev = state.revenue_growth
            growth = np.clip(
                0.5 * state.revenue_growth
                + 0.5 * _GROWTH_MEAN[s]
                + _GROWTH_SD[s] * 0.8 * rng.standard_normal(n)
                + 5.0 * z,
                -60.0,
                300.0,
            )
            revenue = np.maximum(_money(state.revenue * (1.0 + growth / 100.0)), 0.5)
            # Report the growth the revenue columns actually show, to two decimals.
            growth = _money((revenue / state.revenue - 1.0) * 100.0)
            z = 0.9 * z + np.sqrt(1 - 0.81) * rng.standard_normal(n)
        data, state = _period(rng, period, revenue, growth, growth_prev, z, age_years + k, state)
        out[period] = data
    return DemoData(
        seed=seed,
        uscc=uscc,
        name=name,
        founded_on=founded_on,
        industry=industry_label,
        legal_rep=legal_rep,
        periods=out,
    )
