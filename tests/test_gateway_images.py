"""``POST /v1/images/generations`` over real HTTP with the OpenAI client: every image is labelled."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import openai
import pytest
from PIL import Image, ImageChops
from typer.testing import CliRunner

from gateway_support import TEST_KEY, add_test_keys, ledger_for, make_moderator, serve, write_config
from hegui.cli import app as cli_app
from hegui.gateway.app import create_app
from hegui.gateway.demo_upstream import create_demo_app, demo_image
from hegui.labeling.image import (
    content_digest_bytes,
    explicit_label_present,
    layout_explicit_label,
    read_labels,
)
from hegui.labeling.metadata import AIGCLabel
from hegui.labeling.signing import SignatureStatus, load_trusted_public_key, verify_signature, write_keypair
from hegui.policy import load_policy

MODEL = "hegui-demo"  # the demo model behind a real HTTP hop
LOCAL = "demo-local"  # the in-process demo (base_url: demo)
FAILOVER = "img-failover"  # first upstream answers 500, the second works
PROVIDER = "hegui-image-test"
LABEL_TEXT = "AI生成"
CORNER = "top-left"
REFUSAL = load_policy(None).refusal_for("default")


class Env:
    def __init__(self, url: str, cfg: Any, ledger: Any, stats: dict[str, int], folder: Path) -> None:
        self.url = url
        self.cfg = cfg
        self.ledger = ledger
        self.stats = stats
        self.folder = folder
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)
        self.public_key = load_trusted_public_key(cfg)

    def rows(self) -> list[Any]:
        return list(self.ledger.decisions(limit=None, newest_first=False))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder: Path = tmp_path_factory.mktemp("images")
    private, _ = write_keypair(folder / "label-key")
    with ExitStack() as stack:
        demo = create_demo_app()
        up = stack.enter_context(serve(demo))
        broken = stack.enter_context(serve(create_demo_app(fail_status=500)))
        cfg = write_config(folder, {
            "provider": {"name": PROVIDER},
            "labeling": {"signing_key": str(private), "image": {"position": CORNER}},
            "upstreams": [
                {"name": "http-demo", "base_url": up + "/v1", "models": [MODEL]},
                {"name": "local", "base_url": "demo", "models": [LOCAL]},
                {"name": "down", "base_url": broken + "/v1", "models": [FAILOVER]},
                {"name": "backup", "base_url": up + "/v1", "models": [FAILOVER]},
            ],
        })
        ledger = stack.enter_context(ledger_for("sqlite", folder, None))
        add_test_keys(ledger)
        url = stack.enter_context(serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)))
        yield Env(url, cfg, ledger, demo.state.stats, folder)


def decode(b64: str | None) -> bytes:
    assert b64, "the gateway must answer b64_json"
    return base64.b64decode(b64)


def check_implicit(env: Env, data: bytes, announced: dict[str, str]) -> AIGCLabel:
    """The image's XMP TC260:AIGC label: ours, signed over its pixels, the one the response names."""
    found = read_labels(data)
    assert "xmp" in found
    label = AIGCLabel.from_json(json.dumps({"AIGC": json.loads(found["xmp"])}))
    assert label.label == "1" and label.content_producer == PROVIDER
    assert label.as_dict() == announced
    digest = content_digest_bytes(data)
    assert verify_signature(label, digest, env.public_key) is SignatureStatus.VALID
    assert verify_signature(label, bytes(32), env.public_key) is not SignatureStatus.VALID
    return label


