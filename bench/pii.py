"""Benchmark: the PII detector on 2,000-character Chinese documents, with and without numbers.

Measured in the same run, on the same documents:

- baseline ``normalize``: what every detector's input costs anyway (``hegui.text.normalize``);
- ``PIIDetector.detect`` on prose with no digit, ``@`` or trigger word (the scan alone), on
  development-pool comments with their digits cut out (a few trigger words like ``住在`` remain), on
  development-pool comments as they are, one document in four with a phone or ID number inserted
  (the shape of ``bench/moderation.py``), and on documents with 20 identifiers each (IDs, phones,
  cards, e-mails, plates, an address, a name);
- ``PIIDetector.analyze`` against ``analyze_reference`` (every recognizer whose gate passes scans
  the whole text: the detector before its single candidate scan) on the same normalised documents;
- for reference, ``phonenumbers.PhoneNumberMatcher`` over the same documents, finding phones only,
  which is why the detector uses a regex prefilter and calls phonenumbers on candidates only.

Times are CPU time of this process (``time.process_time``), so that other work on the machine
inflates them less than wall-clock time would. Prints µs per document and ratios. Documents come from ``../shared/data/dev_pool.jsonl`` when it
exists (digits and ``@`` removed for the plain set), else from a built-in paragraph.

    .venv/bin/python bench/pii.py [--docs 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

from stdnum import luhn
from stdnum.cn import ric

from hegui.detectors.pii import PIIDetector
from hegui.detectors.pii.recognizers import _phone_type
from hegui.text import normalize

DOC_CHARS = 2000
PARAGRAPH = (
    "人工智能技术的发展为社会带来了新的机遇，也提出了新的治理问题。服务提供者应当依法开展训练数据处理活动，"
    "使用具有合法来源的数据和基础模型，采取有效措施提高训练数据质量，增强训练数据的真实性、准确性、客观性和多样性。"
)


def source_text() -> str:
    env = os.environ.get("HEGUI_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    pool = path / "dev_pool.jsonl"
    if not pool.exists():
        return PARAGRAPH * 2000
    with pool.open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    return "".join(texts)


def identifiers(rng: random.Random) -> list[str]:
    first17 = f"{rng.choice([11, 31, 44, 51])}0105{rng.randint(1950, 2005)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}{rng.randint(100, 999)}"
    card = "622202" + "".join(str(rng.randint(0, 9)) for _ in range(12))
    return [
        "身份证" + first17 + ric.calc_check_digit(first17 + "0"),
        f"手机1{rng.choice('3589')}{rng.randint(0, 9)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        f"电话010-6{rng.randint(1000000, 9999999)}",
        "卡号" + card + luhn.calc_check_digit(card),
        f"邮箱user{rng.randint(1, 999)}@example.com",
        f"车牌京A{rng.randint(10000, 99999)}",
        "住在北京市朝阳区建国路88号",
        "我叫张三",
        f"订单{rng.randint(10**9, 10**10)}",
        f"价格{rng.randint(1, 999)}元",
    ] * 2


def make_realistic_docs(n: int) -> list[str]:
    """Comments as they are (digits, Latin letters), one document in four with a phone or ID."""
    text = source_text()
    rng = random.Random(11)
    docs = []
    for i in range(n):
        start = rng.randrange(0, max(1, len(text) - DOC_CHARS))
        doc = text[start : start + DOC_CHARS]
        if i % 4 == 0:
            pii = identifiers(rng)[0 if i % 8 else 1]
            at = rng.randrange(0, len(doc))
            doc = (doc[:at] + pii + doc[at:])[:DOC_CHARS]
        docs.append(doc)
    return docs


def make_docs(n: int, with_numbers: bool) -> list[str]:
    text = source_text()
    rng = random.Random(7)
    if not with_numbers:
        text = re.sub(r"[0-9０-９@＠]", "", text)
    docs = []
    for _ in range(n):
        start = rng.randrange(0, max(1, len(text) - DOC_CHARS))
        doc = text[start : start + DOC_CHARS]
        if with_numbers:
            parts = identifiers(rng)
            step = len(doc) // (len(parts) + 1)
            pieces = [doc[i * step : (i + 1) * step] + "，" + p + "，" for i, p in enumerate(parts)]
            doc = ("".join(pieces) + doc[len(parts) * step :])[: DOC_CHARS + 400]
        docs.append(doc)
    return docs


def per_doc_us(fn: Callable[[str], object], docs: list[str], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        _phone_type.cache_clear()  # cold cache: each repetition validates every phone number again
        t0 = time.process_time()
        for d in docs:
            fn(d)
        best = min(best, time.process_time() - t0)
    return best / len(docs) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300, help="documents per set")
    args = ap.parse_args()

    import phonenumbers

    det = PIIDetector(salt=b"bench")
    plain = make_docs(args.docs, with_numbers=False)
    numbered = make_docs(args.docs, with_numbers=True)
    realistic = make_realistic_docs(args.docs)
    det.detect(normalize(numbered[0]))  # import phonenumbers and stdnum outside the timing
    plain_norm = [normalize(d) for d in plain]
    numbered_norm = [normalize(d) for d in numbered]
    realistic_norm = [normalize(d) for d in realistic]
    mismatches = sum(
        det.analyze(n.text) != det.analyze_reference(n.text)
        for n in plain_norm + numbered_norm + realistic_norm
    )
    found = sum(len(det.detect(n)) for n in numbered_norm) / len(numbered_norm)
    found_plain = sum(len(det.detect(n)) for n in plain_norm)
    prose = [normalize((PARAGRAPH * 20)[:DOC_CHARS])] * args.docs  # no digit, "@" or trigger word

    base_plain = per_doc_us(normalize, plain)
    base_num = per_doc_us(normalize, numbered)
    it = iter(plain_norm * 3)
    t_plain = per_doc_us(lambda _: det.detect(next(it)), plain)
    it2 = iter(numbered_norm * 3)
    t_num = per_doc_us(lambda _: det.detect(next(it2)), numbered)
    t_prose = per_doc_us(lambda _: det.detect(prose[0]), numbered)
    it3 = iter(realistic_norm * 3)
    t_real = per_doc_us(lambda _: det.detect(next(it3)), realistic)
    it4 = iter(realistic_norm * 3)
    a_real = per_doc_us(lambda _: det.analyze(next(it4).text), realistic)
    it5 = iter(realistic_norm * 3)
    r_real = per_doc_us(lambda _: det.analyze_reference(next(it5).text), realistic)
    it6 = iter(numbered_norm * 3)
    a_num = per_doc_us(lambda _: det.analyze(next(it6).text), numbered)
    it7 = iter(numbered_norm * 3)
    r_num = per_doc_us(lambda _: det.analyze_reference(next(it7).text), numbered)
    t_matcher = per_doc_us(
        lambda d: list(phonenumbers.PhoneNumberMatcher(d, "CN")), numbered[: max(20, args.docs // 10)], 1
    )

    print(f"documents: {args.docs} per set, {DOC_CHARS} chars (+ identifiers)")
    print(f"findings per numbered doc: {found:.1f}; findings in plain docs: {found_plain}")
    print(f"{'case':44} {'µs/doc':>9} {'× normalize':>12}")
    print(f"{'normalize, plain (baseline)':44} {base_plain:9.1f} {1.0:12.2f}")
    print(f"{'PIIDetector.detect, prose without digits/@':44} {t_prose:9.1f} {t_prose / base_plain:12.2f}")
    print(f"{'PIIDetector.detect, dev-pool docs, digits cut':44} {t_plain:9.1f} {t_plain / base_plain:12.2f}")
    print(f"{'PIIDetector.detect, dev-pool, 1/4 with PII':44} {t_real:9.1f} {t_real / base_plain:12.2f}")
    print(f"{'normalize, with numbers (baseline)':44} {base_num:9.1f} {1.0:12.2f}")
    print(f"{'PIIDetector.detect, 20 identifiers/doc':44} {t_num:9.1f} {t_num / base_num:12.2f}")
    print(
        f"{'phonenumbers.PhoneNumberMatcher (phones only)':44} {t_matcher:9.1f} {t_matcher / base_num:12.2f}"
    )
    print(f"holdback: {det.holdback()} normalised chars")
    print()
    print(
        f"{'analyze vs analyze_reference (whole-text scans)':44} {'µs/doc':>9} {'reference':>10} {'speed-up':>9}"
    )
    for name, fast, ref in (
        ("dev-pool docs, 1/4 with PII", a_real, r_real),
        ("20 identifiers/doc", a_num, r_num),
    ):
        print(f"{name:44} {fast:9.1f} {ref:10.1f} {ref / fast:8.1f}×")
    print(f"documents where the two differ: {mismatches}")


if __name__ == "__main__":
    main()
