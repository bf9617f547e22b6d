"""Person names introduced by a form label or spoken words (``姓名：``, ``我叫`` …)."""

from __future__ import annotations

import re

from hegui.detectors.pii.recognizers.base import Pattern, Recognizer
from hegui.detectors.pii.surnames import COMPOUND, SINGLE

NAME_TRIGGERS_LABELLED = ("姓名", "联系人", "收件人", "收货人", "寄件人")
NAME_TRIGGERS_COLON = ("持卡人", "户主", "患者", "当事人", "申请人", "乘客", "名字")
"""Labels that are also ordinary words (``患者麻醉``): only with a colon after them."""
NAME_TRIGGERS_SPOKEN = ("我的名字是", "我的名字叫", "我的名字", "名字叫", "我叫", "名叫")
_NAME_STOP_CHARS = frozenset(
    "是的了在和与跟同今年岁来去住说我你他她它们吗呢吧啊哦嗯也就都还又很有个这那哪么什为从到给被把让请"
)
_NAME_STOP_WORDS = (
    "先生", "女士", "小姐", "老师", "师傅", "医生", "同学", "经理", "老板", "阿姨", "叔叔", "主任", "律师", "教授",
    "护士", "总", "性别", "年龄", "电话", "手机", "身份", "地址", "民族", "籍贯", "职业", "学历", "出生", "生日",
    "邮箱", "证件", "单位", "昵称", "长相", "状态", "背景", *NAME_TRIGGERS_LABELLED, *NAME_TRIGGERS_COLON,
)  # fmt: skip
"""Titles and the next field of a form: a name ends before them (``姓名：白性别：男``)."""
_NOT_NAMES = (
    "明天", "明年", "明白", "高兴", "关于", "安全", "方便", "文件", "时候", "时间", "程序", "管理", "全部", "全家",
    "师傅", "司机", "车来", "车去", "成功", "宁可", "向你", "向他", "万一", "国家", "平时", "江湖", "海里", "云端",
    "未知", "不详", "保密", "匿名", "无",
)  # fmt: skip
_NAME_MAX = 10


class PersonNameRecognizer(Recognizer):
    """A name after ``姓名：``, ``我叫`` …. After a form label (``姓名：``) any name up to 10 characters
    (``穆罕默德·阿里``); after spoken words (``我叫``) a known surname and one or two characters."""

    kind = "PERSON_NAME"
    prefilter = "|".join(NAME_TRIGGERS_LABELLED + NAME_TRIGGERS_COLON + NAME_TRIGGERS_SPOKEN)
    scan = "trigger"
    triggers = NAME_TRIGGERS_LABELLED + NAME_TRIGGERS_COLON + NAME_TRIGGERS_SPOKEN
    patterns = (
        # a form field: label and colon, then any name (also transliterated: 穆罕默德·阿里)
        Pattern(
            "name_form",
            "(?:"
            + "|".join(NAME_TRIGGERS_LABELLED + NAME_TRIGGERS_COLON)
            + ")(?P<form>[:：])"
            + rf"\s?(?=(?P<v>[\u4e00-\u9fff][\u4e00-\u9fff·•]{{1,{_NAME_MAX - 1}}}))",
            0.85,
        ),
        # a label without colon (姓名张三) or spoken words (我叫张三): a known surname is required
        Pattern(
            "name_label",
            "(?:" + "|".join(NAME_TRIGGERS_LABELLED) + r")(?:是|为)?\s?(?=(?P<v>[\u4e00-\u9fff]{2,4}))",
            0.75,
        ),
        Pattern(
            "name_spoken",
            "(?:"
            + "|".join(NAME_TRIGGERS_SPOKEN)
            + r")(?<!改名叫)(?:是|叫)?[:：]?\s?(?=(?P<v>[\u4e00-\u9fff]{2,4}))",
            0.65,
        ),
    )
    max_length = 6 + 1 + _NAME_MAX

    def extract(self, text: str, m: re.Match[str]) -> tuple[int, int] | None:
        start, end = m.span("v")
        value = text[start:end]
        if value.startswith(_NOT_NAMES) or value.startswith(_NAME_STOP_WORDS) or value[0] in _NAME_STOP_CHARS:
            return None
        if "form" in m.re.groupindex:
            first, limit = 1, _NAME_MAX
        else:
            if value[:2] in COMPOUND:
                first = 2
            elif value[0] in SINGLE:
                first = 1
            else:
                return None
            limit = first + 2
        n = first
        while n < min(len(value), limit):
            if value[n] in _NAME_STOP_CHARS or value.startswith(_NAME_STOP_WORDS, n):
                break
            n += 1
        n = len(value[:n].rstrip("·•"))
        if n < 2:
            return None
        return start, start + n
