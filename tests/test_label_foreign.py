"""Labels written by another GB 45438 tool: read them, report them, keep exit 3 for real tampering.

The files come from ``label_fixtures`` (Pillow + hand-built XMP/iTXt in that tool's shape: bare
object, ReservedCode1 as a JSON number), never from hegui's own writer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from hegui.cli import app
from hegui.labeling import image as img_mod
from hegui.labeling import xmp
from hegui.labeling.metadata import AIGCLabel, LabelFormatError, read_label_json
from label_fixtures import (
    DROP,
    PRODUCE_ID,
    PRODUCER,
    RESERVED_CODE1,
    TC260_NS,
    WRITERS,
    foreign_fields,
    label_text,
    picture,
    write_foreign_jpeg,
    write_foreign_png,
    xmp_packet,
)

USCC = "91110000600037341L"
runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def verify_json(path: Path, *extra: str | Path) -> tuple[int, dict[str, Any]]:
    code, out, err = invoke("label", "verify", path, "--json", *extra)
    assert code != 2, err
    return code, json.loads(out)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A platform's own config (provider acme, its own signing key), like test_label_cli's."""
    code, _, err = invoke("label", "keygen", "-o", tmp_path / "platform.pem")
    assert code == 0, err
    (tmp_path / "hegui.yaml").write_text(
        f"provider:\n  name: acme\n  uscc: {USCC}\n  service_code: M001\nlabeling:\n  signing_key: platform.pem\n",
        encoding="utf-8",
    )
    return tmp_path


# --- the issue: the other tool's JPEG and PNG -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
@pytest.mark.parametrize("with_config", [True, False])
def test_foreign_label_is_read_and_reported_exit_0(workspace: Path, fmt: str, with_config: bool) -> None:
    path = WRITERS[fmt](workspace / f"foreign.{fmt}")
    extra = ("-c", workspace / "hegui.yaml") if with_config else ()
    code, report = verify_json(path, *extra)
    assert code == 0, report["problems"]
    assert report["status"] == "valid" and report["problems"] == []
    assert report["label"] == {
        "Label": "1",
        "ContentProducer": PRODUCER,
        "ProduceID": PRODUCE_ID,
        "ReservedCode1": str(RESERVED_CODE1),
        "ContentPropagator": PRODUCER,
        "PropagateID": PRODUCE_ID,
        "ReservedCode2": "",
    }
    assert report["label_meaning"] == "AI-generated"
    assert report["signature"] == "not-hegui" and report["producer_signature"] == "not-hegui"
    assert report["content_changed"] is None  # the other tool's data binds nothing hegui can check
    assert report["label_places"] == [
        {
            "place": "xmp",
            "shape": "bare",
            "deviations": [f"ReservedCode1 is a JSON number (read as '{RESERVED_CODE1}')"],
        }
    ]
    assert any("not an hegui signature" in n and "a JSON number" in n for n in report["notes"])
    code, out, _ = invoke("label", "verify", path, *extra)
    assert code == 0
    assert f"{path}: VALID" in out
    assert any(line.startswith("  signature: not hegui's") for line in out.splitlines())  # its own line


@pytest.mark.parametrize(
    "reserved_code1",
    [DROP, "", None],
    ids=["missing", "empty", "null"],
)
def test_foreign_label_without_signature_is_absent_exit_0(workspace: Path, reserved_code1: Any) -> None:
    fields = foreign_fields(ReservedCode1=reserved_code1, ReservedCode2=DROP)
    path = write_foreign_png(workspace / "unsigned.png", fields)
    code, report = verify_json(path, "-c", workspace / "hegui.yaml")
    assert code == 0 and report["signature"] == "absent" and report["producer_signature"] == "unsigned"
    assert report["label"]["ReservedCode1"] == "" and report["label"]["ReservedCode2"] == ""
    code, out, _ = invoke("label", "verify", path, "-c", workspace / "hegui.yaml")
    assert code == 0 and "signature: absent (ReservedCode1 is empty" in out


