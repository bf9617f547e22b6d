"""Shared helpers of the gateway tests: real uvicorn servers on loopback, configs, ledgers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from hegui.config import HeguiConfig, load_config

TEST_KEY = "sk-hegui-test-key"
ADMIN_KEY = "sk-hegui-test-admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn in a background thread; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", loop="asyncio",
                            http="h11", ws="none", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def write_config(folder: Path, data: dict[str, Any]) -> HeguiConfig:
    """``data`` as the folder's hegui.yaml, loaded. A config without an ``accounts`` section gets the
    enforcement ladder off: these tests refuse many inputs through one key, which would walk its
    account down the ladder into a suspension; the ladder's own tests configure ``accounts``."""
    if "accounts" not in data:
        data = {**data, "accounts": {"ladder": {"enabled": False}}}
    path = folder / "hegui.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(path, environ={})


@contextmanager
def ledger_for(backend: str, folder: Path, postgres_url: str | None) -> Iterator[Any]:
    """A fresh ledger on SQLite (a file in ``folder``) or PostgreSQL (a schema of its own, dropped after)."""
    import uuid

    import sqlalchemy as sa

    from hegui.ledger.store import Ledger

    if backend == "sqlite":
        ledger = Ledger.open(f"sqlite:///{folder / 'ledger.db'}")
        try:
            yield ledger
        finally:
            ledger.close()
        return
    assert postgres_url is not None
    schema = "hegui_gw_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    ledger = Ledger.open(postgres_url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield ledger
    finally:
        ledger.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def add_test_keys(ledger: Any) -> None:
    ledger.ensure_account("acc_test", name="test account")
    ledger.ensure_api_key("acc_test", TEST_KEY, name="tests")


def sse_events(raw: str) -> list[Any]:
    """Parse an SSE body into JSON objects (and the string ``[DONE]``)."""
    import json

    out: list[Any] = []
    for line in raw.splitlines():
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def word_detector(words: dict[str, str]) -> Any:
    """A small exact-match detector for tests of the gateway's mechanics (refuse, mask, cut)."""
    from dataclasses import dataclass, field
    from typing import ClassVar

    from hegui.detectors.base import Detector, Finding

    @dataclass
    class WordDetector(Detector):
        name: ClassVar[str] = "testwords"
        table: dict[str, str] = field(default_factory=dict)

        def detect(self, text: Any) -> list[Finding]:
            found = []
            for word, risk in self.table.items():
                i = text.text.find(word)
                while i >= 0:
                    start, end = text.to_original(i, i + len(word))
                    found.append(Finding(risk, start, end, 1.0, self.name, f"testwords:{len(word)}"))
                    i = text.text.find(word, i + 1)
            return found

        def holdback(self) -> int:
            return max((len(w) for w in self.table), default=0)

    return WordDetector(table=dict(words))


def make_moderator(words: dict[str, str]) -> Any:
    from hegui.moderation import Moderator
    from hegui.policy import load_policy

    return Moderator([word_detector(words)], load_policy(None))


def say64(text: str) -> str:
    """A prompt that makes the demo model answer ``text`` without ``text`` appearing in the input."""
    import base64

    return "/say64 " + base64.b64encode(text.encode("utf-8")).decode("ascii")
