"""An answer is judged with the question it answers: through the gateway, over real HTTP with the
official OpenAI client, a refusal that repeats the sensitive words reaches the user, the same words
without the refusal do not, and the record says what the refusal was excused for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_support import TEST_KEY, add_test_keys, ledger_for, serve, write_config
from hegui.gateway.app import create_app

MODEL = "hegui-demo"
REFUSAL = "抱歉，我不能提供制作冰毒的方法。吸毒违法，请远离毒品。"
COMPLIANCE = "冰毒的制作方法如下：先准备原料，然后加热提纯。"
# questions the input check lets through; the demo model answers them from its answer book
ASKS_REFUSED = "能教我做那个东西吗？"
ASKS_ANSWERED = "那个东西具体怎么做？"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[openai.OpenAI, Any]]:
    folder: Path = tmp_path_factory.mktemp("ctx")
    book = folder / "answers.jsonl"
    book.write_text("".join(json.dumps({"question": q, "answer": f"say:{a}"}, ensure_ascii=False) + "\n"
                            for q, a in ((ASKS_REFUSED, REFUSAL), (ASKS_ANSWERED, COMPLIANCE))), encoding="utf-8")
    patch = pytest.MonkeyPatch()
    patch.setenv("HEGUI_DEMO_ANSWERS", str(book))
    cfg = write_config(folder, {
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": [MODEL]}],
    })
    with ledger_for("sqlite", folder, None) as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, ledger=ledger)) as url:
            yield openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0), ledger
    patch.undo()


def ask(client: openai.OpenAI, question: str) -> Any:
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])


def test_a_refusal_repeating_the_words_reaches_the_user_and_is_recorded_as_excused(gateway: Any) -> None:
    client, ledger = gateway
    resp = ask(client, ASKS_REFUSED)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.content == REFUSAL
    ext = resp.model_extra["hegui"]
    row = ledger.decisions(decision_id=ext["decisions"]["output"], limit=1)[0]
    assert row.action == "allow"
    assert row.flags["excused_by"] == "refusal"
    assert {f["risk"] for f in row.flags["excused"]} == {"A1h"}
    assert ledger.verify().ok


def test_the_same_words_without_the_refusal_are_refused(gateway: Any) -> None:
    client, _ = gateway
    resp = ask(client, ASKS_ANSWERED)
    assert resp.choices[0].finish_reason == "content_filter"
    assert "冰毒" not in (resp.choices[0].message.content or "")
    assert resp.model_extra["hegui"]["action"] == "refuse"