def test_png_with_xmp_and_aigc_chunk_in_different_shapes_is_one_label(workspace: Path) -> None:
    fields = foreign_fields()
    # iTXt AIGC in the wrapped shape with ReservedCode1 as a string: same values, no conflict.
    wrapped = json.dumps({"AIGC": {**fields, "ReservedCode1": str(RESERVED_CODE1)}})
    path = write_foreign_png(workspace / "both.png", fields, aigc_chunk=wrapped)
    code, report = verify_json(path)
    assert code == 0 and report["signature"] == "not-hegui"
    assert [(p["place"], p["shape"]) for p in report["label_places"]] == [
        ("xmp", "bare"),
        ("png:AIGC", "wrapped"),
    ]
    # ...but two places that say different things are a conflict, whoever wrote them
    other = label_text(foreign_fields(ProduceID="another-id"))
    path = write_foreign_png(workspace / "conflict.png", fields, aigc_chunk=other)
    code, report = verify_json(path)
    assert code == 3 and "conflicting labels (xmp, png:AIGC)" in report["problems"][0]


@pytest.mark.parametrize(
    ("options", "shape"),
    [
        ({"form": "attribute"}, "bare"),
        ({"form": "alt"}, "bare"),
        ({"namespace": "https://www.tc260.org.cn/ns/AIGC/1.0"}, "bare"),
        ({"namespace": TC260_NS.upper()}, "bare"),
        ({"wrapped": True}, "wrapped"),
        ({"indent": 2}, "bare"),
        ({"bom": True}, "bare"),
    ],
    ids=["attribute", "rdf-alt", "https-no-slash", "upper-case-ns", "wrapped", "pretty-printed", "bom"],
)
@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_other_shapes_in_circulation_are_accepted(
    workspace: Path, fmt: str, options: dict[str, Any], shape: str
) -> None:
    path = WRITERS[fmt](
        workspace / f"shape.{fmt}", foreign_fields(Label=1, ProduceID=20250901120000123), **options
    )
    code, report = verify_json(path)
    assert code == 0, report["problems"]
    assert report["label"]["Label"] == "1" and report["label"]["ProduceID"] == "20250901120000123"
    assert report["label_places"][0]["shape"] == shape
    deviations = report["label_places"][0]["deviations"]
    assert "Label is a JSON number (read as '1')" in deviations
    assert "ProduceID is a JSON number (read as '20250901120000123')" in deviations


def test_xmp_with_an_unrelated_namespace_is_not_a_label(workspace: Path) -> None:
    path = write_foreign_jpeg(workspace / "other-ns.jpg", namespace="http://example.com/ns/mine/")
    code, report = verify_json(path)
    assert code == 1 and report["status"] == "unlabelled"


# --- still tampered: inconsistent labels, hegui signatures that fail ---------------------------------


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"Label": "5"}, '\'Label\' must be "1", "2" or "3", not \'5\''),
        ({"Label": 4}, "'Label' must be"),
        ({"Label": "yes"}, "'Label' must be"),
        ({"Label": True}, "'Label' must be a string"),
        ({"ContentProducer": "other co"}, "'ContentProducer': character space"),
        ({"ContentProducer": 1191440300}, "'ContentProducer' must be a string"),
        ({"ContentProducer": ""}, "'ContentProducer' must not be empty"),
        ({"ContentProducer": None}, "lacks the required field 'ContentProducer'"),
        ({"ProduceID": DROP}, "lacks the required field 'ProduceID'"),
        ({"ProduceID": 1.5}, "'ProduceID' must be a string"),
        ({"PropagateID": 'a"b'}, "'PropagateID': character double quote"),
        ({"ReservedCode1": True}, "'ReservedCode1' must be a string"),
        ({"ReservedCode1": [1, 2]}, "'ReservedCode1' must be a string"),
        ({"Extra": "x"}, "unknown field 'Extra'"),
    ],
)
@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_inconsistent_foreign_label_is_tampered(
    workspace: Path, fmt: str, overrides: dict[str, Any], needle: str
) -> None:
    path = WRITERS[fmt](workspace / f"bad.{fmt}", foreign_fields(**overrides))
    code, report = verify_json(path, "-c", workspace / "hegui.yaml")
    assert code == 3 and report["status"] == "tampered"
    assert any(needle in p for p in report["problems"]), report["problems"]
    assert report["label"] is None and report["signature"] is None


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (
            '{"Label": "1", "Label": "2", "ContentProducer": "x", "ProduceID": "y"}',
            "repeats the field 'Label'",
        ),
        ('{"Label": "1", "ContentProducer": "x", "ProduceID": "y", "ReservedCode1": NaN}', "NaN"),
        ('{"AIGC": "{\\"AIGC\\": \\"{}\\"}"}', "more than once"),
        ("Label=1;ContentProducer=x", "not valid JSON"),
    ],
    ids=["duplicate-key", "nan", "nested-twice", "not-json"],
)
def test_garbage_in_the_aigc_property_is_still_tampered(workspace: Path, value: str, needle: str) -> None:
    path = write_foreign_jpeg(workspace / "garbage.jpg", value=value)
    code, report = verify_json(path)
    assert code == 3 and any(needle in p for p in report["problems"]), report["problems"]


