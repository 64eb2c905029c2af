"""zh-CN words for the codes the API returns. Indicator names come from the API itself
(`GET /v1/scoring/indicators`); these are the few vocabularies it returns as codes only."""

from __future__ import annotations

DIMENSIONS = {
    "input": "创新投入",
    "output": "创新产出",
    "growth": "成长能力",
    "auxiliary": "辅助指标",
}

STAGES = {
    "seed": "种子期",
    "seedling": "苗木期",
    "growth": "成长期",
    "expansion": "壮大期",
    "mature": "成熟期",
}

TIERS = {5: "第五档 · 前10%", 4: "第四档", 3: "第三档", 2: "第二档", 1: "第一档"}

APPLICATION_STATUS = {
    "submitted": "已提交",
    "under_review": "审核中",
    "approved": "已批准",
    "rejected": "未通过",
    "withdrawn": "已撤回",
    "disbursed": "已放款",
    "closed": "已结清",
}
# The enterprise may withdraw until the credit is disbursed.
WITHDRAWABLE = frozenset({"submitted", "under_review", "approved"})

REJECTION_REASONS = {
    "score_below_bank_threshold": "积分低于银行准入要求",
    "insufficient_repayment_capacity": "还款能力不足",
    "adverse_credit_history": "征信记录不良",
    "incomplete_documents": "材料不完整",
    "outside_risk_appetite": "不符合银行风险偏好",
    "existing_exposure": "已有授信敞口",
    "other": "其他原因",
}

ACTOR_KINDS = {"enterprise": "企业", "bank": "银行", "government": "政府", "service": "系统"}

GUARANTEE = {"pure_credit": "纯信用", "guaranteed": "担保", "collateral": "抵押"}

CONSENT_BASIS = {"application": "申请贷款时授权", "explicit": "主动授权"}
CONSENT_STATUS = {"in_force": "有效", "ended": "已结束", "expired": "已到期"}
CONSENT_END_REASON = {
    "withdrawn": "企业撤回授权",
    "application_withdrawn": "申请已撤回",
    "application_rejected": "申请未获批准",
    "loan_closed": "贷款已结清",
    "expired": "授权到期",
}
CONSENT_SCOPE = {"score": "创新积分详情", "pre_approved_amounts": "预授信额度"}

NO_OFFER_REASONS = {
    "not-scored": "本期未参与评分，暂无预授信额度",
    "negative-list": "企业在负面清单中，暂无预授信额度",
    "stage-not-eligible": "暂无面向本企业所处阶段的产品",
    "below-minimum-tier": "积分档次未达到产品要求",
    "below-minimum-percentile": "积分排名未达到产品要求",
    "no-eligible-product": "暂无适合的产品",
}

MATCH_STATUS = {
    "eligible": "符合条件",
    "near": "接近条件",
    "ineligible": "不符合",
    "unknown": "数据不足",
}

MATCH_KIND = {"pool": "培育库", "policy": "政策"}

CRITERION_RESULT = {"pass": "已满足", "fail": "未满足", "unknown": "数据缺失"}

# A problem's type (the last path segment) in words a person understands.
PROBLEMS = {
    "application-already-open": "您已有一笔该产品的申请正在办理中，不能重复申请。",
    "product-not-available": "该产品目前不接受申请。",
    "idempotency-key-reused": "这份申请表已提交过不同的内容，请重新打开申请页面。",
    "consent-in-use": "该银行有办理中的申请或未结清的授信，暂时不能撤回授权。请先撤回申请。",
    "no-published-evaluation": "暂无已发布的评价结果。",
    "unknown-enterprise": "本企业不在最新一期的评价结果中。",
    "esso-refused": "企业码登录未通过，请重新登录。",
    "not-legal-person": "只有企业的法定代表人可以登录。",
    "assurance-too-low": "实名认证等级不足，请完成人脸识别后再登录。",
    "rate-limited": "操作过于频繁，请稍后再试。",
    "insufficient-scope": "当前账号无权进行此操作。",
    "not-scored": "本期未参与评分，不能申请。",
    "negative-list": "企业在负面清单中，不能申请。",
    "stage-not-eligible": "该产品不面向本企业所处阶段。",
    "below-minimum-tier": "积分档次未达到产品要求。",
    "below-minimum-percentile": "积分排名未达到产品要求。",
    "no-published-score": "暂无已发布的积分，不能申请。",
}

STATUS_TITLES = {
    400: "请求有误",
    401: "请先登录",
    403: "无权访问",
    404: "未找到",
    405: "不支持的操作",
    409: "操作冲突",
    413: "提交的内容过大",
    422: "填写的内容有误",
    429: "操作过于频繁",
    500: "系统出错",
    502: "服务暂不可用",
    503: "服务暂不可用",
    504: "服务暂不可用",
}

STATUS_DETAILS = {
    401: "登录已失效，请重新登录。",
    403: "您当前的身份无权访问这个页面。",
    404: "您要找的页面或记录不存在。",
    429: "操作过于频繁，请稍后再试。",
    500: "系统出现了意外错误，请稍后再试；如需报告，请提供下面的请求编号。",
    502: "平台服务暂时无法响应，请稍后再试。",
    503: "平台服务暂时无法响应，请稍后再试。",
    504: "平台服务响应超时，请稍后再试。",
}


def status_title(status: int) -> str:
    return STATUS_TITLES.get(status) or ("服务暂不可用" if status >= 500 else "请求有误")


def problem_text(status: int, slug: str | None) -> str:
    if slug and slug in PROBLEMS:
        return PROBLEMS[slug]
    return STATUS_DETAILS.get(status) or (
        "平台服务暂时无法响应，请稍后再试。" if status >= 500 else "请求未能完成，请检查后重试。"
    )


# Tag values of the profile (qualifications, negative-list flags), as criteria return them.
TAGS = {
    "hnte": "高新技术企业",
    "st_sme": "科技型中小企业",
    "srdi": "专精特新中小企业",
    "little_giant": "专精特新“小巨人”",
    "eaglet": "雏鹰企业",
    "gazelle": "瞪羚企业",
    "quasi_unicorn": "准独角兽",
    "unicorn": "独角兽",
    "abnormal_operation": "经营异常",
    "serious_dishonesty": "严重失信",
    "major_violation": "重大违法",
}

# Any code a criterion's actual value or threshold may hold.
CODES = {**STAGES, **TAGS}
