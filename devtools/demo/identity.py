"""Invented but realistic identities for the demo population: unified social credit codes
with correct check characters (GB 32100, with a GB 11714 organisation code inside), unique
company names in the Hangzhou style, legal representatives' names, and each firm's district
(区县), the one its code was registered in."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

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
DISTRICT_NAMES: dict[str, str] = {
    "330108": "滨江区",
    "330106": "西湖区",
    "330110": "余杭区",
    "330109": "萧山区",
    "330102": "上城区",
    "330105": "拱墅区",
}
# Organisation codes starting "MA" were issued with the unified codes from late 2015 on.
_UNIFIED_CODE_SINCE = np.datetime64("2015-10-01")

INDUSTRIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
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


def usccs(rng: np.random.Generator, founded_on: npt.NDArray[np.datetime64]) -> StrArray:
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


def names(
    rng: np.random.Generator, industry: IntArray, mature: BoolArray
) -> tuple[StrArray, StrArray]:
    """Company names unique by construction, and the industry label of each."""
    n = int(industry.shape[0])
    words = [(i, w) for i, (_, _, ws) in enumerate(INDUSTRIES) for w in ws]
    word_of_industry = [
        [k for k, (i, _) in enumerate(words) if i == ind] for ind in range(len(INDUSTRIES))
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
    labels = np.asarray([label for label, _, _ in INDUSTRIES])[industry]
    return name, labels


def legal_reps(rng: np.random.Generator, n: int) -> StrArray:
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


def districts(uscc: StrArray) -> StrArray:
    """The district each code was registered in (its characters 3-8, GB/T 2260): derived, so
    no random draw changes and the column agrees with the codes."""
    return np.asarray([DISTRICT_NAMES.get(str(u)[2:8], "") for u in uscc.tolist()], dtype=str)
