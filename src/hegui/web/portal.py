"""The public portal: server-rendered pages for the people a provider serves (Arts. 10, 11, 15).

- ``/about``: what the service is, for whom, its limits, the labels on generated content, the filing
  number, the published agreements (``/about/agreements/{kind}``) and the complaint process.
- ``/complaints/new``: a complaint or a report (with an optional attachment); the answer is the case code.
- ``/cases`` (a form that POSTs the code) and ``/cases/{code}``: the status of a case and its reply.
- ``/pi-requests/new``: a personal-information request in two steps tied to a phone by an SMS code.

Every page works without JavaScript, is escaped (Jinja2 autoescape on everything), carries
``Cache-Control: no-store``, ``Referrer-Policy: no-referrer`` and a strict Content-Security-Policy
(no script at all); case pages add ``X-Robots-Tag: noindex``. Every POST needs a CSRF token
(:mod:`hegui.web.csrf`), bodies are capped before they are parsed (413), and submissions and
lookups are counted per client address in the account gate's shared counters (429 with Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hegui.accounts.api import account_api, client_ip
from hegui.accounts.otp import InvalidPhone, normalize_phone
from hegui.accounts.store import AccountStore, mask_phone
from hegui.cases.config import CATEGORIES, PI_ACTIONS
from hegui.cases.store import MAX_CONTACT, MAX_REFERENCE, CaseRefused, CaseStore, CaseView, normalize_code
from hegui.gateway.errors import GatewayError
from hegui.ledger.errors import LedgerError
from hegui.web import uploads
from hegui.web.csrf import COOKIE as CSRF_COOKIE
from hegui.web.csrf import FIELD as CSRF_FIELD
from hegui.web.csrf import CSRFSigner
from hegui.web.messages import LANGUAGES, Language, Texts

if TYPE_CHECKING:
    from hegui.gateway.routes import Gateway

log = logging.getLogger("hegui.web")

STATIC_DIR = Path(__file__).parent / "static"
LANG_COOKIE = "hegui_lang"
WINDOW_SECONDS = 3600
FORM_OVERHEAD_BYTES = 16 * 1024
"""Room for the multipart framing and the short fields, on top of the description and the file."""
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_STATIC_TYPES = {".css": "text/css; charset=utf-8"}
_OTP_CODE = re.compile(r"^[0-9]{4,10}$")


class TooLarge(Exception):
    pass


@dataclass
class FormErrors:
    """Field → message; the template links each field to its message with ``aria-describedby``."""

    fields: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.fields)


class Portal:
    """The handlers and what they share: templates, the case store, the CSRF signer, the counters."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.cfg = gw.cfg
        self.pcfg = gw.cfg.portal
        self.cases = CaseStore(gw.ledger, gw.cfg.cases, timezone=gw.cfg.accounts.timezone)
        self.accounts = AccountStore(gw.ledger)
        self.templates = Environment(loader=PackageLoader("hegui.web", "templates"), autoescape=True,
                                     undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self._signer: CSRFSigner | None = None

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def signer(self) -> CSRFSigner:
        if self._signer is None:
            self._signer = CSRFSigner.from_config(self.pcfg.secret_env, self.gw.ledger)
        return self._signer


    def language(self, request: Request) -> Language:
        for value in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
            if value in LANGUAGES:
                return value
        return self.pcfg.default_language

    def page(self, request: Request, template: str, status: int = 200, *, noindex: bool = True,
             headers: dict[str, str] | None = None, **context: Any) -> Response:
        lang = self.language(request)
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        new_cookie = not cookie or len(cookie) > 128
        if new_cookie:
            cookie = self.signer.new_cookie()
        t = Texts(lang)
        html = self.templates.get_template(template).render(
            t=t, lang=lang, other_lang="en" if lang == "zh" else "zh", path=context.pop("here", request.url.path),
            csrf_field=CSRF_FIELD, csrf_token=self.signer.token(cookie), texts=self._about_texts(lang),
            errors=context.pop("errors", FormErrors()), values=context.pop("values", {}), **context)
        resp = Response(html, status_code=status, media_type="text/html; charset=utf-8",
                        headers={**PAGE_HEADERS, **(headers or {})})
        if noindex:
            resp.headers["X-Robots-Tag"] = "noindex, nofollow"
        secure = request.url.scheme == "https"
        if new_cookie:
            resp.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=secure, path="/")
        if request.query_params.get("lang") in LANGUAGES:
            resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure, path="/")
        return resp

    def message_page(self, request: Request, status: int, title: str, text: str,
                     headers: dict[str, str] | None = None, here: str | None = None) -> Response:
        return self.page(request, "message.html", status, headers=headers, title_key=title, text=text,
                         here=here or request.url.path)

    def _about_texts(self, lang: Language) -> dict[str, str]:
        texts = self.pcfg.texts
        pick = (lambda name: getattr(texts, name + "_en")) if lang == "en" else (lambda name: getattr(texts, name))
        return {name: pick(name) for name in ("service_name", "audience", "uses", "limits")}

    async def read_form(self, request: Request, max_bytes: int) -> FormData:
        """The form, read with the body capped at ``max_bytes`` (:class:`TooLarge` past it, before parsing)."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            raise TooLarge
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge
        request._body = bytes(body)  # Starlette parses the form from the body read here
        return await request.form(max_files=1, max_fields=16, max_part_size=max_bytes)

    async def posted(self, request: Request, max_bytes: int) -> FormData | Response:
        """A POST's form when its size and CSRF token are right; else the page that says what is wrong."""
        t = Texts(self.language(request))
        try:
            form = await self.read_form(request, max_bytes)
        except TooLarge:
            return self.message_page(request, 413, "too_large_title", t("too_large_text", limit=max_bytes // 1024),
                                     headers={"Connection": "close"})
        except (MultiPartException, ClientDisconnect, ValueError):
            return self.message_page(request, 400, "error_title", t.errors_intro)
        token = form.get(CSRF_FIELD)
        if not self.signer.valid(request.cookies.get(CSRF_COOKIE), token if isinstance(token, str) else None):
            await form.close()
            return self.message_page(request, 403, "csrf_title", t.csrf_text)
        return form

    async def limited(self, request: Request, what: str, limit: int) -> Response | None:
        """Count one ``what`` from the client's address in this hour; past ``limit`` the 429 page."""
        digest = self.gw.ledger.hash_identifier("ip:" + client_ip(request))
        try:
            total = await self.gw.counters.add(f"portal:{what}:{digest[:32]}", 1, WINDOW_SECONDS)
        except Exception as exc:  # the counters are down: refuse rather than let floods through
            log.error("portal rate-limit counters failed: %s", exc.__class__.__name__)
            t = Texts(self.language(request))
            return self.message_page(request, 503, "unavailable_title", t.unavailable_text)
        if total <= limit:
            return None
        retry = WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
        t = Texts(self.language(request))
        return self.message_page(request, 429, "rate_title", t("rate_text", minutes=math.ceil(retry / 60)),
                                 headers={"Retry-After": str(retry)})

    def text_field(self, form: FormData, name: str, errors: FormErrors, t: Texts, *, max_chars: int,
                   required: bool) -> str:
        raw = form.get(name)
        value = raw.strip() if isinstance(raw, str) else ""
        if required and not value:
            errors.add(name, t.err_required)
        elif len(value) > max_chars:
            errors.add(name, t("err_too_long", max=max_chars))
        return value

    @staticmethod
    def choice(form: FormData, name: str, allowed: tuple[str, ...], errors: FormErrors, t: Texts) -> str:
        raw = form.get(name)
        if not isinstance(raw, str) or raw not in allowed:
            errors.add(name, t.err_choice)
            return ""
        return raw

    async def created(self, request: Request, kind: str, case_id: str, code: str) -> Response:
        view = await asyncio.to_thread(self.cases.get, case_id, with_details=False)
        return self.page(request, "created.html", 201, kind=kind, code=code, due=view.due_on.isoformat())

    async def open_case(self, request: Request, stored: uploads.StoredFile | None, **fields: Any) -> Response:
        """Open the case (removing the stored file again when that fails) and show its code."""
        t = Texts(self.language(request))
        try:
            case_id, code = await asyncio.to_thread(
                self.cases.open_case, lang=t.lang, source="portal", actor="public",
                attachments=[stored.attachment] if stored else [], **fields)
        except CaseRefused as exc:
            if stored:
                stored.remove()
            log.warning("portal case refused: %s", exc)
            return self.message_page(request, 400, "error_title", t.errors_intro)
        except Exception as exc:
            if stored:
                stored.remove()
            log.error("portal case could not be stored: %s", exc.__class__.__name__)
            return self.message_page(request, 503, "unavailable_title", t.unavailable_text)
        return await self.created(request, fields["kind"], case_id, code)

    # -- pages ---------------------------------------------------------------------------------

    async def root(self, request: Request) -> Response:
        return RedirectResponse("/about", status_code=303, headers=PAGE_HEADERS)

    async def about(self, request: Request) -> Response:
        published = await asyncio.to_thread(self.accounts.published_agreements)
        latest: dict[str, dict[str, Any]] = {}
        for doc in published:  # oldest effective first: the last of each kind is the one in force
            latest[doc["kind"]] = doc
        lab = self.cfg.labeling
        labels = [("label_text_prefix", lab.text.prefix), ("label_text_suffix", lab.text.suffix),
                  ("label_image", lab.image.text)]
        return self.page(request, "about.html", noindex=False, agreements=latest, labels=labels,
                         filing_number=self.pcfg.texts.filing_number, days=self.cfg.cases.due_working_days,
                         contact_email=self.pcfg.texts.contact_email, contact_phone=self.pcfg.texts.contact_phone)

    async def agreement(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        published = await asyncio.to_thread(self.accounts.published_agreements)
        docs = [d for d in published if d["kind"] == kind]
        if not docs:
            t = Texts(self.language(request))
            return self.message_page(request, 404, "not_found_title", t.agreements_none)
        return self.page(request, "agreement.html", noindex=False, doc=docs[-1])

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = STATIC_DIR / name
        if "/" in name or name.startswith(".") or path.suffix not in _STATIC_TYPES or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(path.read_bytes(), media_type=_STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})

    # complaints and reports

    def complaint_limit(self) -> int:
        return self.cfg.cases.max_attachment_bytes + 4 * self.pcfg.max_description_chars + FORM_OVERHEAD_BYTES

    async def complaint(self, request: Request) -> Response:
        ctx: dict[str, Any] = {"days": self.cfg.cases.due_working_days, "categories": CATEGORIES,
               "max_description": self.pcfg.max_description_chars,
               "max_attachment_kb": self.cfg.cases.max_attachment_bytes // 1024}
        if request.method == "GET":
            return self.page(request, "complaint.html", values={"kind": "complaint"}, **ctx)
        got = await self.posted(request, self.complaint_limit())
        if isinstance(got, Response):
            return got
        form = got
        try:
            refused = await self.limited(request, "submit", self.pcfg.submissions_per_ip_per_hour)
            if refused is not None:
                return refused
            t = Texts(self.language(request))
            errors = FormErrors()
            values = {
                "kind": self.choice(form, "kind", ("complaint", "report"), errors, t),
                "category": self.choice(form, "category", CATEGORIES, errors, t),
                "description": self.text_field(form, "description", errors, t,
                                               max_chars=self.pcfg.max_description_chars, required=True),
                "reference": self.text_field(form, "reference", errors, t, max_chars=MAX_REFERENCE, required=False),
                "contact": self.text_field(form, "contact", errors, t, max_chars=MAX_CONTACT, required=False),
            }
            upload = form.get("attachment")
            data, media_type, filename = b"", "", ""
            if isinstance(upload, UploadFile) and (upload.filename or upload.size):
                data = await upload.read(self.cfg.cases.max_attachment_bytes + 1)
                filename = upload.filename or ""
                try:
                    media_type = await asyncio.to_thread(
                        uploads.check, data, filename, upload.content_type or "",
                        allowed=list(self.cfg.cases.attachment_types), max_bytes=self.cfg.cases.max_attachment_bytes)
                except uploads.UploadRefused as exc:
                    errors.add("attachment", t(exc.key, **exc.params))
            if errors:
                return self.page(request, "complaint.html", 400, errors=errors, values=values, **ctx)
            stored = None
            if media_type:
                folder = self.cfg.resolve_path(self.cfg.cases.attachments_dir)
                try:
                    stored = await asyncio.to_thread(uploads.store, data, media_type, filename, folder)
                except OSError as exc:
                    log.error("portal attachment could not be written to %s: %s", folder, exc.__class__.__name__)
                    return self.message_page(request, 503, "unavailable_title", t.unavailable_text)
            return await self.open_case(request, stored, kind=values["kind"], category=values["category"],
                                        description=values["description"], reference=values["reference"],
                                        contact=values["contact"] or None)
        finally:
            await form.close()

    # case status

    async def lookup(self, request: Request) -> Response:
        if request.method == "GET":
            return self.page(request, "lookup.html")
        got = await self.posted(request, FORM_OVERHEAD_BYTES)
        if isinstance(got, Response):
            return got
        t = Texts(self.language(request))
        raw = got.get("code")
        canon = normalize_code(raw) if isinstance(raw, str) and len(raw) <= 100 else None
        if canon is None:
            errors = FormErrors()
            errors.add("code", t.err_code_format)
            return self.page(request, "lookup.html", 400, errors=errors)
        return RedirectResponse(f"/cases/{canon}", status_code=303, headers=PAGE_HEADERS)

    async def case_status(self, request: Request) -> Response:
        refused = await self.limited(request, "lookup", self.pcfg.lookups_per_ip_per_hour)
        if refused is not None:
            return refused
        t = Texts(self.language(request))
        code = request.path_params["code"]
        try:
            view: CaseView | None = await asyncio.to_thread(self.cases.by_code, code) if len(code) <= 100 else None
        except LedgerError:
            return self.message_page(request, 503, "unavailable_title", t.unavailable_text)
        if view is None:
            # the same page for a malformed and an unknown code, and the code is not repeated
            return self.message_page(request, 404, "not_found_title", t.not_found_text, here="/cases")
        opened = view.opened_at.astimezone(self.cases.zone).strftime("%Y-%m-%d %H:%M")
        return self.page(request, "status.html", case=view, opened=opened)

    # personal-information requests

    def pi_limit(self) -> int:
        return 4 * self.pcfg.max_description_chars + FORM_OVERHEAD_BYTES

    def pi_context(self) -> dict[str, Any]:
        return {"actions": PI_ACTIONS, "max_description": self.pcfg.max_description_chars,
                "minutes": max(1, self.cfg.accounts.otp.ttl_seconds // 60), "masked": ""}

    async def pi_request(self, request: Request) -> Response:
        if request.method == "GET":
            return self.page(request, "pi_phone.html")
        got = await self.posted(request, self.pi_limit())
        if isinstance(got, Response):
            return got
        if got.get("step") == "verify":
            return await self.pi_verify(request, got)
        return await self.pi_send(request, got)

    async def pi_send(self, request: Request, form: FormData) -> Response:
        t = Texts(self.language(request))
        raw = form.get("phone")
        errors = FormErrors()
        try:
            number = normalize_phone(raw if isinstance(raw, str) else "")
        except InvalidPhone:
            errors.add("phone", t.err_phone)
            return self.page(request, "pi_phone.html", 400, errors=errors)
        otp = account_api(self.gw).otp
        try:
            await otp.send(number, "pi_request", client_ip(request))
        except GatewayError as exc:
            if exc.status == 429:
                retry = int(exc.headers.get("retry-after", "60"))
                return self.message_page(request, 429, "rate_title", t("rate_text", minutes=math.ceil(retry / 60)),
                                         headers={"Retry-After": str(retry)})
            if exc.status == 400:
                errors.add("phone", t.err_phone)
                return self.page(request, "pi_phone.html", 400, errors=errors)
            if exc.status == 502:
                errors.add("phone", t.sms_failed)
                return self.page(request, "pi_phone.html", 502, errors=errors)
            return self.message_page(request, 503, "unavailable_title", t.unavailable_text)
        return self.page(request, "pi_verify.html", **{**self.pi_context(), "masked": mask_phone(number)})

    async def pi_verify(self, request: Request, form: FormData) -> Response:
        refused = await self.limited(request, "submit", self.pcfg.submissions_per_ip_per_hour)
        if refused is not None:
            return refused
        t = Texts(self.language(request))
        errors = FormErrors()
        raw_phone = form.get("phone")
        number = ""
        try:
            number = normalize_phone(raw_phone if isinstance(raw_phone, str) else "")
        except InvalidPhone:
            errors.add("phone", t.err_phone)
        raw_code = form.get("code")
        code = raw_code.strip() if isinstance(raw_code, str) else ""
        if not _OTP_CODE.match(code):
            errors.add("code", t.err_otp)
        action = self.choice(form, "action", PI_ACTIONS, errors, t)
        details = self.text_field(form, "details", errors, t, max_chars=self.pcfg.max_description_chars,
                                  required=False)
        values = {"action": action, "details": details}
        if not errors:
            # the details are checked first: a code is used up by a good check
            try:
                checked = await account_api(self.gw).otp.check(number, "pi_request", code)
            except GatewayError:
                return self.message_page(request, 503, "unavailable_title", t.unavailable_text)
            if not checked.ok:
                left = checked.attempts_left
                errors.add("code", t("err_otp_left", left=left) if left else t.err_otp)
        if errors:
            return self.page(request, "pi_verify.html", 400, errors=errors, values=values, **self.pi_context())
        try:
            profile = await asyncio.to_thread(self.accounts.find_by_phone, number)
        except Exception:
            return self.message_page(request, 503, "unavailable_title", t.unavailable_text)
        return await self.open_case(request, None, kind="pi_request", pi_action=action, description=details,
                                    phone_hash=self.accounts.phone_hash(number),
                                    account_id=profile.account_id if profile else None)


def routes(gw: Gateway) -> list[BaseRoute]:
    """The portal's routes (none when ``portal.enabled`` is false). They are HTML pages, not the JSON
    API, so they stay out of the OpenAPI document (``include_in_schema=False``)."""
    if not gw.cfg.portal.enabled:
        return []
    p = Portal(gw)
    both = ["GET", "POST"]
    return [
        Route("/", p.root, methods=["GET"], include_in_schema=False),
        Route("/about", p.about, methods=["GET"], include_in_schema=False),
        Route("/about/agreements/{kind}", p.agreement, methods=["GET"], include_in_schema=False),
        Route("/static/{name}", p.static, methods=["GET"], include_in_schema=False),
        Route("/complaints/new", p.complaint, methods=both, include_in_schema=False),
        Route("/cases", p.lookup, methods=both, include_in_schema=False),
        Route("/cases/{code}", p.case_status, methods=["GET"], include_in_schema=False),
        Route("/pi-requests/new", p.pi_request, methods=both, include_in_schema=False),
    ]
