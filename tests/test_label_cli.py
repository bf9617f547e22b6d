"""``hegui label …`` end to end: label, verify (exit codes 0/1/2/3), propagate, keygen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hegui.cli import app
from hegui.config import HeguiConfig
from hegui.labeling import image as img_mod
from hegui.labeling.formats import FORMATS, handler_for, kind_of
from hegui.labeling.metadata import AIGCLabel
from hegui.labeling.verify import verify_file

USCC = "91110000600037341L"
runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    code, out, _ = invoke("label", "keygen", "-o", tmp_path / "producer.pem")
    assert code == 0 and "producer.pem.pub" in out
    (tmp_path / "hegui.yaml").write_text(
        "provider:\n"
        "  name: acme\n"
        f"  uscc: {USCC}\n"
        "  service_code: M001\n"
        "labeling:\n"
        "  signing_key: producer.pem\n",
        encoding="utf-8",
    )
    arr = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "gen.png")
    Image.fromarray(arr).save(tmp_path / "gen.jpg")
    (tmp_path / "answer.md").write_text("# 答案\n\n内容。\n", encoding="utf-8")
    return tmp_path


def test_label_image_then_verify_valid(workspace: Path) -> None:
    cfg = workspace / "hegui.yaml"
    code, out, err = invoke("label", "image", workspace / "gen.png", "-o", workspace / "out.png", "-c", cfg)
    assert code == 0, err
    assert "(signed)" in out
    printed = AIGCLabel.from_json(out.strip().splitlines()[-1])
    assert printed.content_producer == "0011" + USCC + "1M001"
    code, out, _ = invoke("label", "verify", workspace / "out.png", "-c", cfg, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["status"] == "valid" and report["producer_signature"] == "valid"
    assert report["content_changed"] is False and report["explicit_label"] is True
    assert report["label"]["ProduceID"] == printed.produce_id
    code, out, _ = invoke("label", "verify", workspace / "out.png", "-c", cfg)
    assert code == 0 and "VALID" in out and "explicit label: present" in out


def test_verify_unlabelled_exit_1(workspace: Path) -> None:
    code, out, _ = invoke("label", "verify", workspace / "gen.png", "-c", workspace / "hegui.yaml")
    assert code == 1 and "UNLABELLED" in out


def test_verify_detects_copied_label_and_edited_fields(workspace: Path) -> None:
    cfg = workspace / "hegui.yaml"
    invoke("label", "image", workspace / "gen.jpg", "-o", workspace / "out.jpg", "-c", cfg)
    raw = img_mod.read_label(workspace / "out.jpg")
    assert raw is not None
    # copied onto other content
    other = np.zeros((240, 320, 3), dtype=np.uint8)
    Image.fromarray(other).save(workspace / "other.jpg")
    img_mod.write_label(workspace / "other.jpg", workspace / "copied.jpg", raw)
    code, out, _ = invoke("label", "verify", workspace / "copied.jpg", "-c", cfg, "--json")
    report = json.loads(out)
    assert (
        code == 3 and report["producer_signature"] == "content-changed" and report["content_changed"] is True
    )
    # a field edited in place (claims another producer)
    lab = AIGCLabel.from_json(raw)
    forged = AIGCLabel(**{**lab.__dict__, "content_producer": "someone-else"})
    img_mod.write_label(workspace / "out.jpg", workspace / "forged.jpg", forged.to_json())
    code, out, _ = invoke("label", "verify", workspace / "forged.jpg", "-c", cfg)
    assert code == 3 and "signature does not verify" in out
    # pixels edited after labelling
    edited = Image.open(workspace / "out.jpg")
    edited.load()
    edited.paste((255, 0, 0), (0, 0, 50, 50))
    edited.save(workspace / "edited.jpg", xmp=edited.info["xmp"])
    code, out, _ = invoke("label", "verify", workspace / "edited.jpg", "-c", cfg)
    assert code == 3 and "content changed since signing" in out


def test_verify_with_wrong_public_key_and_without_key(workspace: Path) -> None:
    cfg = workspace / "hegui.yaml"
    invoke("label", "image", workspace / "gen.png", "-o", workspace / "out.png", "-c", cfg)
    invoke("label", "keygen", "-o", workspace / "other.pem")
    code, out, _ = invoke(
        "label", "verify", workspace / "out.png", "--public-key", workspace / "other.pem.pub", "--json"
    )
    assert code == 3 and json.loads(out)["producer_signature"] == "unknown-key"
    code, out, _ = invoke("label", "verify", workspace / "out.png", "--json")  # no key at all
    report = json.loads(out)
    assert code == 0 and report["producer_signature"] == "unverified"
    assert any("not checked" in n for n in report["notes"])
    code, _, _ = invoke(
        "label", "verify", workspace / "out.png", "--public-key", workspace / "producer.pem.pub"
    )
    assert code == 0


def test_malformed_label_is_tampered(workspace: Path) -> None:
    bad = '{"AIGC":{"Label":"9","ContentProducer":"a","ProduceID":"b"}}'
    (workspace / "m.md").write_text("---\nAIGC: '" + bad + "'\n---\nhi\n")
    code, out, _ = invoke("label", "verify", workspace / "m.md")
    assert code == 3 and "'Label' must be" in out


def test_label_text_and_verify(workspace: Path) -> None:
    cfg = workspace / "hegui.yaml"
    code, _, err = invoke("label", "text", workspace / "answer.md", "-o", workspace / "out.md", "-c", cfg)
    assert code == 0, err
    assert (workspace / "out.md").read_text(encoding="utf-8").count("【AI生成】") == 1
    code, out, _ = invoke("label", "verify", workspace / "out.md", "-c", cfg, "--json")
    report = json.loads(out)
    assert code == 0 and report["explicit_label"] is True and report["kind"] == "text"
    text = (workspace / "out.md").read_text(encoding="utf-8").replace("内容。", "改过的内容。")
    (workspace / "out.md").write_text(text, encoding="utf-8")
    code, _, _ = invoke("label", "verify", workspace / "out.md", "-c", cfg)
    assert code == 3


def test_no_explicit_and_label_value(workspace: Path) -> None:
    cfg = workspace / "hegui.yaml"
    code, out, _ = invoke(
        "label",
        "text",
        workspace / "answer.md",
        "-o",
        workspace / "o.md",
        "-c",
        cfg,
        "--no-explicit",
        "--label",
        "2",
    )
    assert code == 0
    assert "【AI生成】" not in (workspace / "o.md").read_text(encoding="utf-8")
    assert AIGCLabel.from_json(out.strip().splitlines()[-1]).label == "2"
    code, _, err = invoke("label", "text", workspace / "answer.md", "-o", workspace / "o.md", "--label", "7")
    assert code == 2 and "7" in err


def test_propagate_keeps_producer_and_adds_signed_propagator(workspace: Path) -> None:
    cfg = workspace / "hegui.yaml"
    invoke("label", "image", workspace / "gen.jpg", "-o", workspace / "out.jpg", "-c", cfg)
    before = AIGCLabel.from_json(img_mod.read_label(workspace / "out.jpg") or "")
    invoke("label", "keygen", "-o", workspace / "platform.pem")
    code, _, err = invoke(
        "label", "propagate", workspace / "out.jpg", "-o", workspace / "shared.jpg",
        "--propagator", "PlatformX", "--key", workspace / "platform.pem", "-c", cfg,
    )  # fmt: skip
    assert code == 0, err
    after = AIGCLabel.from_json(img_mod.read_label(workspace / "shared.jpg") or "")
    assert (after.content_producer, after.produce_id, after.reserved_code1) == (
        before.content_producer, before.produce_id, before.reserved_code1,
    )  # fmt: skip
    assert after.content_propagator == "PlatformX" and after.propagate_id != before.produce_id
    assert img_mod.content_digest(workspace / "shared.jpg") == img_mod.content_digest(workspace / "out.jpg")
    code, out, _ = invoke(
        "label",
        "verify",
        workspace / "shared.jpg",
        "-c",
        cfg,
        "--propagator-key",
        workspace / "platform.pem.pub",
        "--json",
    )
    report = json.loads(out)
    assert code == 0 and report["producer_signature"] == "valid" and report["propagator_signature"] == "valid"
    # an unlabelled file needs a declaration
    code, _, err = invoke("label", "propagate", workspace / "gen.png", "-o", workspace / "p.png", "-c", cfg)
    assert code == 2 and "--label 2" in err and not (workspace / "p.png").exists()
    code, out, _ = invoke(
        "label", "propagate", workspace / "gen.png", "-o", workspace / "p.png", "-c", cfg, "--label", "3"
    )
    lab = AIGCLabel.from_json(out.strip().splitlines()[-1])
    assert code == 0 and lab.label == "3" and lab.content_producer == "unknown"
    assert lab.content_propagator == "0011" + USCC + "2M001"  # provider code, propagation extension


def test_usage_errors_exit_2_without_output(workspace: Path) -> None:
    cfg = workspace / "hegui.yaml"
    (workspace / "broken.png").write_bytes((workspace / "gen.png").read_bytes()[:500])
    code, _, err = invoke("label", "image", workspace / "broken.png", "-o", workspace / "o.png", "-c", cfg)
    assert code == 2 and err.startswith("error: ") and "truncated PNG" in err and err.count("\n") == 1
    assert not (workspace / "o.png").exists()
    assert not [p for p in workspace.iterdir() if p.name.startswith(".o.png")]
    code, _, err = invoke("label", "image", workspace / "answer.md", "-o", workspace / "o.png")
    assert code == 2 and "answer.md: not an image file hegui labels (.jpg .jpeg .png .webp)" in err
    code, _, err = invoke("label", "image", workspace / "missing.png", "-o", workspace / "o.png")
    assert code == 2 and "no such file" in err
    code, _, err = invoke("label", "verify", workspace / "x.pdf")
    assert code == 2
    code, _, err = invoke("label", "verify", workspace / "broken.png")
    assert code == 2 and "truncated PNG" in err
    (workspace / "bad.yaml").write_text("provider:\n  uscc: 91110000600037341X\n")
    code, _, err = invoke(
        "label", "image", workspace / "gen.png", "-o", workspace / "o.png", "-c", workspace / "bad.yaml"
    )
    assert code == 2 and "provider.uscc" in err


def test_keygen_refuses_to_overwrite(workspace: Path) -> None:
    code, _, err = invoke("label", "keygen", "-o", workspace / "producer.pem")
    assert code == 2 and "already exists" in err
    code, _, _ = invoke("label", "keygen", "-o", workspace / "producer.pem", "--force")
    assert code == 0


def test_require_signature(workspace: Path) -> None:
    (workspace / "strict.yaml").write_text("labeling:\n  require_signature: true\n")
    invoke("label", "text", workspace / "answer.md", "-o", workspace / "o.md")  # no key: hash only
    code, out, _ = invoke("label", "verify", workspace / "o.md", "-c", workspace / "strict.yaml")
    assert code == 3 and "require_signature" in out
    code, _, _ = invoke("label", "verify", workspace / "o.md")
    assert code == 0


def test_format_registry_covers_every_kind() -> None:
    assert {kind for kind, _ in FORMATS.values()} == {"image", "text", "audio", "video"}
    for suffix in (".wav", ".mp3", ".flac", ".ogg"):
        assert FORMATS[suffix] == ("audio", "hegui.labeling.audio")
    for suffix in (".mp4", ".mov"):
        assert FORMATS[suffix] == ("video", "hegui.labeling.video")
    assert kind_of(Path("a.JPG")) == "image"
    assert handler_for(Path("a.png")) is img_mod


def test_verify_file_api(workspace: Path) -> None:
    shutil.copy(workspace / "gen.png", workspace / "plain.png")
    report = verify_file(workspace / "plain.png", HeguiConfig())
    assert report.exit_code == 1 and report.label is None and report.explicit is False


def test_foreign_signature_with_own_key_only(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A platform verifying another provider's file: its own key cannot judge that signature."""
    other = tmp_path_factory.mktemp("other-provider")
    invoke("label", "keygen", "-o", other / "k.pem")
    (other / "hegui.yaml").write_text("provider:\n  name: other-co\nlabeling:\n  signing_key: k.pem\n")
    invoke(
        "label", "image", workspace / "gen.png", "-o", workspace / "foreign.png", "-c", other / "hegui.yaml"
    )
    cfg = workspace / "hegui.yaml"
    code, out, _ = invoke("label", "verify", workspace / "foreign.png", "-c", cfg, "--json")
    report = json.loads(out)
    assert code == 0 and report["producer_signature"] == "unverified"
    assert any("signed by another key (producer other-co)" in n for n in report["notes"])
    # ...but a label claiming to be ours, signed with another key, is a forgery
    raw = img_mod.read_label(workspace / "foreign.png") or ""
    ours = AIGCLabel.from_json(
        invoke("label", "image", workspace / "gen.png", "-o", workspace / "own.png", "-c", cfg)[
            1
        ].splitlines()[-1]
    )
    lab = AIGCLabel.from_json(raw)
    from hegui.labeling.signing import load_private_key, sign

    forged = sign(
        AIGCLabel(**{**lab.__dict__, "content_producer": ours.content_producer, "reserved_code1": ""}),
        img_mod.content_digest(workspace / "foreign.png"),
        load_private_key(other / "k.pem"),
    )
    img_mod.write_label(workspace / "foreign.png", workspace / "forged.png", forged.to_json())
    code, out, _ = invoke("label", "verify", workspace / "forged.png", "-c", cfg, "--json")
    assert code == 3 and json.loads(out)["producer_signature"] == "unknown-key"
    # with the other provider's public key given, its own label verifies
    code, out, _ = invoke(
        "label", "verify", workspace / "foreign.png", "--public-key", other / "k.pem.pub", "--json"
    )
    assert code == 0 and json.loads(out)["producer_signature"] == "valid"
