"""Images labelled the way another open GB 45438 labelling tool writes them, not by hegui's writer.

That tool puts the seven AIGC fields into XMP ``TC260:AIGC`` as a **bare** JSON object (no outer
``{"AIGC": …}``), serialised with spaces after ``:`` and ``,``, and ``ReservedCode1`` as a JSON
**number**. In PNG the XMP packet goes into an iTXt ``XML:com.adobe.xmp`` chunk (and, when asked, the
same object into an iTXt ``AIGC`` chunk as well). The files are made here with Pillow and XMP packets
built by hand, so the tests never read back what hegui's own writer (``hegui.labeling.xmp`` and
``hegui.labeling.image``) produced.

The knobs reproduce the other shapes seen in circulation: attribute or element form, the value in an
``rdf:Alt``, namespace URI variants, the wrapped shape, pretty-printing, a BOM, a missing field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image, PngImagePlugin

TC260_NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
PRODUCER = "001191440300MA5EXAMPL81T0A1"
"""A 27-character provider code of another provider (not the test workspace's own)."""
PRODUCE_ID = "20250901120000-7f3a9c"
RESERVED_CODE1 = 1735689600123
"""What the other tool writes in ReservedCode1: a JSON number (a millisecond timestamp)."""
DROP: Any = object()
"""Pass as a field value to :func:`foreign_fields` to leave that key out."""

XmpForm = Literal["element", "attribute", "alt"]


def foreign_fields(**overrides: Any) -> dict[str, Any]:
    """The other tool's seven fields, in the standard's order; ``overrides`` replace (or ``DROP``) them."""
    fields: dict[str, Any] = {
        "Label": "1",
        "ContentProducer": PRODUCER,
        "ProduceID": PRODUCE_ID,
        "ReservedCode1": RESERVED_CODE1,
        "ContentPropagator": PRODUCER,
        "PropagateID": PRODUCE_ID,
        "ReservedCode2": "",
    }
    for key, value in overrides.items():
        if value is DROP:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def label_text(
    fields: dict[str, Any], *, wrapped: bool = False, indent: int | None = None, bom: bool = False
) -> str:
    """The JSON as the other tool serialises it: bare, with ``", "`` and ``": "`` separators."""
    text = json.dumps({"AIGC": fields} if wrapped else fields, ensure_ascii=False, indent=indent)
    return ("\ufeff" if bom else "") + text


def xmp_packet(value: str, *, form: XmpForm = "element", namespace: str = TC260_NS) -> str:
    """A hand-built XMP packet with ``TC260:AIGC`` = ``value`` and one unrelated property."""
    ns = f'xmlns:TC260={quoteattr(namespace)} xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
    if form == "attribute":
        desc = f'<rdf:Description rdf:about="" {ns} xmp:CreatorTool="other-labeller" TC260:AIGC={quoteattr(value)}/>'
    else:
        inner = escape(value)
        if form == "alt":
            inner = f'<rdf:Alt><rdf:li xml:lang="x-default">{inner}</rdf:li></rdf:Alt>'
        desc = (
            f'<rdf:Description rdf:about="" {ns} xmp:CreatorTool="other-labeller">\n'
            f"   <TC260:AIGC>{inner}</TC260:AIGC>\n"
            "  </rdf:Description>"
        )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF_NS}">\n  {desc}\n </rdf:RDF>\n</x:xmpmeta>\n'
        '<?xpacket end="w"?>'
    )


def picture(width: int = 160, height: int = 120, seed: int = 7) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def _value(fields: dict[str, Any] | None, value: str | None, **json_opts: Any) -> str:
    if value is not None:
        return value
    return label_text(foreign_fields() if fields is None else fields, **json_opts)


def write_foreign_jpeg(
    path: Path,
    fields: dict[str, Any] | None = None,
    *,
    value: str | None = None,
    form: XmpForm = "element",
    namespace: str = TC260_NS,
    img: Image.Image | None = None,
    **json_opts: Any,
) -> Path:
    """A JPEG with the other tool's XMP label (``value``: the exact property text, else from ``fields``)."""
    packet = xmp_packet(_value(fields, value, **json_opts), form=form, namespace=namespace)
    (img or picture()).save(path, "JPEG", quality=90, xmp=packet.encode("utf-8"))
    return path


def write_foreign_png(
    path: Path,
    fields: dict[str, Any] | None = None,
    *,
    value: str | None = None,
    form: XmpForm = "element",
    namespace: str = TC260_NS,
    aigc_chunk: str | None = None,
    img: Image.Image | None = None,
    **json_opts: Any,
) -> Path:
    """A PNG with the other tool's XMP label in iTXt; ``aigc_chunk``: also an iTXt ``AIGC`` with that text."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(
        "XML:com.adobe.xmp", xmp_packet(_value(fields, value, **json_opts), form=form, namespace=namespace)
    )
    if aigc_chunk is not None:
        info.add_itxt("AIGC", aigc_chunk)
    (img or picture()).save(path, "PNG", pnginfo=info)
    return path


def write_foreign_webp(
    path: Path,
    fields: dict[str, Any] | None = None,
    *,
    value: str | None = None,
    form: XmpForm = "element",
    namespace: str = TC260_NS,
    img: Image.Image | None = None,
    **json_opts: Any,
) -> Path:
    """A lossless WebP with the other tool's XMP label in its ``XMP `` chunk."""
    packet = xmp_packet(_value(fields, value, **json_opts), form=form, namespace=namespace)
    (img or picture()).save(path, "WEBP", lossless=True, xmp=packet.encode("utf-8"))
    return path


WRITERS = {"jpg": write_foreign_jpeg, "png": write_foreign_png, "webp": write_foreign_webp}