def test_b64_image_carries_both_labels(env: Env) -> None:
    prompt = "一只在月光下的猫"
    raw = env.client.images.with_raw_response.generate(
        model=MODEL, prompt=prompt, response_format="b64_json", size="256x256")
    resp = raw.parse()
    assert len(resp.data) == 1 and resp.data[0].url is None
    data = decode(resp.data[0].b64_json)
    assert data.startswith(b"\x89PNG")
    ext = resp.model_extra["hegui"]
    assert ext["upstream"] == "http-demo" and ext["action"] == "allow"
    label = check_implicit(env, data, ext["labels"][0])
    assert json.loads(raw.headers["AIGC"]) == {"AIGC": label.as_dict()}

    # explicit: the box in the configured corner, glyphs ≥ 5% of the side, and nothing else touched
    img = Image.open(io.BytesIO(data))
    assert img.size == (256, 256)
    assert explicit_label_present(img, LABEL_TEXT, position=CORNER)
    assert not explicit_label_present(img, LABEL_TEXT, position="bottom-right")
    layout = layout_explicit_label(img.size, LABEL_TEXT, position=CORNER)
    assert layout.glyph_height >= 0.05 * 256
    original = Image.open(io.BytesIO(demo_image(prompt, (256, 256)))).convert("RGB")
    changed = ImageChops.difference(img.convert("RGB"), original).getbbox()
    assert changed is not None
    left, top, right, bottom = layout.box
    assert changed[0] >= left and changed[1] >= top and changed[2] <= right and changed[3] <= bottom
    assert right < 128 and bottom < 128  # top-left

    # the input decision is on the ledger under the request id
    rows = [r for r in env.rows() if r.request_id == raw.headers["x-request-id"]]
    assert [(r.direction, r.action, r.decision_id) for r in rows] == [
        ("input", "allow", raw.headers["x-hegui-decision"])]


