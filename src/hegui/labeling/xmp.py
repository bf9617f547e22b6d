"""XMP packets: put the ``TC260:AIGC`` property into an existing packet (or a new one), and read it.

Existing packets are parsed with defusedxml (no DTDs or entities), every other property is kept, and
any earlier ``AIGC`` property is replaced, so a file holds one implicit label.

Reading is tolerant of the forms other writers use: the property as an attribute of
``rdf:Description`` or as an element, its text as a simple value or inside an ``rdf:Alt``/``rdf:Seq``/
``rdf:Bag`` (a language alternative), and the TC260 namespace URI written with another scheme, case
or without its trailing slash. hegui always writes the element form under :data:`TC260_NS`.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from hegui.labeling.metadata import LabelFormatError

TC260_NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
TC260_PREFIX = "TC260"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X_NS = "adobe:ns:meta/"
_AIGC = f"{{{TC260_NS}}}AIGC"
_DESCRIPTION = f"{{{RDF_NS}}}Description"
_PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
_PACKET_END = '<?xpacket end="w"?>'

ET.register_namespace("x", X_NS)
ET.register_namespace("rdf", RDF_NS)
ET.register_namespace(TC260_PREFIX, TC260_NS)


def is_aigc_property(tag: str) -> bool:
    """``{namespace}AIGC`` under the TC260 namespace, or a variant of its URI (``tc260`` in it)."""
    if tag == _AIGC:
        return True
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return local == "AIGC" and "tc260" in namespace.lower()


def _text_value(el: ET.Element) -> str:
    """A simple property's text, or the first ``rdf:li`` of an ``rdf:Alt``/``Seq``/``Bag`` inside it."""
    if el.text and el.text.strip():
        return el.text
    for container in el:
        if container.tag in (f"{{{RDF_NS}}}Alt", f"{{{RDF_NS}}}Seq", f"{{{RDF_NS}}}Bag"):
            for li in container.iter(f"{{{RDF_NS}}}li"):
                return li.text or ""
    return el.text or ""


def new_packet(inner_json: str) -> bytes:
    """A minimal XMP packet holding only ``TC260:AIGC``."""
    root = ET.Element(f"{{{X_NS}}}xmpmeta")
    rdf = ET.SubElement(root, f"{{{RDF_NS}}}RDF")
    desc = ET.SubElement(rdf, _DESCRIPTION, {f"{{{RDF_NS}}}about": ""})
    ET.SubElement(desc, _AIGC).text = inner_json
    return _serialise(root)


def _serialise(root: ET.Element) -> bytes:
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    return (_PACKET_BEGIN + "\n" + body + "\n" + _PACKET_END).encode("utf-8")


def _parse(packet: bytes | str) -> ET.Element:
    text = packet.decode("utf-8", errors="strict") if isinstance(packet, bytes) else packet
    text = text.lstrip("\ufeff")
    # Remember the packet's own prefixes so rewriting does not rename them to ns0, ns1, …
    try:
        for _event, (prefix, uri) in SafeET.iterparse(io.StringIO(text), events=("start-ns",)):
            if prefix and not prefix.startswith("ns") and prefix != TC260_PREFIX:
                try:
                    ET.register_namespace(prefix, uri)
                except ValueError:
                    pass
        root = SafeET.fromstring(text)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise LabelFormatError(f"existing XMP is not well-formed XML ({exc}); not overwriting it") from None
    return root


def merge(packet: bytes | str | None, inner_json: str) -> bytes:
    """``packet`` with ``TC260:AIGC`` set to ``inner_json``; a new packet when there is none."""
    if packet is None or not packet.strip():
        return new_packet(inner_json)
    try:
        root = _parse(packet)
    except UnicodeDecodeError:
        raise LabelFormatError("existing XMP is not UTF-8; not overwriting it") from None
    rdf = root if root.tag == f"{{{RDF_NS}}}RDF" else root.find(f".//{{{RDF_NS}}}RDF")
    if rdf is None:
        raise LabelFormatError("existing XMP has no rdf:RDF element; not overwriting it")
    descriptions = rdf.findall(_DESCRIPTION)
    for desc in rdf.iter(_DESCRIPTION):  # every place read() looks, in every namespace variant
        for key in [k for k in desc.attrib if is_aigc_property(k)]:
            del desc.attrib[key]
        for old in [child for child in desc if is_aigc_property(child.tag)]:
            desc.remove(old)
    if descriptions:
        target = descriptions[0]
    else:
        target = ET.SubElement(rdf, _DESCRIPTION, {f"{{{RDF_NS}}}about": ""})
    ET.SubElement(target, _AIGC).text = inner_json
    return _serialise(root)


def read(packet: bytes | str | None) -> str | None:
    """The ``TC260:AIGC`` value (the inner JSON) of ``packet``, or None."""
    if not packet:
        return None
    try:
        root = _parse(packet)
    except (LabelFormatError, UnicodeDecodeError):
        return None
    for desc in root.iter(_DESCRIPTION):
        for key, value in desc.attrib.items():
            if is_aigc_property(key):
                return value
        for child in desc:
            if is_aigc_property(child.tag):
                return _text_value(child)
    return None
