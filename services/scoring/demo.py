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

Identity columns look real but are invented: unified social credit codes carry correct check
characters (GB 32100, with a GB 11714 organisation code inside), names are unique.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.scoring.catalogue import (
    INDICATOR_CODES,
    INDICATORS_BY_CODE,
    NEGATIVE_FLAGS,
    PROFILE,
    PROFILE_CODES,
    QUALIFICATIONS,
    STAGES,
)
from services.scoring.engine import EngineInput
from services.scoring.model_spec import DEFAULT_STAGE_BANDS, stage_indices

DEFAULT_SEED = 20200908
DEFAULT_PERIODS: tuple[int, ...] = (2024, 2025)
STAGE_MIX: tuple[float, ...] = (0.20, 0.35, 0.22, 0.15, 0.08)

IDENTITY_COLUMNS: tuple[str, ...] = ("uscc", "name", "founded_on", "industry", "period")
CSV_COLUMNS: tuple[str, ...] = IDENTITY_COLUMNS + INDICATOR_CODES + PROFILE_CODES
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

# -- identity vocabularies ------------------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
# GB 11714 values of the USCC characters: digits as such, letters A=10 ... Z=35.
_ORG_VALUE = np.array([int(c, 36) for c in USCC_ALPHABET], dtype=np.int64)
_ALPHABET_BYTES = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
# Binjiang first; the platform also admits firms registered elsewhere in Hangzhou.
_DISTRICTS: tuple[tuple[str, float], ...] = (
    ("330108", 0.82),  # 滨江区
    ("330106", 0.06),  # 西湖区
    ("330110", 0.05),  # 余杭区
    ("330109", 0.03),  # 萧山区
    ("330102", 0.02),  # 上城区
    ("330105", 0.02),  # 拱墅区
)
# Organisation codes starting "MA" were issued with the unified codes from late 2015 on.
_UNIFIED_CODE_SINCE = np.datetime64("2015-10-01")

_INDUSTRIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("软件和信息技术服务", 0.28, ("软件", "信息技术", "网络科技", "数据科技")),
    ("电子信息制造", 0.08, ("电子", "电子科技", "光电科技")),
    ("集成电路", 0.06, ("微电子", "半导体", "芯片科技")),
    ("人工智能", 0.08, ("智能科技", "人工智能科技", "机器视觉")),
    ("物联网", 0.08, ("物联网科技", "物联科技", "传感技术")),
    ("数字安防", 0.06, ("安防科技", "视觉技术", "安全技术")),
    ("生物医药", 0.08, ("生物科技", "医药科技", "生物医药")),
    ("医疗器械", 0.05, ("医疗科技", "医疗器械")),
    ("高端装备制造", 0.06, ("智能装备", "机器人", "自动化科技")),
    ("新材料", 0.04, ("新材料", "材料科技")),
    ("新能源", 0.05, ("新能源科技", "能源科技", "储能技术")),
    ("节能环保", 0.04, ("环保科技", "节能科技", "环境技术")),
    ("数字文化创意", 0.04, ("文化传媒", "数字科技", "互动娱乐")),
)
_BRAND_CHARS = tuple(
    "华科创智信达诚联海天恒博瑞宇鑫云星数睿卓远安泰通汇新昊思源峰航锐讯普德明光润晟嘉合力芯腾驰"
    "启辰禾森蓝景和盛元正中维拓迅杰方宏健康极致微聚易立优图灵英网川越浩皓翼凯佳鼎银金同兴隆"
)
_SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.8), ("刘", 5.4), ("陈", 5.2), ("杨", 3.1), ("黄", 2.3),
    ("赵", 2.2), ("吴", 2.0), ("周", 1.9), ("徐", 1.5), ("孙", 1.5), ("马", 1.3), ("朱", 1.3),
    ("胡", 1.3), ("郭", 1.2), ("何", 1.2), ("林", 1.1), ("罗", 1.0), ("高", 1.0), ("郑", 0.9),
    ("梁", 0.9), ("谢", 0.8), ("宋", 0.7), ("唐", 0.7), ("许", 0.7), ("韩", 0.6), ("冯", 0.6),
    ("邓", 0.6), ("曹", 0.6), ("彭", 0.5), ("曾", 0.5), ("沈", 0.5), ("蒋", 0.5), ("叶", 0.5),
    ("潘", 0.4), ("钱", 0.3), ("楼", 0.2), ("俞", 0.2), ("施", 0.2), ("汪", 0.4), ("方", 0.3),
)  # fmt: skip
_GIVEN_CHARS = tuple(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文辉玲斌宇浩凯鹏晨琳俊峰雪颖婷宁欣"
    "志红海波丹萍晓东飞林嘉睿思远博亮鑫诚彬昊哲"
)

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


# -- identity -------------------------------------------------------------------------------


