"""``POST /v1/images/generations``: the prompt moderated, every returned image labelled (GB 45438).

Path: authenticate → scene → input check of ``prompt`` (record) → upstream (same router and
failover as chat) → each image decoded, given the explicit corner label and the signed implicit XMP
label → ``b64_json`` to the client. hegui never passes on an image it has not labelled: an image the
upstream returns as a URL is fetched only from the upstream's own origin, and a broken image, a URL
elsewhere or an image too small to carry the label fails the whole request (no partial output).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hegui.errors import UserError
from hegui.gateway import demo_upstream
from hegui.gateway.errors import GatewayError
from hegui.gateway.input_check import InputPart
from hegui.gateway.request_models import ImageGenerationRequest, validate_body
from hegui.gateway.routes import DECISION_HEADER, REQUEST_HEADER, Call, collect_task, label_header
from hegui.gateway.upstream import DemoUpstream, HTTPUpstream, Upstream, UpstreamFailure, UpstreamRejected
from hegui.labeling.image import check_structure, label_image_bytes
from hegui.labeling.metadata import AIGCLabel, LabelFormatError, new_label
from hegui.labeling.signing import load_signing_key
from hegui.labeling.text import HEADER_NAME as LABEL_HEADER

if TYPE_CHECKING:
    from hegui.gateway.routes import Gateway

log = logging.getLogger("hegui.gateway.images")

IMAGES_PATH = "/images/generations"
"""OpenAI's own limit on ``n``."""
MAX_IMAGE_BYTES = 32 * 1024 * 1024
"""Largest image hegui decodes (one image, as sent or fetched)."""
PASSED_ON = ("url", "b64_json", "revised_prompt")
"""Per-image fields hegui replaces or drops (``revised_prompt`` is model text nobody checked)."""


@dataclass
class UpstreamImages:
    """What an upstream answered: its body and the raw bytes of each image, in order."""

    upstream: str
    body: dict[str, Any]
    images: list[bytes]


def content_filter_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "content_filter", "code": "content_filter", "param": "prompt"}}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = -1
    return scheme, (parts.hostname or "").lower(), port


