"""GB 45438 labels on answers: the explicit label in the text, the implicit label signed over it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_support import TEST_KEY, add_test_keys, ledger_for, make_moderator, say64, serve, write_config
from hegui.gateway.app import create_app
from hegui.labeling.metadata import AIGCLabel
from hegui.labeling.signing import SignatureStatus, load_trusted_public_key, verify_signature, write_keypair
from hegui.labeling.text import text_digest

PREFIX, SUFFIX = "【AI生成】", "（本内容由人工智能生成）"


class Env:
    def __init__(self, url: str, cfg: Any) -> None:
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)
        self.public_key = load_trusted_public_key(cfg)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder: Path = tmp_path_factory.mktemp("labels")
    private, _ = write_keypair(folder / "label-key")
    cfg = write_config(folder, {
        "provider": {"name": "hegui-test-provider"},
        "labeling": {"signing_key": str(private), "text": {"position": "both"}},
    })
    with ledger_for("sqlite", folder, None) as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h", "13800138000": "PI"}),
                              ledger=ledger)) as url:
            yield Env(url, cfg)


def check(env: Env, label: dict[str, str], content: str) -> None:
    parsed = AIGCLabel.from_json(json.dumps({"AIGC": label}))
    assert parsed.label == "1" and parsed.content_producer == "hegui-test-provider"
    assert verify_signature(parsed, text_digest(content), env.public_key) is SignatureStatus.VALID
    assert verify_signature(parsed, text_digest(content + "改"), env.public_key) is not SignatureStatus.VALID


def test_non_streamed_answer_is_labelled(env: Env) -> None:
    raw = env.client.chat.completions.with_raw_response.create(
        model="hegui-demo", messages=[{"role": "user", "content": "/say 生成的回答"}])
    resp = raw.parse()
    content = resp.choices[0].message.content
    assert content == f"{PREFIX}\n生成的回答\n{SUFFIX}"
    label = resp.model_extra["hegui"]["label"]
    check(env, label, content)
    assert json.loads(raw.headers["AIGC"]) == {"AIGC": label}


def test_streamed_answer_is_labelled_over_what_was_sent(env: Env) -> None:
    chunks = list(env.client.chat.completions.create(
        model="hegui-demo", messages=[{"role": "user", "content": say64("请拨打13800138000咨询")}], stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content.startswith(PREFIX + "\n请拨打") and content.endswith("咨询\n" + SUFFIX)
    assert "13800138000" not in content
    check(env, chunks[-1].model_extra["hegui"]["label"], content)


def test_refusals_carry_no_label(env: Env) -> None:
    resp = env.client.chat.completions.create(model="hegui-demo", messages=[{"role": "user", "content": "赌博"}])
    assert PREFIX not in (resp.choices[0].message.content or "")
    assert "label" not in resp.model_extra["hegui"]