def test_bogus_signature_strings(workspace: Path) -> None:
    """Decision: only a code claiming hegui's format (``s1.``/``h1.``) can fail as tampered."""
    cfg = workspace / "hegui.yaml"
    path = write_foreign_png(workspace / "hex.png", foreign_fields(ReservedCode1="deadbeef" * 8))
    code, report = verify_json(path, "-c", cfg)
    assert code == 0 and report["signature"] == "not-hegui"
    assert any("'deadbeefdeadbeef" in n and "…" in n for n in report["notes"])  # long values shortened
    for bogus in ("s1.bogus", "s1.a.b.c", "h1.AAAA"):
        path = write_foreign_png(workspace / "claims.png", foreign_fields(ReservedCode1=bogus))
        code, report = verify_json(path, "-c", cfg)
        assert code == 3, bogus
        assert report["producer_signature"] == "malformed" and report["signature"] == "invalid"
    # A foreign ReservedCode2 gets the same treatment.
    path = write_foreign_png(workspace / "rc2.png", foreign_fields(ReservedCode2=42))
    code, report = verify_json(path, "-c", cfg)
    assert code == 0 and report["propagator_signature"] == "not-hegui"
    assert any(n.startswith("ReservedCode2: '42' (a JSON number)") for n in report["notes"])


def test_require_signature_rejects_a_label_without_hegui_signature(workspace: Path) -> None:
    (workspace / "strict.yaml").write_text("labeling:\n  require_signature: true\n", encoding="utf-8")
    path = write_foreign_jpeg(workspace / "foreign.jpg")
    code, report = verify_json(path, "-c", workspace / "strict.yaml")
    assert code == 3 and report["signature"] == "not-hegui"
    assert "no hegui signature, but labeling.require_signature is on" in report["problems"][0]


def _hegui_labelled_png(workspace: Path) -> tuple[Path, AIGCLabel]:
    cfg = workspace / "hegui.yaml"
    picture(200, 150, seed=11).save(workspace / "gen.png")
    code, out, err = invoke("label", "image", workspace / "gen.png", "-o", workspace / "own.png", "-c", cfg)
    assert code == 0, err
    return workspace / "own.png", AIGCLabel.from_json(out.strip().splitlines()[-1])


def test_hegui_label_rewritten_by_the_other_tool(workspace: Path) -> None:
    """hegui's signature covers the values, not the JSON form: re-serialising keeps it valid."""
    own, label = _hegui_labelled_png(workspace)
    pixels = Image.open(own)
    pixels.load()
    fields = dict(label.as_dict())
    path = write_foreign_png(workspace / "rewritten.png", fields, img=pixels, indent=1)
    code, report = verify_json(path, "-c", workspace / "hegui.yaml")
    assert code == 0 and report["signature"] == "valid" and report["content_changed"] is False
    # the same file with one field altered: the hegui signature fails, exit 3
    path = write_foreign_png(workspace / "altered.png", {**fields, "Label": "3"}, img=pixels)
    code, report = verify_json(path, "-c", workspace / "hegui.yaml")
    assert code == 3 and report["signature"] == "invalid" and report["producer_signature"] == "invalid"
    code, out, _ = invoke("label", "verify", path, "-c", workspace / "hegui.yaml")
    assert code == 3 and "signature: INVALID" in out and "signature does not verify" in out


def test_hegui_label_altered_in_place_is_still_tampered(workspace: Path) -> None:
    own, label = _hegui_labelled_png(workspace)
    altered = AIGCLabel(**{**label.__dict__, "produce_id": "swapped-id"})
    img_mod.write_label(own, workspace / "altered.png", altered.to_json())
    code, report = verify_json(workspace / "altered.png", "-c", workspace / "hegui.yaml")
    assert code == 3 and report["producer_signature"] == "invalid"


