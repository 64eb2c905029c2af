"""The indicator catalogue and the enterprise profile attributes.

The 24 indicators follow domain.md section 1 (PROPOSAL, with the confirmed national names
reused): input 7, output 7, growth 5, auxiliary 5. Amounts are in 万元 (10,000 CNY), as in the
national guideline; ratios and growth rates in percent.

Profile attributes are the facts that stages and policies need beyond the 24 indicators.
Both lists are data: the import, the scoring engine, the policy engine and the demo generator
all read them from here, so a new indicator is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Dimension(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    GROWTH = "growth"
    AUXILIARY = "auxiliary"


class Stage(StrEnum):
    """Growth stages by operating revenue (Binjiang bands)."""

    SEED = "seed"  # 种子期 < 0.5M CNY
    SEEDLING = "seedling"  # 苗木期 0.5M-5M
    GROWTH = "growth"  # 成长期 5M-20M
    EXPANSION = "expansion"  # 壮大期 20M-100M
    MATURE = "mature"  # 成熟期 >= 100M


STAGES: tuple[Stage, ...] = tuple(Stage)
DIMENSIONS: tuple[Dimension, ...] = tuple(Dimension)

# kind decides validation on import and treatment in scoring:
#   amount  >= 0, any size                 count   >= 0 integer
#   ratio   0..100 (percent)               growth  -100..10000 (percent; may be negative)
#   roe     -1000..1000 (percent)          flag    0 or 1, scored all or nothing
Kind = Literal["amount", "count", "ratio", "growth", "roe", "flag"]


@dataclass(frozen=True, slots=True)
class Indicator:
    code: str
    dimension: Dimension
    name_zh: str
    name_en: str
    unit: str
    kind: Kind


INDICATORS: tuple[Indicator, ...] = (
    # Input 创新投入 (7)
    Indicator("rd_expense", Dimension.INPUT, "研发费用金额", "R&D expense", "万元", "amount"),
    Indicator(
        "rd_intensity",
        Dimension.INPUT,
        "研发费用占营业收入比例",
        "R&D expense to revenue",
        "%",
        "ratio",
    ),
    Indicator("rd_growth", Dimension.INPUT, "研发费用增速", "R&D expense growth", "%", "growth"),
    Indicator("rd_staff", Dimension.INPUT, "研发人员数", "R&D staff", "人", "count"),
    Indicator("rd_staff_share", Dimension.INPUT, "研发人员占比", "R&D staff share", "%", "ratio"),
    Indicator(
        "postgrad_staff", Dimension.INPUT, "硕士博士人数", "Master's and PhD staff", "人", "count"
    ),
    Indicator(
        "rd_platform",
        Dimension.INPUT,
        "省级以上研发平台",
        "Provincial or higher R&D platform",
        "是/否",
        "flag",
    ),
    # Output 创新产出 (7)
    Indicator(
        "invention_patents",
        Dimension.OUTPUT,
        "有效发明专利数",
        "Valid invention patents",
        "件",
        "count",
    ),
    Indicator(
        "invention_patents_granted",
        Dimension.OUTPUT,
        "当年发明专利授权数",
        "Invention patents granted this year",
        "件",
        "count",
    ),
    Indicator(
        "class2_ip",
        Dimension.OUTPUT,
        "二类知识产权数",
        "Class II IP (utility models, software copyrights)",
        "件",
        "count",
    ),
    Indicator("pct_filings", Dimension.OUTPUT, "PCT专利申请数", "PCT filings", "件", "count"),
    Indicator(
        "standards",
        Dimension.OUTPUT,
        "主导或参与制定标准数",
        "Standards led or joined",
        "项",
        "count",
    ),
    Indicator(
        "tech_contract_turnover",
        Dimension.OUTPUT,
        "技术合同成交额",
        "Technology-contract turnover",
        "万元",
        "amount",
    ),
    Indicator(
        "hightech_revenue",
        Dimension.OUTPUT,
        "高新技术产品收入",
        "High-tech product revenue",
        "万元",
        "amount",
    ),
    # Growth 成长性 (5)
    Indicator("revenue_growth", Dimension.GROWTH, "营业收入增速", "Revenue growth", "%", "growth"),
    Indicator("roe", Dimension.GROWTH, "净资产利润率", "Return on net assets", "%", "roe"),
    Indicator(
        "net_asset_growth", Dimension.GROWTH, "净资产增速", "Net-asset growth", "%", "growth"
    ),
    Indicator(
        "headcount_growth", Dimension.GROWTH, "从业人员增速", "Headcount growth", "%", "growth"
    ),
    Indicator("tax_growth", Dimension.GROWTH, "纳税总额增速", "Tax-paid growth", "%", "growth"),
    # Auxiliary 辅助指标 (5)
    Indicator(
        "graduates_hired",
        Dimension.AUXILIARY,
        "吸纳高校应届毕业生人数",
        "Fresh graduates hired",
        "人",
        "count",
    ),
    Indicator(
        "equity_raised",
        Dimension.AUXILIARY,
        "获得风险投资金额",
        "Equity and venture capital raised",
        "万元",
        "amount",
    ),
    Indicator(
        "qualified",
        Dimension.AUXILIARY,
        "高企/专精特新/科技型中小企业资质",
        "Holds HNTE, SRDI or S&T SME qualification",
        "是/否",
        "flag",
    ),
    Indicator("st_awards", Dimension.AUXILIARY, "科技奖励数", "S&T awards", "项", "count"),
    Indicator(
        "tax_grade_a", Dimension.AUXILIARY, "纳税信用A级", "Tax credit grade A", "是/否", "flag"
    ),
)

INDICATOR_CODES: tuple[str, ...] = tuple(i.code for i in INDICATORS)
INDICATORS_BY_CODE: dict[str, Indicator] = {i.code: i for i in INDICATORS}

ProfileKind = Literal["amount", "count", "ratio", "growth", "bool", "tags"]


@dataclass(frozen=True, slots=True)
class ProfileAttribute:
    code: str
    name_zh: str
    name_en: str
    unit: str
    kind: ProfileKind


# Values a `tags` attribute may hold; anything else is refused on import.
QUALIFICATIONS: tuple[str, ...] = (
    "hnte",  # 高新技术企业
    "st_sme",  # 科技型中小企业
    "srdi",  # 专精特新中小企业
    "little_giant",  # 专精特新"小巨人"
    "eaglet",  # 雏鹰企业
    "gazelle",  # 瞪羚企业
    "quasi_unicorn",  # 准独角兽
    "unicorn",  # 独角兽
)
NEGATIVE_FLAGS: tuple[str, ...] = (
    "abnormal_operation",  # 经营异常
    "serious_dishonesty",  # 严重失信
    "major_violation",  # 重大违法
)

PROFILE: tuple[ProfileAttribute, ...] = (
    ProfileAttribute("operating_revenue", "营业收入", "Operating revenue", "万元", "amount"),
    ProfileAttribute(
        "main_business_revenue", "主营业务收入", "Main-business revenue", "万元", "amount"
    ),
    ProfileAttribute("total_assets", "资产总额", "Total assets", "万元", "amount"),
    ProfileAttribute("employees", "从业人员数", "Employees", "人", "count"),
    ProfileAttribute("st_staff", "科技人员数", "S&T staff", "人", "count"),
    ProfileAttribute(
        "rd_ratio_3y", "近三年研发费用占销售收入比例", "3-year R&D to sales ratio", "%", "ratio"
    ),
    ProfileAttribute(
        "rd_domestic_share", "境内研发费用占比", "Share of R&D spent in China", "%", "ratio"
    ),
    ProfileAttribute(
        "rd_cost_ratio", "研发费用占成本费用比例", "R&D to total cost ratio", "%", "ratio"
    ),
    ProfileAttribute(
        "revenue_growth_prev", "上一年营业收入增速", "Revenue growth, prior year", "%", "growth"
    ),
    ProfileAttribute(
        "new_equity_2y", "近两年新增股权融资", "New equity in 2 years", "万元", "amount"
    ),
    ProfileAttribute("valuation_usd_m", "企业估值", "Valuation", "百万美元", "amount"),
    ProfileAttribute("debt_ratio", "资产负债率", "Debt ratio", "%", "ratio"),
    ProfileAttribute(
        "main_business_share", "主营业务收入占比", "Main business share of revenue", "%", "ratio"
    ),
    ProfileAttribute("niche_years", "从事细分领域年限", "Years in the niche", "年", "count"),
    ProfileAttribute(
        "niche_market_share", "细分市场全国占有率", "National niche market share", "%", "ratio"
    ),
    ProfileAttribute("listed", "是否上市", "Listed", "是/否", "bool"),
    ProfileAttribute("private_funded", "是否民营", "Privately funded", "是/否", "bool"),
    ProfileAttribute(
        "major_incident",
        "上年度重大安全质量环境事故",
        "Major safety/quality/environment incident last year",
        "是/否",
        "bool",
    ),
    ProfileAttribute("qualifications", "已获资质", "Qualifications held", "", "tags"),
    ProfileAttribute("negative_flags", "负面清单", "Negative-list flags", "", "tags"),
)

PROFILE_CODES: tuple[str, ...] = tuple(p.code for p in PROFILE)

# A run's score fields as scoring's export writes them and credit and policy read them (in
# this order).
RUN_SCORE_FIELDS: tuple[str, ...] = (
    "uscc",
    "name",
    "stage",
    "scored",
    "exclusion",
    "total",
    "rank",
    "cohort_size",
    "percentile",
    "tier",
)
PROFILE_BY_CODE: dict[str, ProfileAttribute] = {p.code: p for p in PROFILE}
