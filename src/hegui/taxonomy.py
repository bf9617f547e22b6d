"""The 31 risks of GB/T 45654-2025 Appendix A, and hegui's two signals.

Codes follow `spec/regulation.md` §1.2: ``A1a``…``A1h``, ``A2a``…``A2i``, ``A3a``…``A3e``,
``A4a``…``A4g``, ``A5a``, ``A5b``, in the order the standard lists them. ``PI`` (personal
information) and ``JB`` (jailbreak / prompt injection) are signals, not content risks: policy can act
on them, but they do not count towards the standard's risk coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    A1 = "A1"
    A2 = "A2"
    A3 = "A3"
    A4 = "A4"
    A5 = "A5"
    SIGNAL = "signal"


CATEGORY_NAMES: dict[Category, tuple[str, str]] = {
    Category.A1: ("违反社会主义核心价值观", "Violates core socialist values"),
    Category.A2: ("歧视性内容", "Discriminatory content"),
    Category.A3: ("商业违法违规", "Commercial violations"),
    Category.A4: ("侵犯他人合法权益", "Infringes others' legitimate rights"),
    Category.A5: ("无法满足特定服务类型的安全需求", "Fails the safety needs of specific service types"),
    Category.SIGNAL: ("信号", "Signal (not a content risk)"),
}

# Article of the Interim Measures each category serves (Art. 4(1)…(5)).
CATEGORY_ARTICLE: dict[Category, str] = {
    Category.A1: "Art. 4(1)",
    Category.A2: "Art. 4(2)",
    Category.A3: "Art. 4(3)",
    Category.A4: "Art. 4(4)",
    Category.A5: "Art. 4(5)",
    Category.SIGNAL: "Art. 4, Art. 11",
}


@dataclass(frozen=True, slots=True)
class Risk:
    code: str
    category: Category
    name_zh: str
    name_en: str
    article: str

    @property
    def is_signal(self) -> bool:
        return self.category is Category.SIGNAL


def _risks() -> tuple[Risk, ...]:
    table: list[tuple[Category, list[tuple[str, str]]]] = [
        (
            Category.A1,
            [
                ("煽动颠覆国家政权、推翻社会主义制度", "Incites subversion of state power or the socialist system"),
                ("危害国家安全和利益、损害国家形象", "Endangers national security and interests, harms the national image"),
                ("煽动分裂国家、破坏国家统一和社会稳定", "Incites separatism, undermines national unity and social stability"),
                ("宣扬恐怖主义、极端主义", "Promotes terrorism or extremism"),
                ("宣扬民族仇恨", "Promotes ethnic hatred"),
                ("宣扬暴力、淫秽色情", "Promotes violence, obscenity or pornography"),
                ("传播虚假有害信息", "Spreads false and harmful information"),
                ("其他法律、行政法规禁止的内容", "Other content prohibited by laws and administrative regulations"),
            ],
        ),
        (
            Category.A2,
            [
                ("民族歧视", "Ethnic discrimination"),
                ("信仰歧视", "Discrimination by belief"),
                ("国别歧视", "Discrimination by nationality"),
                ("地域歧视", "Regional discrimination"),
                ("性别歧视", "Gender discrimination"),
                ("年龄歧视", "Age discrimination"),
                ("职业歧视", "Occupational discrimination"),
                ("健康歧视", "Health discrimination"),
                ("其他歧视", "Other discrimination"),
            ],
        ),
        (
            Category.A3,
            [
                ("侵犯知识产权", "Infringes intellectual property"),
                ("违反商业道德", "Violates business ethics"),
                ("泄露商业秘密", "Discloses trade secrets"),
                (
                    "利用算法、数据、平台等优势实施垄断和不正当竞争",
                    "Monopoly or unfair competition using algorithms, data or platforms",
                ),
                ("其他商业违法违规行为", "Other commercial violations"),
            ],
        ),
        (
            Category.A4,
            [
                ("危害他人身心健康", "Endangers others' physical or mental health"),
                ("侵害他人肖像权", "Infringes the right of likeness"),
                ("侵害他人名誉权", "Infringes the right of reputation"),
                ("侵害他人荣誉权", "Infringes the right of honour"),
                ("侵害他人隐私权", "Infringes the right of privacy"),
                ("侵害他人个人信息权益", "Infringes personal-information rights"),
                ("侵犯他人其他合法权益", "Infringes other legitimate rights"),
            ],
        ),
        (
            Category.A5,
            [
                ("内容不准确，严重不符合科学常识或主流认知", "Inaccurate: seriously contradicts science or mainstream understanding"),
                ("内容不可靠，虽不包含严重错误但无法对使用者形成帮助", "Unreliable: not wrong but of no help to the user"),
            ],
        ),
    ]
    out: list[Risk] = []
    for category, items in table:
        for i, (zh, en) in enumerate(items):
            code = f"{category.value}{chr(ord('a') + i)}"
            out.append(Risk(code, category, zh, en, CATEGORY_ARTICLE[category]))
    out.append(Risk("PI", Category.SIGNAL, "个人信息", "Personal information", "Art. 4(4), Art. 11"))
    out.append(Risk("JB", Category.SIGNAL, "越狱/提示注入", "Jailbreak / prompt injection", "Art. 4, std §7"))
    return tuple(out)


RISKS: tuple[Risk, ...] = _risks()
BY_CODE: dict[str, Risk] = {r.code: r for r in RISKS}
CONTENT_RISKS: tuple[Risk, ...] = tuple(r for r in RISKS if not r.is_signal)
SIGNALS: tuple[str, ...] = ("PI", "JB")

# The 17 risks of A.1 + A.2: the keyword library and the should-refuse bank cover these.
KEYWORD_RISKS: tuple[str, ...] = tuple(r.code for r in CONTENT_RISKS if r.category in (Category.A1, Category.A2))


def get(code: str) -> Risk:
    """Return the risk for ``code``; accepts ``A1a``, ``A.1.a`` and ``a1a`` spellings."""
    key = normalize_code(code)
    try:
        return BY_CODE[key]
    except KeyError:
        raise KeyError(f"unknown risk code {code!r}; run `hegui risks` for the list") from None


def normalize_code(code: str) -> str:
    """``A.1.a`` / ``a1a`` / ``A1A`` → ``A1a``; ``pi`` → ``PI``. Unknown codes are returned cleaned."""
    c = code.strip().replace(".", "").replace("-", "").replace("_", "")
    if c.upper() in SIGNALS:
        return c.upper()
    if len(c) == 3 and c[0] in "aA" and c[1].isdigit():
        return f"A{c[1]}{c[2].lower()}"
    if len(c) == 2 and c[0] in "aA" and c[1].isdigit():
        return f"A{c[1]}"
    return c


def is_known(code: str) -> bool:
    return normalize_code(code) in BY_CODE


def category_of(code: str) -> Category:
    return get(code).category


def matches(selector: str, code: str) -> bool:
    """Whether a policy selector (``*``, a category ``A1``, or a code ``A1a``) covers ``code``."""
    sel = normalize_code(selector)
    if sel == "*":
        return True
    if sel == code:
        return True
    return len(sel) == 2 and sel.startswith("A") and code.startswith(sel)
