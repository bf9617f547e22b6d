"""Art. 14 rectification: a word added to a lexicon file takes effect after POST /admin/reload."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai

from gateway_support import ADMIN_KEY, TEST_KEY, add_test_keys, ledger_for, serve, write_config
from hegui.gateway.app import create_app


def test_admin_reload_applies_a_new_lexicon_word(tmp_path: Path) -> None:
    words = tmp_path / "words.tsv"
    words.write_text("冰毒\tA1h\n", encoding="utf-8")
    cfg = write_config(tmp_path, {
        "lexicon": {"builtin": False, "files": [{"path": "words.tsv"}]},
        "gateway": {"admin_key": ADMIN_KEY},
        "labeling": {"explicit": False},
    })
    with ledger_for("sqlite", tmp_path, None) as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, ledger=ledger)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, max_retries=0)

            def ask(text: str) -> str | None:
                resp = client.chat.completions.create(model="hegui-demo", messages=[{"role": "user", "content": text}])
                return resp.choices[0].finish_reason

            assert ask("/say 新出现的黑话叫做蓝精灵") == "stop"
            words.write_text("冰毒\tA1h\n蓝精灵\tA1h\n", encoding="utf-8")
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}
            r = httpx.post(url + "/admin/reload", headers=admin)
            assert r.status_code == 200 and r.json()["status"] == "reloaded"
            assert ask("/say 新出现的黑话叫做蓝精灵") == "content_filter"

            words.write_text("冰毒\tNOT-A-RISK\n", encoding="utf-8")
            r = httpx.post(url + "/admin/reload", headers=admin)
            assert r.status_code == 400 and r.json()["error"]["code"] == "reload_failed"
            assert "words.tsv" in r.json()["error"]["message"]
            assert ask("/say 新出现的黑话叫做蓝精灵") == "content_filter"  # the old lexicon stays active