def _usccs(rng: np.random.Generator, founded_on: npt.NDArray[np.datetime64]) -> StrArray:
    n = int(founded_on.shape[0])
    idx = np.zeros((n, 18), dtype=np.int64)
    idx[:, 0] = 9  # registered by the market regulator
    idx[:, 1] = 1  # enterprise
    codes = np.array([[int(ch) for ch in d] for d, _ in _DISTRICTS], dtype=np.int64)
    weights = np.array([w for _, w in _DISTRICTS])
    idx[:, 2:8] = codes[rng.choice(len(_DISTRICTS), size=n, p=weights / weights.sum())]

    # Organisation code bodies, unique by construction: old firms 8 digits, new ones "MA" + 6.
    new = founded_on >= _UNIFIED_CODE_SINCE
    new_rows, old_rows = np.flatnonzero(new), np.flatnonzero(~new)
    body = np.zeros((n, 8), dtype=np.int64)
    serial = rng.choice(31**6, size=new_rows.size, replace=False)
    body[new_rows, 0] = USCC_ALPHABET.index("M")
    body[new_rows, 1] = USCC_ALPHABET.index("A")
    for p in range(7, 1, -1):
        body[new_rows, p] = serial % 31
        serial //= 31
    serial = rng.choice(10**8, size=old_rows.size, replace=False)
    for p in range(7, -1, -1):
        body[old_rows, p] = serial % 10
        serial //= 10
    check = 11 - (_ORG_VALUE[body] @ _ORG_WEIGHTS) % 11
    idx[:, 8:16] = body
    idx[:, 16] = np.where(check == 10, USCC_ALPHABET.index("X"), np.where(check == 11, 0, check))
    idx[:, 17] = (31 - (idx[:, :17] @ _USCC_WEIGHTS) % 31) % 31
    raw = np.ascontiguousarray(_ALPHABET_BYTES[idx])
    return raw.view("S18").ravel().astype("U18")