def test_saved_image_verifies_with_cli_and_exiftool(env: Env) -> None:
    resp = env.client.images.generate(model=MODEL, prompt="山水画", response_format="b64_json", size="256x256")
    path = env.folder / "saved.png"
    path.write_bytes(decode(resp.data[0].b64_json))
    result = CliRunner().invoke(cli_app, ["label", "verify", str(path), "-c", str(env.cfg.source), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "valid" and report["producer_signature"] == "valid"
    assert report["explicit_label"] is True and report["content_changed"] is False
    if shutil.which("exiftool"):
        out = subprocess.run(["exiftool", "-j", "-XMP-TC260:all", str(path)], capture_output=True, text=True,
                             check=True, timeout=30)
        tags = json.loads(out.stdout)[0]
        assert json.loads(tags["Aigc"]) == resp.model_extra["hegui"]["labels"][0]


def test_url_format_is_fetched_from_the_upstream_and_returned_labelled(env: Env) -> None:
    before = env.stats["image_fetches"]
    resp = env.client.images.generate(model=MODEL, prompt="url 格式", response_format="url", size="128x96")
    assert env.stats["image_fetches"] == before + 1
    assert resp.data[0].url is None
    data = decode(resp.data[0].b64_json)
    check_implicit(env, data, resp.model_extra["hegui"]["labels"][0])
    img = Image.open(io.BytesIO(data))
    assert img.size == (128, 96) and explicit_label_present(img, LABEL_TEXT, position=CORNER)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_other_formats_stay_in_their_format(env: Env, fmt: str) -> None:
    resp = env.client.images.generate(model=MODEL, prompt="格式", output_format=fmt, size="256x256")
    data = decode(resp.data[0].b64_json)
    assert Image.open(io.BytesIO(data)).format == fmt.upper()
    check_implicit(env, data, resp.model_extra["hegui"]["labels"][0])


def test_several_images_each_get_their_own_label(env: Env) -> None:
    raw = env.client.images.with_raw_response.generate(model=MODEL, prompt="三张图", n=3, size="64x64")
    resp = raw.parse()
    labels = resp.model_extra["hegui"]["labels"]
    assert len(resp.data) == len(labels) == 3
    ids = {check_implicit(env, decode(item.b64_json), label).produce_id for item, label in zip(resp.data, labels, strict=True)}
    assert len(ids) == 3
    assert "AIGC" not in raw.headers  # one header cannot name three images


def test_in_process_demo_b64_and_url(env: Env) -> None:
    for fmt in ("b64_json", "url"):
        resp = env.client.images.generate(model=LOCAL, prompt="本地", response_format=fmt, size="256x256")
        assert resp.model_extra["hegui"]["upstream"] == "local"
        check_implicit(env, decode(resp.data[0].b64_json), resp.model_extra["hegui"]["labels"][0])


def test_failover_to_the_next_upstream(env: Env) -> None:
    resp = env.client.images.generate(model=FAILOVER, prompt="备份", size="64x64")
    assert resp.model_extra["hegui"]["upstream"] == "backup"
    check_implicit(env, decode(resp.data[0].b64_json), resp.model_extra["hegui"]["labels"][0])


def test_refused_prompt_is_400_with_the_refusal_and_a_record(env: Env) -> None:
    before = env.stats["images"]
    with pytest.raises(openai.BadRequestError) as info:
        env.client.images.generate(model=MODEL, prompt="教我网上赌博", size="256x256")
    resp = info.value.response
    body = resp.json()
    assert body["error"] == {"message": REFUSAL, "type": "content_filter", "code": "content_filter",
                             "param": "prompt"}
    assert body["hegui"]["action"] == "refuse" and body["hegui"]["risks"] == ["A1h"]
    decision = resp.headers["x-hegui-decision"]
    assert body["hegui"]["decision"] == decision
    assert "data" not in body
    assert env.stats["images"] == before  # the model was never asked
    row = next(r for r in env.rows() if r.decision_id == decision)
    assert (row.direction, row.action, row.risks, row.model) == ("input", "refuse", ["A1h"], MODEL)


@pytest.mark.parametrize("prompt", ["/broken-image 坏图", "/garbled-image 坏图"])
def test_broken_image_from_the_upstream_is_502(env: Env, prompt: str) -> None:
    seen = {r.decision_id for r in env.rows()}
    with pytest.raises(openai.APIStatusError) as info:
        env.client.images.generate(model=MODEL, prompt=prompt, size="256x256")
    assert info.value.status_code == 502
    body = info.value.response.json()
    assert "broken image" in body["error"]["message"] and "data" not in body
    # the input decision is on record all the same
    new = [r for r in env.rows() if r.decision_id not in seen]
    assert [(r.direction, r.action, r.excerpt) for r in new] == [("input", "allow", prompt)]


def test_url_on_another_host_fails_closed(env: Env) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        env.client.images.generate(model=MODEL, prompt="/foreign-url 别处", response_format="url", size="64x64")
    assert info.value.status_code == 502
    message = info.value.response.json()["error"]["message"]
    assert "another host (images.invalid)" in message and "not passed on" in message


def test_bad_requests(env: Env) -> None:
    for kwargs, param in [({"prompt": ""}, "prompt"), ({"prompt": "x", "n": 11}, "n"),
                          ({"prompt": "x", "stream": True}, "stream")]:
        with pytest.raises(openai.BadRequestError) as info:
            env.client.images.generate(model=MODEL, size="64x64", **kwargs)
        assert info.value.response.json()["error"]["param"] == param
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=env.url + "/v1", api_key="sk-wrong", max_retries=0).images.generate(
            model=MODEL, prompt="x")
    with pytest.raises(openai.NotFoundError):
        env.client.images.generate(model="no-such-model", prompt="x")


def test_image_too_small_for_the_label_is_502_label_failed(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {
        "labeling": {"image": {"text": "本图片由人工智能生成合成", "height_ratio": 0.5}},
        "upstreams": [{"name": "local", "base_url": "demo", "models": [LOCAL]}],
    })
    with ledger_for("sqlite", tmp_path, None) as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, moderator=make_moderator({}), ledger=ledger)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)
            with pytest.raises(openai.APIStatusError) as info:
                client.images.generate(model=LOCAL, prompt="小图", size="64x64")
    assert info.value.status_code == 502
    error = info.value.response.json()["error"]
    assert error["code"] == "label_failed" and "does not fit a 64×64 image" in error["message"]
