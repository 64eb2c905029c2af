"""Cultivation pools (培育库) with their published criteria, and the seeded policies.

Pools follow domain.md section 2; clause texts summarise the cited rules (national wording for
HNTE and S&T SME, our summary of the local rules elsewhere). Where a condition has no fact in
`contracts.catalogue`, the pool's `approximations` say what stands in for it, or that it
is left out; such gaps make the engine over- or under-select, and each says which.

Policies are SEED DATA for the demo and tests: modelled on typical Hangzhou/Binjiang support
measures, with plausible amounts, but not copies of published documents (`illustrative=True`).
Real policies are entered by staff through the same models and `validate_rule`.

Stage targets follow the Binjiang table (seed -> S&T SME, seedling -> eaglet, growth -> HNTE,
expansion -> gazelle, mature -> unicorn). Little giants are the expansion stage's "hidden
champions"; quasi-unicorns are the expansion-stage pipeline towards unicorn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.catalogue import NEGATIVE_FLAGS, Stage
from services.policy.criteria import (
    Band,
    Banded,
    CompiledRule,
    Criterion,
    Group,
    Node,
    Op,
    PointsBand,
    PointsGroup,
    PointsItem,
    PointsScale,
    Rule,
    Threshold,
    compile_rule,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CultivationPool(_Model):
    """A cultivation pool (培育库) and the rule that decides who belongs in it."""

    code: str
    name_zh: str
    name_en: str
    target_stage: Stage
    clause: str  # the rule text, summarised
    sources: list[str]  # domain.md source keys
    approximations: list[str]  # where facts stand in for conditions, or conditions are left out
    rule: Rule


BenefitKind = Literal["reward", "subsidy", "interest_subsidy", "tax", "voucher", "service"]


class Benefit(_Model):
    kind: BenefitKind
    description_zh: str
    amount_wan: float | None = Field(None, ge=0)  # most one firm can receive, in 万元


class Policy(_Model):
    code: str
    title_zh: str
    title_en: str
    department_zh: str
    summary_zh: str
    benefits: list[Benefit]
    valid_from: date
    valid_to: date | None  # None: until revoked
    pools: list[str]  # linked cultivation pools
    rule: Rule
    illustrative: bool = True  # seed data, not a published document
    approximations: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Builders: keep each clause next to its numbers
# --------------------------------------------------------------------------------------------


def _c(
    cid: str,
    fact: str,
    op: Op,
    threshold: Threshold = None,
    *,
    label: str,
    clause: str,
    per: str | None = None,
    banded: Banded | None = None,
    closeable: bool = True,
) -> Criterion:
    return Criterion(
        id=cid,
        fact=fact,
        op=op,
        threshold=threshold,
        per=per,
        banded=banded,
        label_zh=label,
        clause=clause,
        closeable=closeable,
    )


def _all(gid: str, *items: Node, label: str = "", clause: str = "") -> Group:
    return Group(kind="all", id=gid, label_zh=label, clause=clause, items=list(items))


def _any(gid: str, *items: Node, label: str = "", clause: str = "") -> Group:
    return Group(kind="any", id=gid, label_zh=label, clause=clause, items=list(items))


def _bands(by: str, *bands: tuple[float | None, bool, float]) -> Banded:
    return Banded(
        by=by,
        bands=[Band(upper=u, upper_inclusive=inc, threshold=t) for u, inc, t in bands],
    )


def _scale(fact: str, *bands: tuple[float, float], per: str | None = None) -> PointsScale:
    return PointsScale(fact=fact, per=per, bands=[PointsBand(min=m, points=p) for m, p in bands])


def _clean(prefix: str) -> Criterion:
    """The negative list is a gate (domain.md section 1), for every pool and policy."""
    return _c(
        f"{prefix}.negative_list",
        "negative_flags",
        "not_contains",
        list(NEGATIVE_FLAGS),
        label="未列入经营异常名录、严重失信或重大违法名单",
        clause="企业未被列入经营异常名录和严重违法失信企业名单，无重大违法行为",
    )


# --------------------------------------------------------------------------------------------
# Pools
# --------------------------------------------------------------------------------------------

_ST_SME_CLAUSE = (
    "《科技型中小企业评价办法》(国科发政〔2017〕115号)第六条：职工总数不超过500人、年销售收入"
    "不超过2亿元、资产总额不超过2亿元；未发生重大安全、重大质量事故和严重环境违法、科研严重"
    "失信行为，且未列入经营异常名录和严重违法失信企业名单；综合评价得分不低于60分，且科技人员"
    "指标得分不得为0分。第八条：符合上述条件并拥有有效期内高新技术企业资格证书、近五年内获得过"
    "国家级科技奖励(获奖单位前三名)、拥有经认定的省部级以上研发机构或近五年内主导制定过国际"
    "标准、国家标准或行业标准之一的，可直接确认。"
)


def _st_sme_rule() -> Rule:
    points = PointsGroup(
        id="st_sme.self_evaluation",
        label_zh="科技型中小企业评价指标(满分100分)",
        clause="综合评价所得分值不低于60分，且科技人员指标得分不得为0分",
        pass_at=60,
        items=[
            PointsItem(
                id="st_sme.points.st_staff",
                label_zh="科技人员指标(20分)",
                clause="科技人员数占企业职工总数的比例：30%(含)以上20分，25%-30%16分，"
                "20%-25%12分，15%-20%8分，10%-15%4分，10%以下0分",
                required_nonzero=True,
                scales=[
                    _scale(
                        "st_staff",
                        (10, 4),
                        (15, 8),
                        (20, 12),
                        (25, 16),
                        (30, 20),
                        per="employees",
                    )
                ],
            ),
            PointsItem(
                id="st_sme.points.rd",
                label_zh="研发投入指标(50分)",
                clause="研发费用总额占销售收入总额的比例：6%(含)以上50分，5%-6%40分，4%-5%30分，"
                "3%-4%20分，2%-3%10分，2%以下0分；或研发费用总额占成本费用支出总额的比例："
                "30%(含)以上50分，25%-30%40分，20%-25%30分，15%-20%20分，10%-15%10分，"
                "10%以下0分(企业择一)",
                scales=[
                    _scale("rd_intensity", (2, 10), (3, 20), (4, 30), (5, 40), (6, 50)),
                    _scale("rd_cost_ratio", (10, 10), (15, 20), (20, 30), (25, 40), (30, 50)),
                ],
            ),
            PointsItem(
                id="st_sme.points.ip",
                label_zh="科技成果指标(30分)",
                clause="拥有在有效期内的与主要产品(或服务)相关的知识产权：1项及以上Ⅰ类知识产权30分；"
                "4项及以上Ⅱ类24分，3项Ⅱ类18分，2项Ⅱ类12分，1项Ⅱ类6分，无0分",
                scales=[
                    _scale("invention_patents", (1, 30)),
                    _scale("class2_ip", (1, 6), (2, 12), (3, 18), (4, 24)),
                ],
            ),
        ],
    )
    direct = "第八条直接确认条件"
    return Rule(
        id="pool:st_sme",
        root=_all(
            "st_sme",
            _c(
                "st_sme.employees",
                "employees",
                "<=",
                500,
                label="职工总数不超过500人",
                clause="职工总数不超过500人",
                closeable=False,
            ),
            _c(
                "st_sme.revenue",
                "operating_revenue",
                "<=",
                20000,
                label="年销售收入不超过2亿元",
                clause="年销售收入不超过2亿元",
                closeable=False,
            ),
            _c(
                "st_sme.assets",
                "total_assets",
                "<=",
                20000,
                label="资产总额不超过2亿元",
                clause="资产总额不超过2亿元",
                closeable=False,
            ),
            _c(
                "st_sme.no_incident",
                "major_incident",
                "is_false",
                label="未发生重大安全、质量事故或严重环境违法",
                clause="未发生重大安全、重大质量事故和严重环境违法、科研严重失信行为",
            ),
            _clean("st_sme"),
            _any(
                "st_sme.route",
                points,
                _c(
                    "st_sme.direct.hnte",
                    "qualifications",
                    "contains",
                    "hnte",
                    label="拥有有效期内高新技术企业资格证书",
                    clause=direct + "(一)",
                ),
                _c(
                    "st_sme.direct.award",
                    "st_awards",
                    ">=",
                    1,
                    label="近五年内获得国家级科技奖励(获奖单位前三名)",
                    clause=direct + "(二)",
                    closeable=False,
                ),
                _c(
                    "st_sme.direct.platform",
                    "rd_platform",
                    "is_true",
                    label="拥有经认定的省部级以上研发机构",
                    clause=direct + "(三)",
                ),
                _c(
                    "st_sme.direct.standard",
                    "standards",
                    ">=",
                    1,
                    label="近五年内主导制定过国际、国家或行业标准",
                    clause=direct + "(四)",
                    closeable=False,
                ),
                label="评价得分达标或符合直接确认条件",
            ),
        ),
    )


_EAGLET_CLAUSE = (
    "杭州市雏鹰计划企业(据 domain.md §2 [S23] 概括)：注册成立不超过5年；上年度销售收入不超过"
    "5000万元；职工总数不少于10人，科技人员占职工总数比例不低于15%；上年度研发费用不低于50万元，"
    "且占销售收入比例：销售收入3000万元以下的不低于5%，3000万元至5000万元的不低于4%；拥有1项"
    "及以上Ⅱ类及以上知识产权。"
)


def _eaglet_rule() -> Rule:
    return Rule(
        id="pool:eaglet",
        root=_all(
            "eaglet",
            _c(
                "eaglet.age",
                "age_years",
                "<=",
                5,
                label="注册成立不超过5年",
                clause="注册成立时间不超过5年",
            ),
            _c(
                "eaglet.revenue",
                "operating_revenue",
                "<=",
                5000,
                label="上年度销售收入不超过5000万元",
                clause="上年度销售收入不超过5000万元",
                closeable=False,
            ),
            _c(
                "eaglet.employees",
                "employees",
                ">=",
                10,
                label="职工总数不少于10人",
                clause="职工总数不少于10人",
            ),
            _c(
                "eaglet.st_staff_share",
                "st_staff",
                ">=",
                15,
                per="employees",
                label="科技人员占职工总数比例不低于15%",
                clause="科技人员占职工总数比例不低于15%",
            ),
            _c(
                "eaglet.rd_expense",
                "rd_expense",
                ">=",
                50,
                label="上年度研发费用不低于50万元",
                clause="上年度研发费用不低于50万元",
            ),
            _c(
                "eaglet.rd_intensity",
                "rd_intensity",
                ">=",
                banded=_bands("operating_revenue", (3000, False, 5), (None, False, 4)),
                label="研发费用占销售收入比例达标",
                clause="销售收入3000万元以下的不低于5%，3000万元至5000万元的不低于4%",
            ),
            _any(
                "eaglet.ip",
                _c(
                    "eaglet.ip.class2",
                    "class2_ip",
                    ">=",
                    1,
                    label="拥有1项及以上Ⅱ类知识产权",
                    clause="拥有1项及以上Ⅱ类知识产权",
                ),
                _c(
                    "eaglet.ip.invention",
                    "invention_patents",
                    ">=",
                    1,
                    label="或拥有1项及以上发明专利(Ⅰ类)",
                    clause="Ⅰ类知识产权高于Ⅱ类，同样满足",
                ),
                label="拥有知识产权",
            ),
            _clean("eaglet"),
        ),
    )


_HNTE_CLAUSE = (
    "《高新技术企业认定管理办法》(国科发火〔2016〕32号)第十一条：注册成立一年以上；拥有对主要"
    "产品(服务)发挥核心支持作用的知识产权；科技人员占当年职工总数比例不低于10%；近三个会计年度"
    "研究开发费用总额占同期销售收入总额比例：最近一年销售收入5000万元(含)以下不低于5%，5000万元"
    "至2亿元(含)不低于4%，2亿元以上不低于3%，其中境内研发费用占比不低于60%；近一年高新技术产品"
    "(服务)收入占同期总收入比例不低于60%；创新能力评价达到相应要求；申请认定前一年内未发生重大"
    "安全、重大质量事故或严重环境违法行为。"
)


def _hnte_criteria(prefix: str) -> list[Node]:
    """The HNTE conditions, reusable by policies that embed them."""
    return [
        _c(
            f"{prefix}.age",
            "age_years",
            ">=",
            1,
            label="注册成立一年以上",
            clause="企业申请认定时须注册成立一年以上",
        ),
        _any(
            f"{prefix}.core_ip",
            _c(
                f"{prefix}.core_ip.invention",
                "invention_patents",
                ">=",
                1,
                label="拥有1项及以上发明专利",
                clause="对主要产品(服务)发挥核心支持作用的知识产权(实务中1项Ⅰ类)",
            ),
            _c(
                f"{prefix}.core_ip.class2",
                "class2_ip",
                ">=",
                6,
                label="或拥有6项及以上Ⅱ类知识产权",
                clause="对主要产品(服务)发挥核心支持作用的知识产权(实务中约6项Ⅱ类)",
            ),
            label="拥有核心自主知识产权",
        ),
        _c(
            f"{prefix}.st_staff_share",
            "st_staff",
            ">=",
            10,
            per="employees",
            label="科技人员占职工总数比例不低于10%",
            clause="从事研发和相关技术创新活动的科技人员占企业当年职工总数的比例不低于10%",
        ),
        _c(
            f"{prefix}.rd_ratio",
            "rd_ratio_3y",
            ">=",
            banded=_bands("operating_revenue", (5000, True, 5), (20000, True, 4), (None, False, 3)),
            label="近三年研发费用占销售收入比例达标",
            clause="最近一年销售收入5000万元(含)以下不低于5%，5000万元至2亿元(含)不低于4%，"
            "2亿元以上不低于3%",
        ),
        _c(
            f"{prefix}.rd_domestic",
            "rd_domestic_share",
            ">=",
            60,
            label="境内研发费用占比不低于60%",
            clause="在中国境内发生的研究开发费用总额占全部研究开发费用总额的比例不低于60%",
        ),
        _c(
            f"{prefix}.hightech_share",
            "hightech_revenue",
            ">=",
            60,
            per="operating_revenue",
            label="高新技术产品(服务)收入占比不低于60%",
            clause="近一年高新技术产品(服务)收入占企业同期总收入的比例不低于60%",
        ),
        _c(
            f"{prefix}.no_incident",
            "major_incident",
            "is_false",
            label="前一年内未发生重大安全、质量事故或严重环境违法",
            clause="申请认定前一年内未发生重大安全、重大质量事故或严重环境违法行为",
        ),
        _clean(prefix),
    ]


_GAZELLE_CLAUSE = (
    "杭州高新区(滨江)瞪羚企业(2017，据 domain.md §2 [S22] 概括)：主营业务收入1000万元以上的"
    "高新技术企业；前两年营业收入每年增长率：主营业务收入5000万元以下的不低于25%，5000万元至"
    "1亿元的不低于20%，1亿元以上的不低于15%。"
)


def _gazelle_rule() -> Rule:
    def growth(cid: str, fact: str, which: str) -> Criterion:
        return _c(
            cid,
            fact,
            ">=",
            banded=_bands(
                "main_business_revenue", (5000, False, 25), (10000, False, 20), (None, False, 15)
            ),
            label=f"{which}营业收入增长率达标",
            clause="5000万元以下不低于25%，5000万元至1亿元不低于20%，1亿元以上不低于15%",
        )

    return Rule(
        id="pool:gazelle",
        root=_all(
            "gazelle",
            _c(
                "gazelle.main_revenue",
                "main_business_revenue",
                ">=",
                1000,
                label="主营业务收入1000万元以上",
                clause="主营业务收入1000万元以上",
            ),
            _c(
                "gazelle.hightech",
                "qualifications",
                "contains",
                "hnte",
                label="高新技术企业",
                clause="属于高新技术企业",
            ),
            growth("gazelle.growth_last", "revenue_growth", "上一年度"),
            growth("gazelle.growth_prev", "revenue_growth_prev", "前一年度"),
            _clean("gazelle"),
        ),
    )


_UNICORN_CLAUSE = (
    "独角兽企业(据 domain.md §2 [S24][S25][S26] 概括)：成立不超过10年，获得过私募投资且尚未"
    "上市，估值10亿美元以上。杭州准独角兽企业：其他条件相同，估值1亿美元以上。"
)


def _unicorn_base(prefix: str) -> list[Node]:
    return [
        _c(
            f"{prefix}.age",
            "age_years",
            "<=",
            10,
            label="成立不超过10年",
            clause="成立时间不超过10年",
        ),
        _c(
            f"{prefix}.private",
            "private_funded",
            "is_true",
            label="获得过私募投资(民营)",
            clause="获得过私募投资",
        ),
        _c(f"{prefix}.unlisted", "listed", "is_false", label="尚未上市", clause="尚未上市"),
    ]


def _unicorn_rule() -> Rule:
    return Rule(
        id="pool:unicorn",
        root=_all(
            "unicorn",
            *_unicorn_base("unicorn"),
            _clean("unicorn"),
            _c(
                "unicorn.valuation",
                "valuation_usd_m",
                ">=",
                1000,
                label="估值10亿美元以上",
                clause="企业估值10亿美元以上",
            ),
        ),
    )


def _quasi_unicorn_rule() -> Rule:
    return Rule(
        id="pool:quasi_unicorn",
        root=_all(
            "quasi_unicorn",
            *_unicorn_base("quasi_unicorn"),
            _clean("quasi_unicorn"),
            _c(
                "quasi_unicorn.valuation",
                "valuation_usd_m",
                ">=",
                100,
                label="估值1亿美元以上",
                clause="企业估值1亿美元以上",
            ),
            _c(
                "quasi_unicorn.below_unicorn",
                "valuation_usd_m",
                "<",
                1000,
                label="估值未达10亿美元(否则为独角兽)",
                clause="估值10亿美元以上者列入独角兽企业",
                closeable=False,
            ),
        ),
    )


_LITTLE_GIANT_CLAUSE = (
    "专精特新“小巨人”企业(工信部，据 domain.md §2 [S27] 概括)：从事特定细分市场3年以上；主营业务"
    "收入占营业收入比重不低于70%；近2年主营业务收入平均增长率不低于5%；资产负债率不高于70%；"
    "研发费用：营业收入1亿元以上的不低于3%，5000万元至1亿元的不低于6%，5000万元以下的须近2年"
    "新增股权融资8000万元以上、研发费用总额3000万元以上且研发人员占比50%以上；拥有2项以上"
    "Ⅰ类知识产权；主导产品全国细分市场占有率10%以上。"
)


def _little_giant_rule() -> Rule:
    return Rule(
        id="pool:little_giant",
        root=_all(
            "little_giant",
            _c(
                "little_giant.niche_years",
                "niche_years",
                ">=",
                3,
                label="从事特定细分市场3年以上",
                clause="从事特定细分市场时间达到3年以上",
            ),
            _c(
                "little_giant.main_share",
                "main_business_share",
                ">=",
                70,
                label="主营业务收入占比不低于70%",
                clause="主营业务收入总额占营业收入总额比重不低于70%",
            ),
            Criterion(
                id="little_giant.growth_avg",
                op="cel",
                expr="(revenue_growth + revenue_growth_prev) / 2.0 >= 5.0",
                label_zh="近2年收入平均增长率不低于5%",
                clause="近2年主营业务收入平均增长率不低于5%",
            ),
            _c(
                "little_giant.debt_ratio",
                "debt_ratio",
                "<=",
                70,
                label="资产负债率不高于70%",
                clause="截至上年末的资产负债率不高于70%",
            ),
            _any(
                "little_giant.rd",
                _all(
                    "little_giant.rd.by_ratio",
                    _c(
                        "little_giant.rd.revenue",
                        "operating_revenue",
                        ">=",
                        5000,
                        label="营业收入5000万元以上",
                        clause="按营业收入分档考核研发费用比例",
                    ),
                    _c(
                        "little_giant.rd.intensity",
                        "rd_intensity",
                        ">=",
                        banded=_bands("operating_revenue", (10000, False, 6), (None, False, 3)),
                        label="研发费用占营业收入比例达标",
                        clause="营业收入1亿元以上的不低于3%，5000万元至1亿元的不低于6%",
                    ),
                    label="按研发强度",
                ),
                _all(
                    "little_giant.rd.by_equity",
                    _c(
                        "little_giant.rd.small",
                        "operating_revenue",
                        "<",
                        5000,
                        label="营业收入5000万元以下",
                        clause="营业收入5000万元以下的企业",
                        closeable=False,
                    ),
                    _c(
                        "little_giant.rd.equity",
                        "new_equity_2y",
                        ">=",
                        8000,
                        label="近2年新增股权融资8000万元以上",
                        clause="近2年新增股权融资总额8000万元以上",
                    ),
                    _c(
                        "little_giant.rd.expense",
                        "rd_expense",
                        ">=",
                        3000,
                        label="研发费用3000万元以上",
                        clause="研发费用总额3000万元以上",
                    ),
                    _c(
                        "little_giant.rd.staff",
                        "rd_staff_share",
                        ">=",
                        50,
                        label="研发人员占比50%以上",
                        clause="研发人员占企业职工总数比重50%以上",
                    ),
                    label="按股权融资与研发投入",
                ),
                label="研发投入达标",
            ),
            _c(
                "little_giant.invention",
                "invention_patents",
                ">=",
                2,
                label="拥有2项以上Ⅰ类知识产权",
                clause="拥有2项以上与主导产品相关的Ⅰ类知识产权",
            ),
            _c(
                "little_giant.market_share",
                "niche_market_share",
                ">=",
                10,
                label="细分市场全国占有率10%以上",
                clause="主导产品在全国细分市场占有率达到10%以上",
            ),
            _clean("little_giant"),
        ),
    )


POOLS: tuple[CultivationPool, ...] = (
    CultivationPool(
        code="st_sme",
        name_zh="科技型中小企业",
        name_en="S&T-based SME",
        target_stage=Stage.SEED,
        clause=_ST_SME_CLAUSE,
        sources=["S19", "S20", "S21"],
        approximations=[
            "销售收入 = operating_revenue；Ⅰ类知识产权 = invention_patents (不含植物新品种等)。",
            "直接确认(二)“国家级科技奖励”以 st_awards>=1 代替：目录未区分奖励级别，会多选；"
            "因此该项不计入“接近”(closeable=false)。",
            "直接确认(四)“主导制定标准”以 standards>=1 代替：目录含参与制定，会多选。",
            "“产品和服务不属于禁止、限制和淘汰类”无对应事实，未纳入。",
        ],
        rule=_st_sme_rule(),
    ),
    CultivationPool(
        code="eaglet",
        name_zh="雏鹰企业",
        name_en="Eaglet enterprise",
        target_stage=Stage.SEEDLING,
        clause=_EAGLET_CLAUSE,
        sources=["S23"],
        approximations=[
            "“成立约5年以内”取 age_years<=5。",
            "Ⅱ类知识产权要求也接受发明专利(Ⅰ类)。",
            "负面清单作为通用门槛加入(domain.md §1)。",
        ],
        rule=_eaglet_rule(),
    ),
    CultivationPool(
        code="hnte",
        name_zh="国家高新技术企业",
        name_en="National high-tech enterprise (HNTE)",
        target_stage=Stage.GROWTH,
        clause=_HNTE_CLAUSE,
        sources=["S16", "S17", "S18"],
        approximations=[
            "核心知识产权：办法未规定数量，取实务口径 1 项发明专利或 6 项Ⅱ类 [S18]。",
            "“技术属于国家重点支持的高新技术领域”无对应事实，未纳入(会多选)。",
            "“创新能力评价达到70分”为专家评审，无法由事实计算，未纳入(会多选)；"
            "本规则判定的是可量化条件。",
            "总收入以 operating_revenue 代替；研发比例分档按最近一年 operating_revenue。",
        ],
        rule=Rule(id="pool:hnte", root=_all("hnte", *_hnte_criteria("hnte"))),
    ),
    CultivationPool(
        code="gazelle",
        name_zh="瞪羚企业",
        name_en="Gazelle enterprise",
        target_stage=Stage.EXPANSION,
        clause=_GAZELLE_CLAUSE,
        sources=["S22"],
        approximations=[
            "“高新技术企业”以 qualifications 含 hnte 判定。",
            "增长率用营业收入增速 revenue_growth / revenue_growth_prev 代替主营业务收入增速；"
            "规模分档按最近一年 main_business_revenue。",
        ],
        rule=_gazelle_rule(),
    ),
    CultivationPool(
        code="little_giant",
        name_zh="专精特新“小巨人”企业",
        name_en="SRDI 'little giant'",
        target_stage=Stage.EXPANSION,
        clause=_LITTLE_GIANT_CLAUSE,
        sources=["S27"],
        approximations=[
            "近2年研发费用比例以上一年 rd_intensity 代替。",
            "近2年主营业务收入平均增长率以 (revenue_growth + revenue_growth_prev)/2 代替(CEL)。",
            "5000万元以下路径的“近2年研发费用总额3000万元”以上一年 rd_expense>=3000 代替："
            "更严，会少选。",
            "Ⅰ类知识产权 = invention_patents。",
        ],
        rule=_little_giant_rule(),
    ),
    CultivationPool(
        code="quasi_unicorn",
        name_zh="准独角兽企业",
        name_en="Quasi-unicorn",
        target_stage=Stage.EXPANSION,
        clause=_UNICORN_CLAUSE,
        sources=["S24", "S25", "S26"],
        approximations=[
            "“获得私募投资”以 private_funded 代替。",
            "估值达10亿美元者归独角兽，准独角兽要求估值低于10亿美元。",
        ],
        rule=_quasi_unicorn_rule(),
    ),
    CultivationPool(
        code="unicorn",
        name_zh="独角兽企业",
        name_en="Unicorn",
        target_stage=Stage.MATURE,
        clause=_UNICORN_CLAUSE,
        sources=["S24", "S25", "S26"],
        approximations=["“获得私募投资”以 private_funded 代替。"],
        rule=_unicorn_rule(),
    ),
)

POOLS_BY_CODE: Mapping[str, CultivationPool] = MappingProxyType({p.code: p for p in POOLS})


# --------------------------------------------------------------------------------------------
# Policies (seed data)
# --------------------------------------------------------------------------------------------

_KJJ = "杭州高新区(滨江)科学技术局"
_JXJ = "杭州高新区(滨江)经济和信息化局"
_RSJ = "杭州高新区(滨江)人力资源和社会保障局"
_SCJ = "杭州高新区(滨江)市场监督管理局(知识产权局)"
_JRB = "杭州高新区(滨江)金融服务中心"
_FGJ = "杭州高新区(滨江)发展和改革局"

_FROM = date(2025, 1, 1)
# Illustrative policies run until revoked: a fixed end date would silently empty the demo
# (expired policies are no longer matched) the year after it was written.
_TO: date | None = None


def _holds(cid: str, tags: Threshold, label: str, clause: str) -> Criterion:
    return _c(cid, "qualifications", "contains", tags, label=label, clause=clause)


def _policy(
    code: str,
    title_zh: str,
    title_en: str,
    department: str,
    summary: str,
    benefits: Sequence[Benefit],
    pools: Sequence[str],
    *criteria: Node,
    approximations: Sequence[str] = (),
    gate: bool = True,
    valid_from: date = _FROM,
    valid_to: date | None = _TO,
) -> Policy:
    return Policy(
        code=code,
        title_zh=title_zh,
        title_en=title_en,
        department_zh=department,
        summary_zh=summary,
        benefits=list(benefits),
        valid_from=valid_from,
        valid_to=valid_to,
        pools=list(pools),
        rule=Rule(
            id=f"policy:{code}",
            # Criteria embedded from a pool carry the negative-list gate already.
            root=_all(code, *criteria, *([_clean(code)] if gate else [])),
        ),
        approximations=list(approximations),
    )


def _pool_root(code: str) -> Node:
    return POOLS_BY_CODE[code].rule.root


POLICIES: tuple[Policy, ...] = (
    _policy(
        "hnte_reward",
        "高新技术企业认定奖励",
        "HNTE recognition reward",
        _KJJ,
        "对首次认定或重新认定的国家高新技术企业给予一次性奖励。",
        [
            Benefit(kind="reward", description_zh="首次认定一次性奖励20万元", amount_wan=20),
            Benefit(kind="reward", description_zh="重新认定一次性奖励10万元", amount_wan=10),
        ],
        ["hnte"],
        _holds("hnte_reward.hnte", "hnte", "已认定为高新技术企业", "经认定的国家高新技术企业"),
        _c(
            "hnte_reward.no_incident",
            "major_incident",
            "is_false",
            label="上年度未发生重大安全、质量、环境事故",
            clause="申报年度内未发生重大安全、质量事故或严重环境违法行为",
        ),
        approximations=["“首次/重新认定”在事实中不可区分，奖励金额由受理时核定。"],
    ),
    _policy(
        "hnte_cultivation",
        "高新技术企业培育入库补助",
        "HNTE cultivation pool subsidy",
        _KJJ,
        "对符合高新技术企业认定量化条件、尚未认定的企业纳入培育库，给予入库补助和辅导。",
        [
            Benefit(kind="subsidy", description_zh="入库企业一次性补助10万元", amount_wan=10),
            Benefit(kind="service", description_zh="认定申报辅导"),
        ],
        ["hnte"],
        *_hnte_criteria("hnte_cultivation.hnte"),
        _c(
            "hnte_cultivation.not_yet",
            "qualifications",
            "not_contains",
            "hnte",
            label="尚未认定为高新技术企业",
            clause="培育对象为尚未认定的企业",
        ),
        gate=False,
    ),
    _policy(
        "rd_subsidy",
        "企业研发费用补助",
        "R&D expense subsidy",
        _KJJ,
        "对研发投入持续增长的科技型企业，按上年度研发费用增量给予补助。",
        [
            Benefit(
                kind="subsidy",
                description_zh="按上年度研发费用增量的10%给予补助，单家最高200万元",
                amount_wan=200,
            )
        ],
        ["st_sme", "hnte"],
        _holds(
            "rd_subsidy.qualified",
            ["hnte", "st_sme"],
            "高新技术企业或入库科技型中小企业",
            "申报企业须为高新技术企业或入库科技型中小企业",
        ),
        _c(
            "rd_subsidy.rd_expense",
            "rd_expense",
            ">=",
            100,
            label="上年度研发费用不低于100万元",
            clause="上年度研发费用不低于100万元",
        ),
        _c(
            "rd_subsidy.rd_growth",
            "rd_growth",
            ">",
            0,
            label="研发费用较上年增长",
            clause="上年度研发费用较前一年度有增长",
        ),
        _c(
            "rd_subsidy.rd_intensity",
            "rd_intensity",
            ">=",
            3,
            label="研发费用占营业收入比例不低于3%",
            clause="上年度研发费用占营业收入比例不低于3%",
        ),
    ),
    _policy(
        "gazelle_award",
        "瞪羚企业奖励",
        "Gazelle enterprise award",
        _KJJ,
        "对新认定的瞪羚企业给予一次性奖励，并优先推荐各类人才和金融政策。",
        [Benefit(kind="reward", description_zh="一次性奖励30万元", amount_wan=30)],
        ["gazelle"],
        _holds("gazelle_award.gazelle", "gazelle", "已认定为瞪羚企业", "经认定的瞪羚企业"),
    ),
    _policy(
        "points_loan_subsidy",
        "创新积分贷贴息",
        "Innovation-points loan interest subsidy",
        _JRB,
        "对创新积分达到一定水平、通过“创新积分贷”获得银行贷款的企业给予贴息。",
        [
            Benefit(
                kind="interest_subsidy",
                description_zh="按贷款市场报价利率(LPR)的50%贴息，单家年度最高30万元",
                amount_wan=30,
            )
        ],
        [],
        _c(
            "points_loan_subsidy.score",
            "score",
            ">=",
            60,
            label="创新积分总分不低于60分",
            clause="企业创新积分总分不低于60分",
        ),
        _c(
            "points_loan_subsidy.tier",
            "tier",
            ">=",
            3,
            label="积分档次在第3档及以上(5档为最高)",
            clause="企业创新积分在本发展阶段内位列第3档及以上",
        ),
        _c(
            "points_loan_subsidy.no_incident",
            "major_incident",
            "is_false",
            label="上年度未发生重大安全、质量、环境事故",
            clause="上年度未发生重大安全、质量事故或严重环境违法行为",
        ),
        approximations=["“已获创新积分贷”由银行放款数据核对，不在规则中。"],
    ),
    _policy(
        "graduate_subsidy",
        "吸纳高校毕业生就业补贴",
        "Graduate employment subsidy",
        _RSJ,
        "对吸纳高校应届毕业生就业并稳定用工的企业给予一次性扩岗补助。",
        [
            Benefit(
                kind="subsidy",
                description_zh="按每人1500元给予一次性扩岗补助，单家最高15万元",
                amount_wan=15,
            )
        ],
        [],
        _c(
            "graduate_subsidy.graduates",
            "graduates_hired",
            ">=",
            3,
            label="上年度吸纳高校应届毕业生不少于3人",
            clause="上年度吸纳高校应届毕业生不少于3人并签订劳动合同",
        ),
        _c(
            "graduate_subsidy.headcount",
            "headcount_growth",
            ">=",
            0,
            label="从业人员不减少",
            clause="上年度末从业人员数不低于前一年度末",
        ),
    ),
    _policy(
        "patent_funding",
        "专利资助",
        "Patent funding",
        _SCJ,
        "对当年获得发明专利授权或提交PCT国际专利申请的企业给予资助。",
        [
            Benefit(
                kind="subsidy",
                description_zh="发明专利授权每件资助0.5万元；PCT申请每件资助最高3万元；单家最高50万元",
                amount_wan=50,
            )
        ],
        [],
        Criterion(
            id="patent_funding.filings",
            op="cel",
            expr="invention_patents_granted + pct_filings >= 1.0",
            label_zh="当年发明专利授权或PCT申请合计不少于1件",
            clause="当年获得发明专利授权或提交PCT国际专利申请",
        ),
    ),
    _policy(
        "standards_reward",
        "标准制定奖励",
        "Standards-setting reward",
        _SCJ,
        "对主导或参与制定国际、国家、行业标准的企业给予奖励。",
        [
            Benefit(
                kind="reward",
                description_zh="主导制定国际标准最高100万元、国家标准最高50万元、行业标准最高20万元",
                amount_wan=100,
            )
        ],
        [],
        _c(
            "standards_reward.standards",
            "standards",
            ">=",
            1,
            label="主导或参与制定标准不少于1项",
            clause="上年度主导或参与制定并发布国际、国家或行业标准",
        ),
        approximations=["标准级别与主导/参与不在事实中，奖励金额由受理时核定。"],
    ),
    _policy(
        "little_giant_reward",
        "专精特新“小巨人”企业奖励",
        "Little-giant reward",
        _JXJ,
        "对新认定的国家级专精特新“小巨人”企业给予一次性奖励。",
        [Benefit(kind="reward", description_zh="一次性奖励100万元", amount_wan=100)],
        ["little_giant"],
        _holds(
            "little_giant_reward.title",
            "little_giant",
            "已认定为专精特新“小巨人”企业",
            "经工业和信息化部认定的专精特新“小巨人”企业",
        ),
    ),
    _policy(
        "eaglet_cultivation",
        "雏鹰企业培育支持",
        "Eaglet cultivation support",
        _KJJ,
        "对符合雏鹰企业条件的初创科技企业纳入培育，给予研发投入补助和创新券支持。",
        [
            Benefit(
                kind="subsidy",
                description_zh="按上年度研发费用的20%给予补助，三年累计最高50万元",
                amount_wan=50,
            ),
            Benefit(kind="voucher", description_zh="科技创新券最高10万元", amount_wan=10),
        ],
        ["eaglet"],
        _pool_root("eaglet"),
        gate=False,
    ),
    _policy(
        "unicorn_support",
        "独角兽与准独角兽企业支持",
        "Unicorn and quasi-unicorn support",
        _FGJ,
        "对独角兽、准独角兽企业实行“一企一策”，在空间、人才、融资等方面给予综合支持。",
        [
            Benefit(
                kind="subsidy",
                description_zh="“一企一策”综合支持，单家最高1000万元",
                amount_wan=1000,
            )
        ],
        ["quasi_unicorn", "unicorn"],
        _any(
            "unicorn_support.route",
            _holds(
                "unicorn_support.listed_title",
                ["unicorn", "quasi_unicorn"],
                "已列入独角兽或准独角兽榜单",
                "已列入独角兽或准独角兽企业榜单",
            ),
            _all(
                "unicorn_support.criteria",
                *_unicorn_base("unicorn_support.base"),
                _c(
                    "unicorn_support.valuation",
                    "valuation_usd_m",
                    ">=",
                    100,
                    label="估值1亿美元以上",
                    clause="企业估值1亿美元以上",
                ),
                label="符合准独角兽及以上条件",
            ),
            label="独角兽或准独角兽",
        ),
    ),
    _policy(
        "st_sme_evaluation",
        "科技型中小企业评价入库",
        "S&T-based SME evaluation",
        _KJJ,
        "引导符合条件的企业参加科技型中小企业评价并入库，入库企业享受研发费用加计扣除等政策。",
        [
            Benefit(kind="tax", description_zh="研发费用按100%在税前加计扣除"),
            Benefit(kind="voucher", description_zh="科技创新券最高30万元", amount_wan=30),
        ],
        ["st_sme"],
        _pool_root("st_sme"),
        gate=False,
    ),
    _policy(
        "first_loan_subsidy",
        "首贷贴息",
        "First-loan interest subsidy",
        _JRB,
        "对首次获得银行贷款的初创期、成长期科技企业给予贴息，降低首贷成本。",
        [
            Benefit(
                kind="interest_subsidy",
                description_zh="首笔贷款按实际利息的50%贴息，单家最高10万元",
                amount_wan=10,
            )
        ],
        [],
        _c(
            "first_loan_subsidy.stage",
            "stage",
            "in",
            ["seed", "seedling", "growth"],
            label="处于种子期、苗木期或成长期",
            clause="营业收入2000万元以下的初创期、成长期科技企业",
        ),
        _c(
            "first_loan_subsidy.score",
            "score",
            ">=",
            50,
            label="创新积分总分不低于50分",
            clause="企业创新积分总分不低于50分",
        ),
        _c(
            "first_loan_subsidy.unlisted",
            "listed",
            "is_false",
            label="非上市企业",
            clause="非上市企业",
        ),
        approximations=["“首次获得银行贷款”无对应事实(需要 has_prior_bank_loan)，由放款银行核对。"],
    ),
    _policy(
        "rd_platform_reward",
        "省级以上研发平台奖励",
        "R&D platform reward",
        _KJJ,
        "对新认定的省级以上企业研发机构给予奖励。",
        [
            Benefit(
                kind="reward",
                description_zh="省级研发机构奖励50万元，国家级研发机构奖励200万元",
                amount_wan=200,
            )
        ],
        [],
        _c(
            "rd_platform_reward.platform",
            "rd_platform",
            "is_true",
            label="拥有省级以上研发平台",
            clause="经认定的省级以上企业研发机构",
        ),
    ),
)

POLICIES_BY_CODE: Mapping[str, Policy] = MappingProxyType({p.code: p for p in POLICIES})


def all_rules() -> list[Rule]:
    """Every seeded rule: the pools, then the policies."""
    return [p.rule for p in POOLS] + [p.rule for p in POLICIES]


@lru_cache(maxsize=1)
def compiled_rules() -> tuple[CompiledRule, ...]:
    """All seeded rules, compiled once (raises if any is invalid)."""
    return tuple(compile_rule(r) for r in all_rules())