def _names(
    rng: np.random.Generator, industry: IntArray, mature: BoolArray
) -> tuple[StrArray, StrArray]:
    """Company names unique by construction, and the industry label of each."""
    n = int(industry.shape[0])
    words = [(i, w) for i, (_, _, ws) in enumerate(_INDUSTRIES) for w in ws]
    word_of_industry = [
        [k for k, (i, _) in enumerate(words) if i == ind] for ind in range(len(_INDUSTRIES))
    ]
    word = np.empty(n, dtype=np.int64)
    for ind, ks in enumerate(word_of_industry):
        rows = np.flatnonzero(industry == ind)
        word[rows] = np.asarray(ks)[rng.integers(0, len(ks), size=rows.size)]

    k = len(_BRAND_CHARS)
    chars = np.asarray(_BRAND_CHARS)
    counts = np.bincount(word, minlength=len(words))
    # Two-character brands read naturally; a third character makes room for very large n.
    two = counts.max() <= (k * (k - 1)) // 2
    brand = np.empty(n, dtype="U3")
    for w in np.flatnonzero(counts):
        rows = np.flatnonzero(word == w)
        if two:
            code = rng.choice(k * (k - 1), size=rows.size, replace=False)
            first, second = code // (k - 1), code % (k - 1)
            second = second + (second >= first)  # never the same character twice
            brand[rows] = np.char.add(chars[first], chars[second])
        else:
            code = rng.choice(k**3, size=rows.size, replace=False)
            brand[rows] = np.char.add(
                np.char.add(chars[code // (k * k)], chars[(code // k) % k]), chars[code % k]
            )
    word_text = np.asarray([w for _, w in words])[word]
    suffix = np.where(mature & (rng.random(n) < 0.35), "股份有限公司", "有限公司")
    name = np.char.add(np.char.add(np.char.add("杭州", brand), word_text), suffix)
    labels = np.asarray([label for label, _, _ in _INDUSTRIES])[industry]
    return name, labels


def _legal_reps(rng: np.random.Generator, n: int) -> StrArray:
    surnames = np.asarray([s for s, _ in _SURNAMES])
    weights = np.array([w for _, w in _SURNAMES])
    given = np.asarray(_GIVEN_CHARS)
    out = np.char.add(
        surnames[rng.choice(surnames.size, size=n, p=weights / weights.sum())],
        given[rng.integers(0, given.size, size=n)],
    )
    two = rng.random(n) < 0.7
    out[two] = np.char.add(out[two], given[rng.integers(0, given.size, size=int(two.sum()))])
    return out


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
    ind: dict[str, FloatArray] = {}
    prof: dict[str, npt.NDArray[Any]] = {}

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

    # Staff.
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

    # Growth and operation.
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

    # Auxiliary.
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

    # Profile.
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

    # Qualifications, from the facts above (loosely: the policy engine owns the exact rules).
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

    # Negative list: ~0.5%, mostly persistent.
    flagged = rng.random(n) < 0.005
    negative = np.where(
        flagged, np.uint16(1) << rng.integers(0, len(NEGATIVE_FLAGS), n).astype(np.uint16), 0
    ).astype(np.uint16)
    if prev is not None:
        keep = rng.random(n) < 0.7
        negative = np.where(keep & (prev.negative > 0), prev.negative, negative).astype(np.uint16)
    prof["negative_flags"] = negative

    values = np.column_stack([ind[c] for c in INDICATOR_CODES]).astype(np.float64)
    # ~1% of firms leave one to three indicator cells empty.
    gaps = np.flatnonzero(rng.random(n) < 0.01)
    for _ in range(3):
        cols = rng.integers(0, len(INDICATOR_CODES), gaps.size)
        values[gaps, cols] = np.nan
        gaps = gaps[rng.random(gaps.size) < 0.4]

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

    uscc = _usccs(rng, founded_on)
    weights = np.array([w for _, w, _ in _INDUSTRIES])
    industry = rng.choice(len(_INDUSTRIES), size=n, p=weights / weights.sum())
    name, industry_label = _names(rng, industry, stage == 4)
    legal_rep = _legal_reps(rng, n)

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


# -- consumers ------------------------------------------------------------------------------


def decode_tags(mask: int, vocabulary: Sequence[str]) -> list[str]:
    return [tag for bit, tag in enumerate(vocabulary) if mask >> bit & 1]


def engine_input(data: DemoData, period: int) -> EngineInput:
    """The engine's view of one period: firms on the negative list are excluded."""
    p = data.periods[period]
    negative = p.profile["negative_flags"]
    table = np.empty(1 << len(NEGATIVE_FLAGS), dtype=object)
    for mask in range(table.size):
        tags = decode_tags(mask, NEGATIVE_FLAGS)
        table[mask] = f"{NEGATIVE_LIST_REASON}:{','.join(tags)}" if tags else None
    return EngineInput(
        revenue=p.revenue, values=p.indicators, excluded_reason=table[negative.astype(np.int64)]
    )


def _format_column(kind: str, column: npt.NDArray[Any], vocabulary: Sequence[str]) -> list[str]:
    if kind == "tags":
        lookup = [";".join(decode_tags(m, vocabulary)) for m in range(1 << len(vocabulary))]
        return [lookup[m] for m in column.tolist()]
    if kind == "bool":
        return ["1" if v else "0" for v in column.tolist()]
    if kind in ("count", "flag"):
        return ["" if v != v else str(int(v)) for v in column.tolist()]
    # repr of a float round-trips exactly, so a re-imported file scores identically.
    return ["" if v != v else repr(v) for v in column.tolist()]


def rows(
    data: DemoData, period: int, *, chunk: int = 10_000, legal_rep: bool = False
) -> Iterator[dict[str, str]]:
    """The import-file rows of one period, keyed by CSV column name, values already formatted
    (tags `;`-separated, booleans 0/1, missing as ""). Formatted a chunk at a time so that a
    million rows do not sit in memory as strings."""
    p = data.periods[period]
    kinds: dict[str, str] = {c: INDICATORS_BY_CODE[c].kind for c in INDICATOR_CODES}
    kinds.update({a.code: a.kind for a in PROFILE})
    columns = list(CSV_COLUMNS) + (["legal_rep"] if legal_rep else [])
    for start in range(0, data.n, chunk):
        stop = min(start + chunk, data.n)
        cols: dict[str, list[str]] = {
            "uscc": data.uscc[start:stop].tolist(),
            "name": data.name[start:stop].tolist(),
            "founded_on": data.founded_on[start:stop].astype(str).tolist(),
            "industry": data.industry[start:stop].tolist(),
            "period": [str(period)] * (stop - start),
        }
        if legal_rep:
            cols["legal_rep"] = data.legal_rep[start:stop].tolist()
        for j, code in enumerate(INDICATOR_CODES):
            cols[code] = _format_column(kinds[code], p.indicators[start:stop, j], ())
        for code in PROFILE_CODES:
            cols[code] = _format_column(
                kinds[code], p.profile[code][start:stop], TAG_VOCABULARIES.get(code, ())
            )
        for i in range(stop - start):
            yield {c: cols[c][i] for c in columns}


def write_csv(data: DemoData, period: int, path: str | Path, *, legal_rep: bool = False) -> int:
    """Write one period as an import file (UTF-8, header first); returns the number of rows."""
    columns = list(CSV_COLUMNS) + (["legal_rep"] if legal_rep else [])
    count = 0
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows(data, period, legal_rep=legal_rep):
            writer.writerow(row)
            count += 1
    return count


def stage_counts(data: DemoData, period: int) -> Mapping[str, int]:
    counts = np.bincount(data.periods[period].stage(), minlength=len(STAGES))
    return {s.value: int(c) for s, c in zip(STAGES, counts, strict=True)}
