"""Text labels: DOCX custom property, Markdown front matter, HTML meta, plain text; and TextLabeler."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from hegui.config import HeguiConfig, load_config
from hegui.errors import UserError
from hegui.labeling import documents as docs
from hegui.labeling.config import LabelingConfig, TextLabelConfig
from hegui.labeling.metadata import AIGCLabel, LabelFormatError, new_label
from hegui.labeling.signing import SignatureStatus, sign, verify_signature, write_keypair
from hegui.labeling.text import TextLabeler, text_digest

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="word/document.xml"/></Relationships>'
)
DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<w:document xmlns:w="{W}"><w:body>'
    "<w:p><w:r><w:t>第一段 first paragraph</w:t></w:r></w:p>"
    "<w:p><w:r><w:t>last paragraph</w:t></w:r></w:p>"
    '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr>'
    "</w:body></w:document>"
)
CUSTOM_WITH_OTHER = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
    'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
    '<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="Department">'
    "<vt:lpwstr>Legal</vt:lpwstr></property></Properties>"
)


def make_docx(path: Path, *, custom: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            CONTENT_TYPES
            if custom is None
            else CONTENT_TYPES.replace(
                "</Types>",
                '<Override PartName="/docProps/custom.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.custom-properties+xml"/></Types>',
            ),
        )
        z.writestr(
            "_rels/.rels",
            RELS
            if custom is None
            else RELS.replace(
                "</Relationships>",
                '<Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
                'custom-properties" Target="docProps/custom.xml"/></Relationships>',
            ),
        )
        z.writestr("word/document.xml", DOCUMENT)
        if custom is not None:
            z.writestr("docProps/custom.xml", custom)
    return path


def docx_parts(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n).decode("utf-8") for n in z.namelist()}


@pytest.fixture
def cfg() -> HeguiConfig:
    return HeguiConfig()


# --- DOCX ----------------------------------------------------------------------------------------


def test_docx_gets_custom_part_content_type_and_relationship(tmp_path: Path, cfg: HeguiConfig) -> None:
    src = make_docx(tmp_path / "in.docx")
    dst = tmp_path / "out.docx"
    final = docs.label_document(src, dst, cfg, new_label(cfg))
    parts = docx_parts(dst)
    custom = ET.fromstring(parts["docProps/custom.xml"])
    props = custom.findall(
        "{http://schemas.openxmlformats.org/officeDocument/2006/custom-properties}property"
    )
    assert [p.get("name") for p in props] == ["AIGC"]
    assert props[0].get("fmtid") == "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
    assert props[0][0].tag.endswith("}lpwstr") and props[0][0].text == final.to_json()
    assert 'PartName="/docProps/custom.xml"' in parts["[Content_Types].xml"]
    assert re.search(r'Type="[^"]+/custom-properties" Target="docProps/custom.xml"', parts["_rels/.rels"])
    ET.fromstring(parts["[Content_Types].xml"])
    ET.fromstring(parts["_rels/.rels"])
    assert docs.read_label(dst) == final.to_json()
    # explicit label paragraphs: prefix first in the body; the body-level sectPr stays last
    body = ET.fromstring(parts["word/document.xml"]).find(f"{{{W}}}body")
    assert body is not None
    texts = ["".join(t.text or "" for t in p.iter(f"{{{W}}}t")) for p in body.findall(f"{{{W}}}p")]
    assert texts[0] == "【AI生成】" and texts[1].startswith("第一段")
    assert body[-1].tag == f"{{{W}}}sectPr"
    assert docs.explicit_label_in_file(dst, cfg)
    assert not docs.explicit_label_in_file(src, cfg)
    assert verify_signature(final, docs.content_digest(dst), None) is SignatureStatus.HASH_ONLY


def test_docx_existing_custom_properties_are_kept(tmp_path: Path) -> None:
    src = make_docx(tmp_path / "in.docx", custom=CUSTOM_WITH_OTHER)
    dst = tmp_path / "out.docx"
    lab = new_label(HeguiConfig())
    docs.write_label(src, dst, lab.to_json())
    docs.write_label(dst, dst, lab.to_json())  # again: still one AIGC property, one override, one rel
    parts = docx_parts(dst)
    assert "Legal" in parts["docProps/custom.xml"]
    assert parts["docProps/custom.xml"].count('name="AIGC"') == 1
    assert parts["[Content_Types].xml"].count("/docProps/custom.xml") == 1
    assert parts["_rels/.rels"].count("docProps/custom.xml") == 1
    pids = re.findall(r'pid="(\d+)"', parts["docProps/custom.xml"])
    assert len(set(pids)) == len(pids) == 2
    assert docs.content_digest(dst) == docs.content_digest(src)
    assert parts["word/document.xml"] == DOCUMENT  # metadata-only write


def test_docx_content_edit_changes_digest(tmp_path: Path) -> None:
    a = make_docx(tmp_path / "a.docx")
    b = tmp_path / "b.docx"
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b, "w") as zb:
        for info in za.infolist():
            data = za.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"last paragraph", b"edited paragraph")
            zb.writestr(info, data)
    assert docs.content_digest(a) != docs.content_digest(b)


def test_broken_docx(tmp_path: Path, cfg: HeguiConfig) -> None:
    good = make_docx(tmp_path / "good.docx").read_bytes()
    (tmp_path / "trunc.docx").write_bytes(good[: len(good) // 2])
    (tmp_path / "notzip.docx").write_text("hello")
    with zipfile.ZipFile(tmp_path / "noword.docx", "w") as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
    for name, needle in [
        ("trunc.docx", "broken or truncated ZIP"),
        ("notzip.docx", "not a DOCX"),
        ("noword.docx", "not a Word"),
    ]:
        out = tmp_path / "out" / name
        out.parent.mkdir(exist_ok=True)
        with pytest.raises(LabelFormatError, match=needle):
            docs.label_document(tmp_path / name, out, cfg, new_label(cfg))
        assert list(out.parent.iterdir()) == []


# --- Markdown ------------------------------------------------------------------------------------


def test_markdown_merges_into_front_matter_keeping_keys_and_comments(
    tmp_path: Path, cfg: HeguiConfig
) -> None:
    src = tmp_path / "in.md"
    src.write_text(
        "---\ntitle: 报告  # a comment\ntags:\n  - a\n---\n# Heading\n\nBody text.\n", encoding="utf-8"
    )
    dst = tmp_path / "out.md"
    final = docs.label_document(src, dst, cfg, new_label(cfg))
    text = dst.read_text(encoding="utf-8")
    assert "title: 报告  # a comment\ntags:\n  - a\n" in text
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["AIGC"] == final.to_json() and front["tags"] == ["a"]
    assert text.split("---\n", 2)[2].startswith("【AI生成】\n\n# Heading")
    assert docs.read_label(dst) == final.to_json()
    assert docs.explicit_label_in_file(dst, cfg)
    # relabel: one AIGC key, other keys untouched, digest unchanged
    lab2 = new_label(cfg)
    docs.write_label(dst, dst, lab2.to_json())
    again = dst.read_text(encoding="utf-8")
    assert again.count("AIGC:") == 1 and docs.read_label(dst) == lab2.to_json()
    assert docs.content_digest(dst) == docs.digest_bytes(text.encode(), "x", "markdown")


def test_markdown_without_front_matter_round_trips_to_the_original(tmp_path: Path) -> None:
    src = tmp_path / "in.md"
    src.write_text("# Title\n\n---\n\nafter a rule\n", encoding="utf-8")
    dst = tmp_path / "out.md"
    docs.write_label(src, dst, new_label(HeguiConfig()).to_json())
    assert dst.read_text(encoding="utf-8").startswith('---\nAIGC: \'{"AIGC":')
    assert docs.content_digest(dst) == docs.content_digest(src)
    assert docs.visible_text(dst.read_bytes(), "x", "markdown").startswith("# Title")


def test_markdown_front_matter_object_form_is_read(tmp_path: Path) -> None:
    lab = new_label(HeguiConfig())
    p = tmp_path / "obj.md"
    p.write_text("---\nAIGC:\n" + "".join(f"  {k}: '{v}'\n" for k, v in lab.as_dict().items()) + "---\nhi\n")
    raw = docs.read_label(p)
    assert raw is not None and AIGCLabel.from_json(raw) == lab


# --- HTML ----------------------------------------------------------------------------------------


def test_html_meta_in_head_and_explicit_paragraph(tmp_path: Path, cfg: HeguiConfig) -> None:
    src = tmp_path / "in.html"
    src.write_text(
        "<!DOCTYPE html><html lang=zh><head><title>t</title></head><body><p>正文</p></body></html>\n"
    )
    dst = tmp_path / "out.html"
    final = docs.label_document(src, dst, cfg, new_label(cfg))
    text = dst.read_text(encoding="utf-8")
    assert re.search(r"<head><meta name=\"AIGC\" content='\{\"AIGC\":\{\"Label\":\"1\"", text)
    assert text.index("<meta") < text.index("</head>")
    assert '<body><p class="aigc-label">【AI生成】</p><p>正文</p>' in text
    assert docs.read_label(dst) == final.to_json()
    assert docs.explicit_label_in_file(dst, cfg)


def test_html_escapes_quotes_and_replaces_existing_meta(tmp_path: Path) -> None:
    src = tmp_path / "in.html"
    src.write_text("<html><body>x</body></html>")
    lab = new_label(HeguiConfig())
    tricky = AIGCLabel(**{**lab.__dict__, "reserved_code2": "a'b<c>&d"})
    docs.write_label(src, src, tricky.to_json())
    assert "<head><meta" in src.read_text()
    assert docs.read_label(src) == tricky.to_json()
    docs.write_label(src, src, lab.to_json())
    assert src.read_text().lower().count('name="aigc"') == 1
    assert docs.read_label(src) == lab.to_json()


def test_html_fragment_without_head(tmp_path: Path) -> None:
    src = tmp_path / "frag.htm"
    src.write_text("<p>just a fragment</p>")
    lab = new_label(HeguiConfig())
    docs.write_label(src, tmp_path / "out.htm", lab.to_json())
    assert docs.read_label(tmp_path / "out.htm") == lab.to_json()
    assert docs.content_digest(tmp_path / "out.htm") == docs.content_digest(src)


# --- plain text ----------------------------------------------------------------------------------


def test_plain_text_trailer(tmp_path: Path, cfg: HeguiConfig) -> None:
    src = tmp_path / "in.txt"
    src.write_text("第一行\n第二行\n", encoding="utf-8")
    dst = tmp_path / "out.txt"
    final = docs.label_document(src, dst, cfg, new_label(cfg))
    lines = dst.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "【AI生成】" and lines[1:3] == ["第一行", "第二行"]
    assert lines[-1] == "AIGC: " + final.to_json()
    assert docs.read_label(dst) == final.to_json()
    assert verify_signature(final, docs.content_digest(dst), None) is SignatureStatus.HASH_ONLY
    dst.write_text(dst.read_text(encoding="utf-8").replace("第二行", "改了"), encoding="utf-8")
    assert verify_signature(final, docs.content_digest(dst), None) is SignatureStatus.CONTENT_CHANGED


def test_plain_text_sidecar_mode(tmp_path: Path) -> None:
    cfg = HeguiConfig(labeling=LabelingConfig(text=TextLabelConfig(plain_implicit="sidecar", position="end")))
    src = tmp_path / "in.txt"
    src.write_text("hello\r\nworld\r\n", encoding="utf-8")
    dst = tmp_path / "out.txt"
    final = docs.label_document(src, dst, cfg, new_label(cfg))
    side = tmp_path / "out.txt.aigc.json"
    assert json.loads(side.read_text()) == json.loads(final.to_json())
    body = dst.read_bytes().decode("utf-8")
    assert "AIGC" not in body and body.endswith("（本内容由人工智能生成）\r\n")
    assert docs.read_label(dst) == final.to_json()
    assert verify_signature(final, docs.content_digest(dst), None) is SignatureStatus.HASH_ONLY
    # passing it on keeps the label beside the file, not inside it
    docs.write_label(dst, tmp_path / "shared.txt", final.with_propagator("P").to_json())
    assert (tmp_path / "shared.txt").read_bytes() == dst.read_bytes()
    assert AIGCLabel.from_json(docs.read_label(tmp_path / "shared.txt") or "").content_propagator == "P"


def test_plain_text_errors(tmp_path: Path, cfg: HeguiConfig) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(LabelFormatError, match=r"bad\.txt: not UTF-8 text"):
        docs.label_document(bad, tmp_path / "o.txt", cfg, new_label(cfg))
    assert not (tmp_path / "o.txt").exists()
    with pytest.raises(UserError, match="same kind of suffix"):
        docs.label_document(bad, tmp_path / "o.md", cfg, new_label(cfg))
    with pytest.raises(UserError, match=r"\.pdf"):
        docs.kind_of(tmp_path / "x.pdf")


def test_text_that_merely_mentions_aigc_is_not_a_label(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("we discuss AIGC: {labels} here\nmore\n")
    assert docs.read_label(p) is None


# --- gateway helper -----------------------------------------------------------------------------


def test_text_labeler(tmp_path: Path) -> None:
    key, pub = write_keypair(tmp_path / "k.pem")
    (tmp_path / "hegui.yaml").write_text(f"labeling:\n  signing_key: {key}\n  text:\n    position: both\n")
    cfg = load_config(tmp_path / "hegui.yaml")
    labeler = TextLabeler(cfg)
    assert labeler.explicit_prefix == "【AI生成】" and labeler.explicit_suffix == "（本内容由人工智能生成）"
    answer, label = labeler.label("你好")
    assert answer == "【AI生成】\n你好\n（本内容由人工智能生成）"
    from hegui.labeling.signing import load_public_key

    assert verify_signature(label, text_digest(answer), load_public_key(pub)) is SignatureStatus.VALID
    assert (
        verify_signature(label, text_digest("你好"), load_public_key(pub)) is SignatureStatus.CONTENT_CHANGED
    )
    assert labeler.implicit("x").produce_id != labeler.implicit("x").produce_id
    off = TextLabeler(cfg, explicit=False)
    assert off.apply_explicit("你好") == "你好" and (off.explicit_prefix, off.explicit_suffix) == ("", "")


def test_sign_helper_accepts_document_digest(tmp_path: Path) -> None:
    p = tmp_path / "a.md"
    p.write_text("hello\n")
    lab = sign(new_label(HeguiConfig()), docs.content_digest(p), None)
    docs.write_label(p, p, lab.to_json())
    assert verify_signature(AIGCLabel.from_json(docs.read_label(p) or ""), docs.content_digest(p), None) is (
        SignatureStatus.HASH_ONLY
    )


def test_text_labeler_stream_keeps_announced_id() -> None:
    labeler = TextLabeler(HeguiConfig())
    announced = labeler.begin()
    assert announced.reserved_code1 == ""
    announced.to_json().encode("ascii")  # safe as an HTTP header value
    final = labeler.implicit("streamed answer", base=announced)
    assert final.produce_id == announced.produce_id
    assert verify_signature(final, text_digest("streamed answer"), None) is SignatureStatus.HASH_ONLY
