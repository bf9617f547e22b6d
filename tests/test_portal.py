"""The public portal over HTTP (Starlette's TestClient against create_app): CSRF, rate limits, uploads
sniffed by content, escaping, case codes, /about, languages and the two-step PI request. The parts
that store something run on SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import io
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image
from starlette.testclient import TestClient

from accounts_support import Capture
from gateway_support import ADMIN_KEY, ledger_for, make_moderator, write_config
from hegui.accounts.api import account_api
from hegui.accounts.store import AccountStore
from hegui.cases.models import Case, CaseAttachment
from hegui.cases.store import CODE_ALPHABET, CaseStore, new_code
from hegui.gateway.app import create_app
from hegui.ledger.errors import LedgerError
from hegui.ledger.models import Base
from hegui.web.portal import Portal

BACKENDS = ["sqlite", "postgres"]
PHONE = "13700137000"
CODE_RE = re.compile(r'id="case-code">(HG-[0-9A-Z-]+)<')
TOKEN_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


class Portal_:
    def __init__(self, client: TestClient, app: Any, ledger: Any, folder: Path) -> None:
        self.client = client
        self.app = app
        self.ledger = ledger
        self.attachments = folder / "attachments"

    @property
    def portal(self) -> Portal:
        for route in self.app.routes:
            if getattr(route, "path", "") == "/about":
                owner = route.endpoint.__self__
                assert isinstance(owner, Portal)
                return owner
        raise AssertionError("no portal mounted")

    @property
    def cases(self) -> CaseStore:
        return self.portal.cases

    def token(self, path: str = "/complaints/new") -> str:
        r = self.client.get(path)
        assert r.status_code == 200, r.text
        found = TOKEN_RE.search(r.text)
        assert found, "the form carries no CSRF token"
        return found.group(1)

    def complain(self, description: str = "生成的回答含有赌博广告。", *, files: dict[str, Any] | None = None,
                 token: str | None = None, **fields: str) -> httpx.Response:
        data = {"csrf_token": token if token is not None else self.token(), "kind": "complaint",
                "category": "illegal", "description": description, **fields}
        return self.client.post("/complaints/new", data=data, files=files or {"attachment": ("", b"")})

    def case_rows(self) -> list[Any]:
        with self.ledger.engine.connect() as conn:
            return list(conn.execute(sa.select(Base.metadata.tables[Case.__tablename__])).all())

    def attachment_rows(self) -> list[Any]:
        with self.ledger.engine.connect() as conn:
            return list(conn.execute(sa.select(Base.metadata.tables[CaseAttachment.__tablename__])).all())

    def stored_files(self) -> list[Path]:
        return sorted(self.attachments.iterdir()) if self.attachments.exists() else []


def config(folder: Path, portal: dict[str, Any] | None = None, cases: dict[str, Any] | None = None) -> Any:
    return write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
        "accounts": {"sync_seconds": 0.2, "otp": {"sends_per_ip_per_hour": 1000, "resend_after_seconds": 0}},
        "cases": {"attachments_dir": "attachments", **(cases or {})},
        "portal": portal or {},
    })


@contextmanager
def portal_env(backend: str, folder: Path, postgres_url: str | None, **kw: Any) -> Iterator[Portal_]:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = config(folder, **kw)
    with ledger_for(backend, folder, postgres_url) as ledger:
        app = create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)
        with TestClient(app, follow_redirects=False) as client:
            yield Portal_(client, app, ledger, folder)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return str(request.param)


@pytest.fixture
def env(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Portal_]:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with portal_env(backend, tmp_path, url) as e:
        yield e


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Portal_]:
    with portal_env("sqlite", tmp_path, None) as e:
        yield e


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


# -- CSRF ----------------------------------------------------------------------------------------


def test_a_post_without_a_valid_csrf_token_is_refused_and_stores_nothing(env: Portal_) -> None:
    env.token()  # the browser has its cookie
    for token in ("", "0" * 64):
        r = env.complain(token=token)
        assert r.status_code == 403
        assert "请求无法验证" in r.text
    # a token from another browser (another cookie) does not fit this one's cookie
    other = TestClient(env.app, follow_redirects=False)
    foreign = TOKEN_RE.search(other.get("/complaints/new").text)
    assert foreign is not None
    r = env.complain(token=foreign.group(1))
    assert r.status_code == 403
    # no cookie at all, token copied: refused too
    env.client.cookies.clear()
    assert env.complain(token=foreign.group(1)).status_code == 403
    assert env.case_rows() == []
    assert env.stored_files() == []


def test_a_valid_token_opens_a_case_and_shows_its_code_once(env: Portal_) -> None:
    r = env.complain()
    assert r.status_code == 201, r.text
    found = CODE_RE.search(r.text)
    assert found is not None
    code = found.group(1)
    rows = env.case_rows()
    assert len(rows) == 1
    row = rows[0]
    assert (row.kind, row.category, row.source, row.status) == ("complaint", "illegal", "portal", "open")
    assert code not in str(tuple(row))  # the code is not stored, only its hash
    assert f'href="/cases/{code}"' in r.text
    assert row.due_on in r.text


# -- rate limits ---------------------------------------------------------------------------------


def test_submissions_and_lookups_are_limited_per_address(backend: str, tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with portal_env(backend, tmp_path, url,
                    portal={"submissions_per_ip_per_hour": 3, "lookups_per_ip_per_hour": 4}) as env:
        codes = []
        for _ in range(3):
            r = env.complain()
            assert r.status_code == 201, r.text
            m = CODE_RE.search(r.text)
            assert m is not None
            codes.append(m.group(1))
        r = env.complain()
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 3600
        assert "请求过于频繁" in r.text
        assert len(env.case_rows()) == 3
        for i in range(4):
            assert env.client.get(f"/cases/{codes[i % 3]}").status_code == 200
        r = env.client.get(f"/cases/{codes[0]}")
        assert r.status_code == 429 and "retry-after" in r.headers


# -- uploads -------------------------------------------------------------------------------------


def test_an_image_is_accepted_by_its_content_and_stored_under_a_random_name(env: Portal_) -> None:
    data = png_bytes()
    # a misleading-free but unhelpful name and type: the content decides
    r = env.complain(files={"attachment": ("screenshot.bin", data, "application/octet-stream")})
    assert r.status_code == 201, r.text
    (att,) = env.attachment_rows()
    assert att.media_type == "image/png" and att.size == len(data)
    (stored,) = env.stored_files()
    assert stored.name == att.stored_name and re.fullmatch(r"[0-9a-f]{32}", stored.name)
    assert stored.read_bytes() == data
    assert not any(p.name.startswith(".upload-") for p in env.attachments.iterdir())


@pytest.mark.parametrize(("name", "content", "declared", "message"), [
    ("x.png", b"<!doctype html><html><script>alert(1)</script></html>", "image/png", "类型不受支持"),
    ("x.png", b"<html><body>hi</body></html>", "image/png", "类型不受支持"),
    ("x.png", "只是一段文字".encode(), "image/png", "不符"),  # real text, posing as an image
    ("x.png", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" * 8, "image/png", "类型不受支持"),
    ("notes.txt", b"<script>alert(1)</script>", "text/plain", "类型不受支持"),
    ("x.png", png_bytes()[:40], "image/png", "类型不受支持"),  # a truncated image
    ("x.pdf", png_bytes(), "application/pdf", "不符"),
])
def test_disguised_or_unknown_files_are_refused_and_nothing_is_left(env: Portal_, name: str, content: bytes,
                                                                     declared: str, message: str) -> None:
    r = env.complain(files={"attachment": (name, content, declared)})
    assert r.status_code == 400
    assert message in r.text
    assert 'aria-describedby="h-attachment e-attachment"' in r.text
    assert env.case_rows() == [] and env.attachment_rows() == []
    assert env.stored_files() == []


def test_oversized_uploads_are_refused_the_whole_body_early(backend: str, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    with portal_env(backend, tmp_path, url, cases={"max_attachment_bytes": 2048}) as env:
        r = env.complain(files={"attachment": ("big.txt", b"a" * 3000, "text/plain")})
        assert r.status_code == 400 and "附件太大（最大 2 KB）" in r.text
        limit = env.portal.complaint_limit()
        r = env.complain(files={"attachment": ("huge.txt", b"a" * (limit + 1), "text/plain")})
        assert r.status_code == 413 and "请求太大" in r.text
        assert env.case_rows() == [] and env.stored_files() == []
        # a declared length past the limit is refused before the body is read
        r = env.client.post("/complaints/new", content=b"x" * 10, headers={
            "content-length": str(limit + 1), "content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413


def test_a_failed_case_insert_removes_the_stored_file(lite: Portal_, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        assert kwargs["attachments"], "the file is stored before the case"
        assert lite.stored_files(), "the file is in place when the insert runs"
        raise LedgerError("cannot update the case: database is locked")

    monkeypatch.setattr(lite.cases, "open_case", broken)
    r = lite.complain(files={"attachment": ("a.png", png_bytes(), "image/png")})
    assert r.status_code == 503 and "服务暂不可用" in r.text
    assert lite.stored_files() == []


def test_field_limits_and_required_fields(lite: Portal_) -> None:
    r = lite.complain("x" * 5001)
    assert r.status_code == 400 and "最多 5000 字" in r.text
    assert 'aria-describedby="h-description e-description"' in r.text and 'aria-invalid="true"' in r.text
    r = lite.complain("", category="nonsense")
    assert r.status_code == 400
    assert r.text.count('class="error"') == 2
    assert lite.case_rows() == []


# -- status page ---------------------------------------------------------------------------------


def test_a_description_with_markup_is_shown_escaped_with_the_reply(env: Portal_) -> None:
    r = env.complain('<script>alert("x")</script><img src=x onerror=alert(1)>', contact="<b>me</b>")
    m = CODE_RE.search(r.text)
    assert m is not None
    code = m.group(1)
    page = env.client.get(f"/cases/{code}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "<script" not in page.text and "<img" not in page.text
    assert "尚未答复" in page.text
    h = page.headers
    assert h["cache-control"] == "no-store" and h["referrer-policy"] == "no-referrer"
    assert "noindex" in h["x-robots-tag"]
    assert "script-src" not in h["content-security-policy"] and "default-src 'none'" in h["content-security-policy"]
    (row,) = env.case_rows()
    env.cases.reply(row.id, "已删除该内容。<i>谢谢</i>", actor="reviewer")
    page = env.client.get(f"/cases/{code}")
    assert "已删除该内容。&lt;i&gt;谢谢&lt;/i&gt;" in page.text and "已答复" in page.text


def test_the_lookup_form_redirects_to_the_status_page(lite: Portal_) -> None:
    m = CODE_RE.search(lite.complain().text)
    assert m is not None
    code = m.group(1)
    token = lite.token("/cases")
    typed = code.lower().replace("-", " ").replace("0", "o")  # as a person might retype it
    r = lite.client.post("/cases", data={"csrf_token": token, "code": typed})
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{code}"
    r = lite.client.post("/cases", data={"csrf_token": token, "code": "HG-1234"})
    assert r.status_code == 400 and "查询码的格式不对" in r.text
    assert lite.client.post("/cases", data={"code": code}).status_code == 403


def test_a_wrong_code_says_not_found_and_reveals_nothing(lite: Portal_) -> None:
    lite.complain("秘密描述")
    pages = [lite.client.get(f"/cases/{c}") for c in (new_code(), "HG-NOT-A-CODE", "x" * 300)]
    for page in pages:
        assert page.status_code == 404
        assert "没有与此查询码对应的记录" in page.text
        assert "秘密描述" not in page.text and "HG-" not in page.text.split("<main", 1)[1]
    # the same page whatever was wrong with the code
    assert len({p.text for p in pages}) == 1


def test_case_codes_are_random_not_sequential() -> None:
    codes = [new_code() for _ in range(3000)]
    assert len(set(codes)) == len(codes)
    body = [c[3:].replace("-", "") for c in codes]
    assert all(c.startswith("HG-") and len(b) == 20 and set(b) <= set(CODE_ALPHABET) for c, b in zip(codes, body, strict=True))
    # every symbol of the alphabet is used about equally in every position (no counter, no clock)
    for pos in range(20):
        counts = collections.Counter(b[pos] for b in body)
        assert set(counts) == set(CODE_ALPHABET)
        expected = len(body) / len(CODE_ALPHABET)
        chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
        assert chi2 < 80, (pos, chi2)  # 31 degrees of freedom: p < 1e-6 beyond this
    # consecutive codes share no prefix structure
    same_prefix = sum(a[:7] == b[:7] for a, b in itertools.pairwise(codes))
    assert same_prefix <= 2


def test_codes_given_out_by_the_portal_differ_widely(lite: Portal_) -> None:
    codes = []
    for _ in range(3):
        m = CODE_RE.search(lite.complain().text)
        assert m is not None
        codes.append(m.group(1).replace("-", "")[2:])
    for a, b in itertools.pairwise(codes):
        assert sum(x != y for x, y in zip(a, b, strict=True)) >= 10


# -- /about and languages ------------------------------------------------------------------------


def test_about_shows_the_configured_texts_labels_agreements_and_deadline(backend: str, tmp_path: Path,
                                                                         request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    texts = {"service_name": "小合助手", "audience": "面向成年人的写作助手", "uses": "写作与翻译",
             "limits": "可能出错<勿信>", "filing_number": "Beijing-WangXinSuan-1234", "contact_email": "t@example.cn",
             "service_name_en": "Hexiao", "audience_en": "For adult writers"}
    with portal_env(backend, tmp_path, url, portal={"texts": texts}, cases={"due_working_days": 10}) as env:
        AccountStore(env.ledger).publish_agreement("privacy", "v2", "2025-03-01", "# 隐私政策\n<b>第二版</b>",
                                                   actor="test")
        r = env.client.get("/about")
        assert r.status_code == 200
        for text in ("小合助手", "面向成年人的写作助手", "写作与翻译", "可能出错&lt;勿信&gt;",
                     "Beijing-WangXinSuan-1234", "t@example.cn", "10 个工作日", "【AI生成】", "（本内容由人工智能生成）",
                     'href="/about/agreements/privacy"', "版本 v2，2025-03-01 起生效"):
            assert text in r.text, text
        assert "x-robots-tag" not in r.headers and r.headers["cache-control"] == "no-store"
        doc = env.client.get("/about/agreements/privacy")
        assert doc.status_code == 200 and "&lt;b&gt;第二版&lt;/b&gt;" in doc.text
        assert env.client.get("/about/agreements/service").status_code == 404
        en = env.client.get("/about?lang=en")
        assert "For adult writers" in en.text and "10 working days" in en.text and "Hexiao" in en.text


def test_english_by_query_then_by_cookie_and_the_default_from_config(tmp_path: Path) -> None:
    with portal_env("sqlite", tmp_path, None) as env:
        assert "投诉与举报" in env.client.get("/complaints/new").text
        r = env.client.get("/complaints/new?lang=en")
        assert 'lang="en"' in r.text and "Complaints and reports" in r.text and "投诉与举报</h1>" not in r.text
        assert r.cookies.get("hegui_lang") == "en"
        assert "Complaints and reports</h1>" in env.client.get("/complaints/new").text
        assert "At most 5000 characters" in env.complain("x" * 5001).text
        assert "<h1>投诉与举报</h1>" in env.client.get("/complaints/new?lang=zh").text
    with portal_env("sqlite", tmp_path / "en", None, portal={"default_language": "en"}) as env:
        assert "<h1>Case status</h1>" in env.client.get("/cases").text


def test_root_static_and_a_disabled_portal(tmp_path: Path) -> None:
    with portal_env("sqlite", tmp_path, None) as env:
        r = env.client.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/about"
        css = env.client.get("/static/portal.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert env.client.get("/static/../portal.py").status_code == 404
        assert env.client.get("/static/nothing.css").status_code == 404
        page = env.client.get("/complaints/new").text
        assert '<meta name="viewport"' in page and "<script" not in page
        for field in ("f-category", "f-description", "f-reference", "f-attachment", "f-contact"):
            assert f'<label for="{field}">' in page, field
    with portal_env("sqlite", tmp_path / "off", None, portal={"enabled": False}) as env:
        assert env.client.get("/about").status_code == 404
        assert env.client.get("/complaints/new").status_code == 404


# -- personal-information requests ---------------------------------------------------------------


def test_a_pi_request_is_tied_to_the_phone_by_an_sms_code(env: Portal_) -> None:
    capture = Capture()
    account_api(env.app.state.gateway).otp.sender = capture
    person, _ = AccountStore(env.ledger).register_person(PHONE)
    token = env.token("/pi-requests/new")
    r = env.client.post("/pi-requests/new", data={"csrf_token": token, "step": "send", "phone": "137 0013 7000"})
    assert r.status_code == 200, r.text
    assert "137****7000" in r.text and PHONE not in r.text and "137 0013 7000" not in r.text
    assert capture.sent[-1][0] == PHONE and capture.sent[-1][2] == "pi_request"
    code = capture.code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    data = {"csrf_token": token, "step": "verify", "phone": PHONE, "action": "delete", "details": "删除全部对话"}
    r = env.client.post("/pi-requests/new", data={**data, "code": wrong})
    assert r.status_code == 400 and "验证码不正确或已过期（还可尝试" in r.text
    assert PHONE not in r.text
    r = env.client.post("/pi-requests/new", data={**data, "code": code})
    assert r.status_code == 201, r.text
    assert CODE_RE.search(r.text) is not None and "个人信息请求" in r.text
    (row,) = env.case_rows()
    assert (row.kind, row.pi_action, row.description) == ("pi_request", "delete", "删除全部对话")
    assert row.phone_hash == AccountStore(env.ledger).phone_hash(PHONE) and row.account_id == person
    assert PHONE not in str(tuple(row)) and "7000" not in (row.contact or "")
    # the code is used up
    r = env.client.post("/pi-requests/new", data={**data, "code": code})
    assert r.status_code == 400 and len(env.case_rows()) == 1


def test_a_pi_request_for_an_unknown_phone_and_bad_input(lite: Portal_) -> None:
    capture = Capture()
    account_api(lite.app.state.gateway).otp.sender = capture
    token = lite.token("/pi-requests/new")
    r = lite.client.post("/pi-requests/new", data={"csrf_token": token, "step": "send", "phone": "12345"})
    assert r.status_code == 400 and "不是有效的中国大陆手机号" in r.text and capture.sent == []
    lite.client.post("/pi-requests/new", data={"csrf_token": token, "step": "send", "phone": "13900139000"})
    code = capture.code("13900139000")
    r = lite.client.post("/pi-requests/new", data={"csrf_token": token, "step": "verify", "phone": "13900139000",
                                                   "code": code, "action": "sell_it", "details": ""})
    assert r.status_code == 400 and "请选择一项" in r.text
    r = lite.client.post("/pi-requests/new", data={"csrf_token": token, "step": "verify", "phone": "13900139000",
                                                   "code": code, "action": "access", "details": ""})
    assert r.status_code == 201, r.text
    (row,) = lite.case_rows()
    assert row.account_id is None and row.phone_hash and row.pi_action == "access"
    assert lite.client.post("/pi-requests/new", data={"step": "send", "phone": PHONE}).status_code == 403