def test_propagate_a_foreign_label(workspace: Path) -> None:
    """A platform adds itself as propagator (Art. 6) and keeps the other tool's fields."""
    cfg = workspace / "hegui.yaml"
    src = write_foreign_jpeg(workspace / "foreign.jpg", namespace="http://www.tc260.org.cn/ns/AIGC/1.0")
    code, _, err = invoke("label", "propagate", src, "-o", workspace / "shared.jpg", "-c", cfg)
    assert code == 0, err
    code, report = verify_json(
        workspace / "shared.jpg", "-c", cfg, "--propagator-key", workspace / "platform.pem.pub"
    )
    assert code == 0, report["problems"]
    assert report["label"]["ContentProducer"] == PRODUCER
    assert report["label"]["ReservedCode1"] == str(RESERVED_CODE1)  # kept, now written as a string
    assert report["signature"] == "not-hegui" and report["propagator_signature"] == "valid"
    assert report["label_places"][0]["deviations"] == []  # hegui wrote it back in the standard form
    # the variant-namespace property was replaced, not kept beside the new one: one label per file
    data = (workspace / "shared.jpg").read_bytes()
    assert data.count(b"AIGC>") == 2 and b'ns/AIGC/1.0"' not in data  # one open+close tag pair


def test_same_reader_for_other_containers(workspace: Path) -> None:
    """Documents, audio and video share the parser: a Markdown label in the other tool's shape."""
    body = label_text(foreign_fields())
    (workspace / "a.md").write_text(f"---\nAIGC: '{body}'\n---\n回答。\n", encoding="utf-8")
    code, report = verify_json(workspace / "a.md")
    assert code == 0 and report["signature"] == "not-hegui"
    assert report["label_places"][0] == {
        "place": "metadata",
        "shape": "bare",
        "deviations": [f"ReservedCode1 is a JSON number (read as '{RESERVED_CODE1}')"],
    }
    (workspace / "b.md").write_text(
        "---\nAIGC: '" + label_text(foreign_fields(Label="0")) + "'\n---\n回答。\n", encoding="utf-8"
    )
    code, report = verify_json(workspace / "b.md")
    assert code == 3


# --- the reader itself ------------------------------------------------------------------------------


def test_reader_keeps_number_literals_exactly() -> None:
    reading = read_label_json(
        '{"Label":1,"ContentProducer":"p","ProduceID":123456789012345678901234567890,'
        '"ReservedCode1":1.50e3,"ReservedCode2":-7}'
    )
    assert reading.label.produce_id == "123456789012345678901234567890"  # no float rounding
    assert reading.label.reserved_code1 == "1.50e3" and reading.label.reserved_code2 == "-7"
    assert reading.numbers == {"Label", "ProduceID", "ReservedCode1", "ReservedCode2"}
    assert "no ContentPropagator, PropagateID (read as empty)" in reading.deviations
    reading.label.validate()


def test_reader_reports_shape_and_writes_back_the_standard_form() -> None:
    bare = label_text(foreign_fields(ContentPropagator=None))
    reading = read_label_json(bare)
    assert reading.shape == "bare"
    assert "ContentPropagator is null (read as empty)" in reading.deviations
    assert reading.label.to_json().startswith('{"AIGC":{"Label":"1","ContentProducer":')
    assert read_label_json(json.dumps({"AIGC": bare})).shape == "wrapped-string"
    assert read_label_json(reading.label.to_json()).deviations == ()
    assert AIGCLabel.from_json(bare) == reading.label
    with pytest.raises(LabelFormatError, match="must be a JSON object"):
        read_label_json('{"AIGC": 5}')


def test_xmp_reader_forms() -> None:
    value = label_text(foreign_fields())
    for form in ("element", "attribute", "alt"):
        assert xmp.read(xmp_packet(value, form=form)) == value
    assert xmp.read(xmp_packet(value, namespace="http://example.com/AIGC/")) is None
    merged = xmp.merge(xmp_packet(value, namespace="https://tc260.org.cn/ns/AIGC/1.0"), '{"Label":"2"}')
    assert xmp.read(merged) == '{"Label":"2"}' and b"https://tc260" not in merged
    assert b"CreatorTool" in merged  # other properties kept