class ImageGenerations:
    """The images route of one gateway app; ``handle`` is the Starlette endpoint."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.cfg = gw.cfg
        # loaded once: a bad key or provider config fails at start-up, not per image
        self.signing_key = load_signing_key(gw.cfg)
        new_label(gw.cfg)

    async def handle(self, request: Request) -> Response:
        gw = self.gw
        principal = await gw.auth.authenticate(request)
        body = await gw.read_json(request)
        req = validate_body(ImageGenerationRequest, body)
        body = req.model_dump(exclude_unset=True)
        model = req.model
        user = body.get("user") if isinstance(body.get("user"), str) else None
        admission = await gw.admit(request, principal, user)
        call = Call(request_id=uuid.uuid4().hex, principal=principal, scene=gw.scene(request, principal, admission),
                    body=body, model=model, chat=False, stream=False, parts=[InputPart(("prompt",), req.prompt)],
                    admission=admission)
        gw.check_limits(call.parts, 0)
        rv = await gw.check_input(call)
        vin = rv.verdict
        headers = {DECISION_HEADER: vin.decision_id, REQUEST_HEADER: call.request_id}
        if not vin.allowed:
            await gw.record_input(call, rv)
            refused = content_filter_error(vin.refusal or vin.text)
            refused["hegui"] = gw.refusal_extension(call, rv)
            gw.after_refusal(call)
            return JSONResponse(refused, status_code=400, headers=headers)
        # as for chat: the input record is committed while the upstream works, and before we answer
        rec_in = asyncio.ensure_future(gw.record_input(call, rv))
        upstream_body = gw.upstream_body(call, rv)  # a masked prompt replaces the original
        try:
            got: UpstreamImages = await gw.call_upstream(call, rec_in, lambda: self.generate(model, upstream_body))
            await rec_in
        finally:
            if not rec_in.done():
                rec_in.add_done_callback(collect_task)
        labelled = await asyncio.to_thread(self.label_all, got)
        out = {k: v for k, v in got.body.items() if k not in ("data", "hegui")}
        out.setdefault("created", int(time.time()))
        items = []
        for item, (data, _) in zip(got.body["data"], labelled, strict=True):
            kept = {k: v for k, v in item.items() if k not in PASSED_ON}
            items.append({**kept, "b64_json": base64.b64encode(data).decode("ascii")})
        out["data"] = items
        labels = [label.as_dict() for _, label in labelled]
        out["hegui"] = {**gw.extension(vin, None, got.upstream, call.notices), "labels": labels}
        if len(labels) == 1:
            headers[LABEL_HEADER] = label_header(labels[0])
        return JSONResponse(out, headers=headers)

    # -- labelling ---------------------------------------------------------------------------------

    def label_all(self, got: UpstreamImages) -> list[tuple[bytes, AIGCLabel]]:
        """Label every image (in a worker thread: decoding and encoding are CPU work)."""
        out = []
        for i, data in enumerate(got.images):
            name = f"image {i} from upstream {got.upstream}"
            try:
                out.append(label_image_bytes(data, self.cfg, new_label(self.cfg), signing_key=self.signing_key,
                                             name=name))
            except LabelFormatError as exc:
                self.gw.metrics.upstream_errors.labels(got.upstream, "protocol").inc()
                raise GatewayError(502, f"upstream sent a broken image, nothing is passed on: {exc}",
                                   type="upstream_error", code="upstream_error") from None
            except UserError as exc:
                raise GatewayError(502, f"cannot label the image, nothing is passed on: {exc}",
                                   type="upstream_error", code="label_failed") from None
        return out

    # -- the upstream ------------------------------------------------------------------------------

    async def generate(self, model: str, body: dict[str, Any]) -> UpstreamImages:
        """Ask the upstreams for ``model`` in turn (failover as for chat); the images' raw bytes."""
        _, got = await self.gw.router.attempt(model, lambda up: self.ask(up, body))
        return got

    async def ask(self, up: Upstream, body: dict[str, Any]) -> UpstreamImages:
        """One attempt: the upstream's answer and every image it names, read and checked for structure.

        A broken image, a URL hegui may not fetch, or a failed fetch is this upstream's failure, so
        the router tries the next one."""
        if isinstance(up, DemoUpstream):
            answer = await self._ask_demo(up, body)
        elif isinstance(up, HTTPUpstream):
            answer = await self._ask_http(up, body)
        else:  # pragma: no cover - every upstream kind is handled above
            raise TypeError(f"unknown upstream {up!r}")
        items = answer.get("data")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent no images ('data')")
        images = []
        for i, item in enumerate(items):
            if isinstance(item.get("b64_json"), str):
                try:
                    data = base64.b64decode(item["b64_json"], validate=True)
                except (binascii.Error, ValueError):
                    raise UpstreamFailure(up.name, "protocol",
                                          f"upstream {up.name} sent image {i} with b64_json that is not base64") from None
            elif isinstance(item.get("url"), str):
                data = await self._fetch(up, item["url"], i)
            else:
                raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent image {i} with neither "
                                      "b64_json nor url")
            if len(data) > MAX_IMAGE_BYTES:
                raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent image {i} larger than "
                                      f"{MAX_IMAGE_BYTES} bytes")
            try:
                check_structure(data, f"image {i}")
            except LabelFormatError as exc:
                raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent a broken image ({exc})") from None
            images.append(data)
        return UpstreamImages(up.name, answer, images)

    async def _ask_demo(self, up: DemoUpstream, body: dict[str, Any]) -> dict[str, Any]:
        await up.prepare(IMAGES_PATH, body)  # /sleep and /status, as for chat
        try:
            return await asyncio.to_thread(demo_upstream.images_response, body, demo_upstream.IN_PROCESS_STORE,
                                           demo_upstream.IN_PROCESS_IMAGE_BASE)
        except ValueError as exc:
            raise UpstreamRejected(400, demo_upstream.error_body(400, str(exc))) from None

    async def _ask_http(self, up: HTTPUpstream, body: dict[str, Any]) -> dict[str, Any]:
        # HTTPUpstream's own sender: the same auth, timeouts and mapping of errors to failover as chat
        resp = await up.send(IMAGES_PATH, body, stream=False)
        try:
            answer = resp.json()
        except ValueError:
            raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent a body that is not an object")
        return answer

    async def _fetch(self, up: Upstream, url: str, index: int) -> bytes:
        """Image ``index`` given as ``url``: read it from the upstream's own origin, nowhere else."""
        if isinstance(up, DemoUpstream):
            prefix = demo_upstream.IN_PROCESS_IMAGE_BASE + "/images/"
            image_id = url[len(prefix):].rpartition(".")[0] if url.startswith(prefix) else ""
            data = demo_upstream.IN_PROCESS_STORE.get(image_id) if image_id else None
            if data is None:
                raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent image {index} as a URL "
                                      f"hegui cannot read ({url[:200]}); an image hegui cannot label is not "
                                      "passed on")
            return data
        assert isinstance(up, HTTPUpstream)
        if _origin(url) != _origin(up.config.base_url):
            host = urlsplit(url).hostname or url[:100]
            raise UpstreamFailure(up.name, "protocol", f"upstream {up.name} sent image {index} as a URL on "
                                  f"another host ({host}); hegui fetches images only from the upstream's own "
                                  "origin, and an image it cannot label is not passed on")
        try:
            async with up.stream_get(url) as resp:
                if resp.status_code != 200:
                    raise UpstreamFailure(up.name, "status", f"upstream {up.name}: fetching image {index} "
                                          f"returned {resp.status_code}", status=resp.status_code)
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        raise UpstreamFailure(up.name, "protocol", f"upstream {up.name}: image {index} is larger "
                                              f"than {MAX_IMAGE_BYTES} bytes")
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise UpstreamFailure(up.name, "timeout", f"upstream {up.name}: fetching image {index} timed out") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailure(up.name, "connect" if isinstance(exc, httpx.ConnectError) else "protocol",
                                  f"upstream {up.name}: fetching image {index} failed: {exc.__class__.__name__}"
                                  ) from None
        return b"".join(chunks)
