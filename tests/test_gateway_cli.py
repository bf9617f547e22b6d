"""`hegui serve` and `hegui demo` as a user runs them: real processes, real ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai

from gateway_support import free_port
from hegui.commands.serve import DEMO_KEY
from hegui.ledger.store import Ledger

HEGUI = [sys.executable, "-c", "from hegui.cli import main; main()"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEGUI, *args], capture_output=True, text=True, timeout=timeout)


@contextmanager
def background(*args: str, url: str, output: list[str], env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``hegui ARGS`` until the block ends; ``output`` then holds its stdout and stderr."""
    proc = subprocess.Popen([*HEGUI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("server did not start")
            time.sleep(0.1)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            output[:] = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output[:] = proc.communicate(timeout=5)


def test_serve_with_a_bad_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text("gateway:\n  prot: 80\n", encoding="utf-8")
    res = run("serve", "--config", str(cfg))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "hegui.yaml:2" in res.stderr and "prot" in res.stderr


def test_serve_with_an_unknown_upstream_url_scheme_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text("upstreams:\n  - name: a\n    base_url: ftp://x\n", encoding="utf-8")
    res = run("serve", "--config", str(cfg))
    assert res.returncode == 2 and "base_url" in res.stderr and "Traceback" not in res.stderr


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run("serve", "--port", str(port))
    assert res.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in res.stderr


def test_demo_serves_the_documented_key(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    with background("demo", "--port", str(port), "--dir", str(tmp_path), "--token-delay-ms", "0", url=url,
                    output=output):
        client = openai.OpenAI(base_url=url + "/v1", api_key=DEMO_KEY, max_retries=0)
        resp = client.chat.completions.create(model="hegui-demo", messages=[{"role": "user", "content": "/say 演示"}])
        assert resp.choices[0].message.content == "【AI生成】\n演示"  # the default explicit label
        chunks = list(client.chat.completions.create(
            model="hegui-demo", messages=[{"role": "user", "content": "/say 流式演示"}], stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "【AI生成】\n流式演示"
    out = output[0]
    assert f"{url}/v1" in out and DEMO_KEY in out and "curl" in out and "OpenAI(" in out
    with Ledger.open(f"sqlite:///{tmp_path / 'demo.db'}", create=False) as ledger:
        assert ledger.count_decisions() >= 4


def test_serve_with_two_workers_adds_up_metrics(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text(f"gateway:\n  admin_key: sk-admin-cli\nledger:\n  url: sqlite:///{tmp_path / 'l.db'}\n",
                   encoding="utf-8")
    env = {"PROMETHEUS_MULTIPROC_DIR": ""}
    with background("serve", "--config", str(cfg), "--port", str(port), "--workers", "2", "--log-level", "warning",
                    url=url, env=env, output=[]):
        headers = {"authorization": "Bearer sk-admin-cli"}
        with httpx.Client() as client:
            for _ in range(12):
                assert client.get(url + "/v1/models", headers=headers).status_code == 200
            # fresh connections spread over both workers
        for _ in range(12):
            assert httpx.get(url + "/v1/models", headers=headers).status_code == 200
        body = httpx.get(url + "/metrics").text
    m = re.search(r'hegui_requests_total\{route="/v1/models",status="200"\} (\S+)', body)
    assert m and float(m.group(1)) == 24


def test_serve_refuses_to_start_without_salts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HEGUI_PII_SALT", "HEGUI_IDENTIFIER_SALT")}
    port = free_port()
    res = subprocess.run([*HEGUI, "serve", "--port", str(port)], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "$HEGUI_PII_SALT and $HEGUI_IDENTIFIER_SALT not set" in lines[0]
    # one salt present: only the other is named
    res = subprocess.run([*HEGUI, "serve", "--port", str(port)], capture_output=True, text=True, timeout=60,
                         env={**env, "HEGUI_PII_SALT": "s"})
    assert res.returncode == 2 and "$HEGUI_IDENTIFIER_SALT not set" in res.stderr
    assert "HEGUI_PII_SALT" not in res.stderr


def test_serve_starts_without_salts_when_the_config_allows_it(tmp_path: Path) -> None:
    env = {"HEGUI_PII_SALT": "", "HEGUI_IDENTIFIER_SALT": ""}  # empty counts as unset
    cfg = tmp_path / "hegui.yaml"
    cfg.write_text(f"gateway:\n  allow_development_salts: true\nledger:\n  url: sqlite:///{tmp_path}/l.db\n",
                   encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    with background("serve", "--config", str(cfg), "--port", str(port), url=url, output=output, env=env):
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
