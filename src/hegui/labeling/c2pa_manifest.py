"""Optional C2PA manifest on labelled images, beside (never instead of) the GB 45438 metadata.

Needs the optional extra ``c2pa-python`` (``pip install 'hegui[c2pa]'``); the core does not depend on
it. The manifest says the image was created by a trained algorithm (IPTC digital source type
``trainedAlgorithmicMedia``) and carries the AIGC fields in a ``cn.tc260.aigc`` assertion. It is
signed offline with the configured certificate chain (no time-stamp server unless configured).

C2PA binds the whole file: any later change of the file's bytes, including ``hegui label propagate``
(which rewrites metadata only), makes the manifest invalid, while the GB 45438 signature stays valid.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hegui.errors import ConfigError, UserError

if TYPE_CHECKING:
    from hegui.config import HeguiConfig
    from hegui.labeling.metadata import AIGCLabel

ASSERTION = "cn.tc260.aigc"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def _c2pa() -> Any:
    try:
        import c2pa
    except ImportError:
        raise UserError(
            "labeling.c2pa.enabled needs the optional package c2pa-python (pip install 'hegui[c2pa]')"
        ) from None
    return c2pa


def available() -> bool:
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return False
    return True


def manifest_for(label: AIGCLabel, title: str) -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": "hegui", "version": "0.1.0"}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]
                },
            },
            {"label": ASSERTION, "data": label.as_dict()},
        ],
    }


def _read_file(cfg: HeguiConfig, key: str, value: str | None) -> bytes:
    if not value:
        raise ConfigError(f"labeling.c2pa.{key}: not set, but labeling.c2pa.enabled is true")
    path = cfg.resolve_path(value)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"labeling.c2pa.{key}: cannot read {path} ({exc.strerror})") from None


def sign_bytes(data: bytes, kind: str, label: AIGCLabel, cfg: HeguiConfig, title: str) -> bytes:
    """``data`` (an image of ``kind`` jpeg/png/webp) with a signed C2PA manifest embedded."""
    c2pa = _c2pa()
    conf = cfg.labeling.c2pa
    chain = _read_file(cfg, "cert_chain", conf.cert_chain)
    key = _read_file(cfg, "private_key", conf.private_key)
    alg = getattr(c2pa.C2paSigningAlg, conf.algorithm.upper())
    tsa = conf.tsa_url.encode() if conf.tsa_url else None
    settings = {"builder": {"thumbnail": {"enabled": conf.thumbnail}}}
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain, key, tsa))
        with (
            c2pa.Context.from_dict(settings) as ctx,
            c2pa.Builder(manifest_for(label, title), context=ctx) as builder,
        ):
            out = io.BytesIO()
            builder.sign(signer, MIME[kind], io.BytesIO(data), out)
        signer.close()
    except c2pa.C2paError as exc:
        raise ConfigError(
            f"labeling.c2pa: signing failed ({exc}); check cert_chain, private_key and algorithm"
        ) from None
    return out.getvalue()


@dataclass(frozen=True)
class C2PAReading:
    state: str
    """``Valid``, ``Trusted`` or ``Invalid`` (c2pa-rs validation state); ``absent`` without a manifest."""
    aigc: dict[str, str] | None
    """The ``cn.tc260.aigc`` assertion of the active manifest, if any."""
    codes: list[str]
    """Failure codes of the validation (e.g. ``assertion.dataHash.mismatch``)."""


def read_bytes(data: bytes, kind: str, trust_anchors: bytes | None = None) -> C2PAReading | None:
    """The manifest's validation state and AIGC assertion; None when c2pa-python is not installed."""
    if not available():
        return None
    import c2pa

    settings: dict[str, Any] = {}
    if trust_anchors:
        settings = {"verify": {"verify_trust": True}, "trust": {"trust_anchors": trust_anchors.decode()}}
    with c2pa.Context.from_dict(settings) as ctx:
        reader = c2pa.Reader.try_create(MIME[kind], io.BytesIO(data), context=ctx)
        if reader is None:
            return C2PAReading("absent", None, [])
        with reader:
            state = reader.get_validation_state() or "unknown"
            manifest = reader.get_active_manifest() or {}
            results = reader.get_validation_results() or {}
    aigc = next((a.get("data") for a in manifest.get("assertions", []) if a.get("label") == ASSERTION), None)
    codes = sorted(
        {f["code"] for f in json.loads(json.dumps(results)).get("activeManifest", {}).get("failure", [])}
    )
    return C2PAReading(state, aigc, codes)
