"""Faults, each provoked for real: the ledger's database stops, fills up or is locked; the upstream
sends garbage, endless or silent streams; the gateway is killed mid-stream; a client stops reading.

PostgreSQL faults use a private throwaway cluster (``initdb``/``pg_ctl`` from
``/usr/lib/postgresql/*/bin``) that the test stops with ``pg_ctl stop -m immediate`` and starts
again; the machine's shared PostgreSQL is never touched.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from gateway_support import TEST_KEY, add_test_keys, free_port, make_moderator, say64, serve, write_config
from hegui.cli import app as cli_app
from hegui.gateway import streaming, upstream
from hegui.gateway.app import create_app
from hegui.gateway.config import UpstreamConfig
from hegui.gateway.demo_upstream import script_for
from hegui.ledger.config import LedgerConfig
from hegui.ledger.store import Ledger
from misbehaving_upstream import LONG_LINE_BYTES, MisbehavingUpstream, wait_until

HEGUI = [sys.executable, "-c", "from hegui.cli import main; main()"]
NO_ACCOUNT_GATE = {"enabled": False}
"""These tests send floods of requests and tokens; the account gate's rate limits are not their subject."""
SALTS = {"HEGUI_PII_SALT": "faults-test-pii-salt", "HEGUI_IDENTIFIER_SALT": "faults-test-identifier-salt"}


def chat(client: openai.OpenAI, text: str, model: str = "hegui-demo", **kw: Any) -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def stream_text(client: openai.OpenAI, text: str, model: str = "hegui-demo") -> tuple[str, Any]:
    chunks = list(chat(client, text, model=model, stream=True))
    return "".join(c.choices[0].delta.content or "" for c in chunks), chunks[-1]


def cli_verify(url: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli_app, ["ledger", "verify", "--url", url])
    return res.exit_code, res.output


# -- a private PostgreSQL ----------------------------------------------------------------------------


class PrivateCluster:
    """A throwaway PostgreSQL cluster in a temporary folder, on a port of its own."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.folder = tempfile.mkdtemp(prefix="hegui-faults-pg-")
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # PostgreSQL refuses to run as root
        if self.as_postgres:
            os.chmod(self.folder, 0o700)
            shutil.chown(self.folder, "postgres", "postgres")

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=self.folder, timeout=60)

    def init(self) -> None:
        res = self.run("initdb", "-D", f"{self.folder}/data", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                       "--no-sync")
        if res.returncode != 0:
            pytest.skip(f"initdb failed: {res.stderr.strip()[-200:]}")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        res = self.run("pg_ctl", "-D", f"{self.folder}/data", "-o", opts, "-l", f"{self.folder}/log", "-w", "start")
        assert res.returncode == 0, res.stdout + res.stderr

    def stop(self) -> None:
        res = self.run("pg_ctl", "-D", f"{self.folder}/data", "-m", "immediate", "-w", "stop")
        assert res.returncode == 0, res.stdout + res.stderr

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self, name: str) -> str:
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def remove(self) -> None:
        with_server = os.path.exists(f"{self.folder}/data/postmaster.pid")
        if with_server:
            self.run("pg_ctl", "-D", f"{self.folder}/data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl): private-cluster tests skipped")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as its own user")
    pg = PrivateCluster(os.path.dirname(found[-1]))
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.remove()


class PgEnv:
    def __init__(self, cluster: PrivateCluster, url: str, ledger: Ledger, base: str) -> None:
        self.cluster = cluster
        self.url = url
        self.ledger = ledger
        self.base = base
        self.client = openai.OpenAI(base_url=base + "/v1", api_key=TEST_KEY, max_retries=0, timeout=15)


@contextmanager
def pg_gateway(cluster: PrivateCluster, name: str, tmp_path: Path, **ledger_cfg: Any) -> Iterator[PgEnv]:
    url = cluster.new_database(name)
    cfg = write_config(tmp_path, {"labeling": {"explicit": False}, "accounts": NO_ACCOUNT_GATE})
    with Ledger.open(url, config=LedgerConfig(**ledger_cfg)) as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)) as base:
            yield PgEnv(cluster, url, ledger, base)


def test_postgres_stopped_mid_run_fails_closed_and_recovers_by_itself(cluster: PrivateCluster, tmp_path: Path) -> None:
    with pg_gateway(cluster, "faults_stop", tmp_path) as env:
        assert chat(env.client, "/say 之前").choices[0].message.content == "之前"
        _, fresh_key = env.ledger.create_api_key("acc_test", name="never used before the outage")
        fresh = openai.OpenAI(base_url=env.base + "/v1", api_key=fresh_key, max_retries=0, timeout=15)

        cluster.stop()
        try:
            for stream in (False, True):
                t0 = time.monotonic()
                with pytest.raises(openai.APIStatusError) as exc:
                    chat(env.client, "/say 数据库停了", stream=stream)
                assert exc.value.status_code == 503 and exc.value.body["code"] == "ledger_unavailable"
                assert time.monotonic() - t0 < 2
            with pytest.raises(openai.APIStatusError) as exc:  # the key cannot be checked either
                chat(fresh, "/say 新钥匙")
            assert exc.value.status_code == 503 and exc.value.body["code"] == "ledger_unavailable"
            assert httpx.get(env.base + "/readyz").status_code == 503
        finally:
            cluster.start()

        # the same gateway, no restart: the pool replaced its dead connections
        resp = chat(env.client, "/say 之后")
        assert resp.choices[0].message.content == "之后"
        assert stream_text(env.client, "/say 流式之后")[0] == "流式之后"
        assert chat(fresh, "/say 新钥匙").choices[0].message.content == "新钥匙"
        assert httpx.get(env.base + "/readyz").status_code == 200
        assert env.ledger.decisions(decision_id=resp.model_extra["hegui"]["decision"])
        report = env.ledger.verify()
        assert report.ok and report.rows_checked >= 6
    assert cli_verify(env.url)[0] == 0


def test_postgres_restarts_under_load_lose_no_answered_record(cluster: PrivateCluster, tmp_path: Path) -> None:
    """Requests keep coming while the database goes down twice: each is answered 200 (and then its
    records are in the ledger) or 503; the chain verifies — no half-written record, no fork."""
    with pg_gateway(cluster, "faults_load", tmp_path) as env:
        results: list[tuple[int, Any]] = []
        stop = threading.Event()

        def client_loop(n: int) -> None:
            client = openai.OpenAI(base_url=env.base + "/v1", api_key=TEST_KEY, max_retries=0, timeout=15)
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    resp = chat(client, f"/say 第{n}-{i}个回答")
                    results.append((200, resp.model_extra["hegui"]["decisions"]))
                except openai.APIStatusError as exc:
                    results.append((exc.status_code, exc.body.get("code") if isinstance(exc.body, dict) else None))

        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(2):
                time.sleep(0.4)
                cluster.stop()
                time.sleep(0.4)
                cluster.start()
            time.sleep(0.4)
        finally:
            stop.set()
            for t in threads:
                t.join(20)
        statuses = {status for status, _ in results}
        assert statuses <= {200, 503}, results
        assert {code for status, code in results if status == 503} <= {"ledger_unavailable"}
        assert any(s == 503 for s, _ in results) and results[-1][0] == 200
        answered = [d for s, d in results if s == 200]
        recorded = {r.decision_id for r in env.ledger.decisions(limit=None, kind="decision")}
        for decisions in answered:
            assert decisions["input"] in recorded and decisions["output"] in recorded
        report = env.ledger.verify()
        assert report.ok, report.problems
        assert report.rows_checked >= 2 * len(answered)


def test_a_frozen_holder_of_the_chain_head_lock_is_cut_off(cluster: PrivateCluster, tmp_path: Path) -> None:
    """A gateway process that froze (or lost its network) in the middle of an append holds the
    chain-head row lock; the server ends its idle transaction after ``busy_timeout_ms``, so the
    other processes go on instead of waiting for ever, and the frozen append is rolled back."""
    with pg_gateway(cluster, "faults_lock", tmp_path, busy_timeout_ms=1000) as env:
        assert chat(env.client, "/say 之前").choices[0].message.content == "之前"
        with Ledger.open(env.url, create=False, config=LedgerConfig(busy_timeout_ms=1000)) as frozen:
            conn = frozen.engine.connect()
            tx = conn.begin()
            conn.execute(sa.text("SELECT seq FROM chain_heads WHERE chain = 'decisions' FOR UPDATE"))
            conn.execute(sa.text("INSERT INTO ledger_meta (key, value) VALUES ('half-done', 'x')"))
            t0 = time.monotonic()
            resp = chat(env.client, "/say 等锁")  # waits for the lock, then gets it
            waited = time.monotonic() - t0
            assert resp.choices[0].message.content == "等锁"
            assert 0.5 < waited < 5
            with pytest.raises(sa.exc.DBAPIError):
                tx.commit()  # the frozen transaction was ended by the server: nothing of it stays
            conn.close()
        with env.ledger.engine.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM ledger_meta WHERE key = 'half-done'")).scalar() == 0
        assert env.ledger.verify().ok


# -- SQLite ------------------------------------------------------------------------------------------


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def test_sqlite_ledger_locked_by_another_process_is_503_then_recovers(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"labeling": {"explicit": False}, "accounts": NO_ACCOUNT_GATE})
    path = tmp_path / "ledger.db"
    with Ledger.open(f"sqlite:///{path}", config=LedgerConfig(busy_timeout_ms=300)) as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)) as base:
            client = openai.OpenAI(base_url=base + "/v1", api_key=TEST_KEY, max_retries=0, timeout=15)
            assert chat(client, "/say 之前").choices[0].message.content == "之前"
            with subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) as locker:
                assert locker.stdin is not None and locker.stdout is not None
                try:
                    assert locker.stdout.readline().strip() == "locked"
                    for stream in (False, True):
                        t0 = time.monotonic()
                        with pytest.raises(openai.APIStatusError) as exc:
                            chat(client, "/say 锁住了", stream=stream)
                        assert exc.value.status_code == 503 and exc.value.body["code"] == "ledger_unavailable"
                        assert time.monotonic() - t0 < 3
                finally:
                    locker.stdin.write("\n")
                    locker.stdin.flush()
                    locker.wait(10)
            assert chat(client, "/say 之后").choices[0].message.content == "之后"
            assert ledger.verify().ok
    assert cli_verify(f"sqlite:///{path}")[0] == 0


READ_ONLY_FILE = """
import json, os, sys
from hegui.ledger.records import DecisionRecord
from hegui.ledger.store import Ledger
folder = sys.argv[1]
out = {}
def rec(i):
    return DecisionRecord(decision_id=f"d{i}", request_id="r", account_id="a", api_key_id="k", model="m",
                          direction="input", scene="default", action="allow", risks=[], findings=[],
                          detector_ms={}, excerpt="x")
def attempt(name, i):
    try:
        ledger.record_decision(rec(i))
        out[name] = "ok"
    except Exception as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
def chmod_all(mode):
    for f in os.listdir(folder):
        os.chmod(os.path.join(folder, f), mode)
ledger = Ledger.open(f"sqlite:///{folder}/ledger.db")
attempt("before", 1)
os.chmod(folder, 0o555)
attempt("folder read-only", 2)
os.chmod(folder, 0o755)
chmod_all(0o444)
ledger.engine.dispose()  # the next connection opens the file while it cannot be written
attempt("file read-only", 3)
chmod_all(0o644)
attempt("fixed", 4)
out["verify"] = ledger.verify().ok
print(json.dumps(out))
"""


def test_sqlite_ledger_file_read_only_then_fixed_recovers(tmp_path: Path) -> None:
    """Root ignores file modes, so the check runs in a child without CAP_DAC_OVERRIDE."""
    if shutil.which("setpriv") is None and os.geteuid() == 0:
        pytest.skip("setpriv not found: cannot drop CAP_DAC_OVERRIDE to make file modes count for root")
    folder = Path(tempfile.mkdtemp(prefix="hegui-faults-ro-"))
    try:
        cmd = [sys.executable, "-c", READ_ONLY_FILE, str(folder)]
        if os.geteuid() == 0:
            cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout.strip().splitlines()[-1])
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder, ignore_errors=True)
    assert out["before"] == "ok"
    # in WAL mode SQLite writes to files it already has open: a read-only folder does not stop it
    assert out["folder read-only"] == "ok"
    assert out["file read-only"].startswith("LedgerError") and "readonly" in out["file read-only"]
    # the connection opened read-only is not kept: once the files can be written again, so can the ledger
    assert out["fixed"] == "ok" and out["verify"] is True


# -- hegui serve as a process ------------------------------------------------------------------------


@contextmanager
def hegui_serve(config: Path, port: int, log: Path, wrap: tuple[str, ...] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """``hegui serve`` as a process (``wrap`` goes before it, e.g. ``unshare``) until the block ends."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([*wrap, *HEGUI, "serve", "--config", str(config), "--port", str(port),
                                 "--log-level", "warning"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **SALTS}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"hegui serve did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def serve_config(folder: Path, ledger_url: str, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "gateway": {"admin_key": "sk-faults-admin"},
        "ledger": {"url": ledger_url},
        "classifier": {"enabled": False},  # starts in a second instead of four
        "labeling": {"explicit": False},
        "accounts": NO_ACCOUNT_GATE,
    }
    for key, value in extra.items():
        data.setdefault(key, {})
        if isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    path = folder / "hegui.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def new_key(base: str) -> str:
    resp = httpx.post(base + "/admin/keys", json={"account": "acc_faults", "name": "faults"},
                      headers={"authorization": "Bearer sk-faults-admin"}, timeout=10)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


CHECK_LEDGER = """
import sys
from hegui.ledger.store import Ledger
with Ledger.open(sys.argv[1], create=False) as ledger:
    print("verified" if ledger.verify().ok else "broken", "recorded" if ledger.decisions(decision_id=sys.argv[2]) else "lost")
"""


def test_sqlite_disk_full_is_503_then_recovers(tmp_path: Path) -> None:
    """The ledger on a 4 MB tmpfs (in a mount namespace of the gateway's own) that the test fills."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0 or shutil.which("nsenter") is None:
        pytest.skip("cannot make a private mount namespace (unshare -m) here: disk-full test skipped")
    disk = tmp_path / "disk"
    disk.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = serve_config(tmp_path, f"sqlite:///{disk / 'ledger.db'}")
    mount = f'mount -t tmpfs -o size=4m tmpfs "{disk}" && exec "$@"'
    wrap = ("unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh")
    with hegui_serve(cfg, port, tmp_path / "serve.log", wrap) as proc:
        def inside(*cmd: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["nsenter", "-t", str(proc.pid), "-m", *cmd], capture_output=True, text=True,
                                  timeout=30)

        client = openai.OpenAI(base_url=base + "/v1", api_key=new_key(base), max_retries=0, timeout=15)
        assert chat(client, "/say 之前").choices[0].message.content == "之前"
        inside("dd", "if=/dev/zero", f"of={disk}/filler", "bs=64k")
        assert "100%" in inside("df", str(disk)).stdout
        for stream in (False, True):
            t0 = time.monotonic()
            with pytest.raises(openai.APIStatusError) as exc:
                chat(client, "/say 磁盘满了", stream=stream)
            assert exc.value.status_code == 503 and exc.value.body["code"] == "ledger_unavailable"
            assert time.monotonic() - t0 < 2
        inside("rm", f"{disk}/filler")
        resp = chat(client, "/say 之后")
        assert resp.choices[0].message.content == "之后"
        # read the ledger where the gateway sees it: in its mount namespace (SQLite resolves
        # /proc/PID/root away, so it is opened from inside)
        res = inside(sys.executable, "-c", CHECK_LEDGER, f"sqlite:///{disk / 'ledger.db'}",
                     resp.model_extra["hegui"]["decision"])
        assert res.returncode == 0 and res.stdout.split() == ["verified", "recorded"], res.stdout + res.stderr


def test_gateway_killed_mid_stream_leaves_the_open_stream_on_record(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cfg = serve_config(tmp_path, url, gateway={"stream_checkpoint_seconds": 0.2},
                       upstreams=[{"name": "demo", "base_url": "demo", "token_delay_ms": 10}])
    answer = "这是一个很长的回答，" * 60
    received = ""
    with hegui_serve(cfg, port, tmp_path / "serve.log") as proc:
        client = openai.OpenAI(base_url=base + "/v1", api_key=new_key(base), max_retries=0, timeout=15)
        raw = client.chat.completions.with_raw_response.create(
            model="hegui-demo", messages=[{"role": "user", "content": say64(answer)}], stream=True)
        output_decision = raw.headers["x-hegui-output-decision"]
        t0 = time.monotonic()
        with pytest.raises((openai.APIError, httpx.HTTPError)):  # the connection breaks under the client
            for chunk in raw.parse():
                if chunk.choices:
                    received += chunk.choices[0].delta.content or ""
                if time.monotonic() - t0 > 1.0 and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
    assert 0 < len(received) < len(answer) and answer.startswith(received)

    exit_code, output = cli_verify(url)
    assert exit_code == 0, output
    with Ledger.open(url, create=False) as ledger:
        opened = {row.decision_id: row for row in ledger.open_streams()}
        assert output_decision in opened
        sent = opened[output_decision].stream
        assert sent is not None and 0 < sent["sent_chars"] <= len(answer)  # the last checkpoint

    # after a restart the record is still there, and the gateway serves again
    with hegui_serve(cfg, port, tmp_path / "serve2.log"):
        client = openai.OpenAI(base_url=base + "/v1", api_key=new_key(base), max_retries=0, timeout=15)
        assert chat(client, "/say 重启之后").choices[0].message.content == "重启之后"
    with Ledger.open(url, create=False) as ledger:
        assert output_decision in {row.decision_id for row in ledger.open_streams()}
        assert ledger.verify().ok


# -- misbehaving upstreams ---------------------------------------------------------------------------

UPSTREAM_TIMEOUT = 0.6
REQUEST_TIMEOUT = 1.2


class UpEnv:
    def __init__(self, base: str, up: MisbehavingUpstream, ledger: Ledger) -> None:
        self.base = base
        self.up = up
        self.ledger = ledger
        self.client = openai.OpenAI(base_url=base + "/v1", api_key=TEST_KEY, max_retries=0, timeout=15)

    def final_record(self, decision_id: str) -> Any:
        assert wait_until(lambda: bool(self.ledger.decisions(decision_id=decision_id, kind="decision")))
        return self.ledger.decisions(decision_id=decision_id, kind="decision")[0]


@pytest.fixture(scope="module")
def upenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpEnv]:
    folder = tmp_path_factory.mktemp("faults-up")
    up = MisbehavingUpstream()
    with ExitStack() as stack:
        url = stack.enter_context(up.running())
        ups = [
            {"name": "bad", "base_url": url, "models": ["bad", "fo"], "timeout": UPSTREAM_TIMEOUT,
             "connect_timeout": 1},
            {"name": "small", "base_url": url, "models": ["small"], "timeout": UPSTREAM_TIMEOUT,
             "max_response_bytes": 1024 * 1024},
            {"name": "fallback", "base_url": "demo", "models": ["fo"]},
        ]
        cfg = write_config(folder, {"upstreams": ups, "labeling": {"explicit": False}, "accounts": NO_ACCOUNT_GATE,
                                    "gateway": {"request_timeout": REQUEST_TIMEOUT}})
        ledger = stack.enter_context(Ledger.open(f"sqlite:///{folder / 'ledger.db'}"))
        add_test_keys(ledger)
        base = stack.enter_context(serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)))
        yield UpEnv(base, up, ledger)


# mode, streamed?, model → status, code, words of the message; answered within seconds
REFUSED = [
    ("not-json", False, "bad", 502, "upstream_error", "not JSON", 1.0),
    ("not-json", True, "bad", 502, "upstream_error", "text/html, not text/event-stream", 1.0),
    ("json-stream", True, "bad", 502, "upstream_error", "application/json, not text/event-stream", 1.0),
    ("garbage-sse", True, "bad", 502, "upstream_error", "chunk that is not JSON", 1.0),
    ("bad-shape", False, "bad", 502, "upstream_error", "choices that are not objects", 1.0),
    ("long-line", True, "bad", 502, "upstream_error", "SSE event longer than 1048576 bytes", 2.0),
    ("long-line", False, "small", 502, "upstream_error", "larger than 1048576 bytes", 2.0),
    ("silent", True, "bad", 504, "upstream_timeout", "no event for 0.6 s", UPSTREAM_TIMEOUT + 1.0),
    ("silent", False, "bad", 504, "upstream_timeout", "timed out", UPSTREAM_TIMEOUT + 1.0),
    ("comments", True, "bad", 504, "upstream_timeout", "no event for 0.6 s", UPSTREAM_TIMEOUT + 1.0),
    # bytes keep coming, slower than the read timeout: the whole answer has a deadline
    ("trickle", False, "bad", 504, "upstream_timeout", "no complete answer in 1.6 s", 1 + UPSTREAM_TIMEOUT + 1.0),
]


@pytest.mark.parametrize(("mode", "stream", "model", "status", "code", "words", "within"), REFUSED,
                         ids=[f"{r[0]}-{'stream' if r[1] else 'json'}" for r in REFUSED])
def test_a_misbehaving_upstream_before_any_answer_is_a_clear_error(
        upenv: UpEnv, mode: str, stream: bool, model: str, status: int, code: str, words: str, within: float) -> None:
    sent_before = upenv.up.stats[mode]
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as exc:
        chat(upenv.client, f"{mode} 你好", model=model, stream=stream)
    took = time.monotonic() - t0
    assert exc.value.status_code == status and exc.value.body["code"] == code
    assert words in exc.value.body["message"]
    assert took < within
    if mode == "long-line":
        # the gateway stopped at the cap and hung up: the 10 MB were never all taken
        assert wait_until(lambda: upenv.up.open == 0)
        taken = upenv.up.stats[mode] - sent_before
        assert taken < LONG_LINE_BYTES, taken


# mode → what the client got before the break, words of hegui.error's message, answered within
BROKEN = [
    ("broken-after", "你好世界", "chunk that is not JSON", 1.0),
    ("bad-shape", "你好", "choices are not a list of objects", 1.0),
    ("long-line-after", "你好", "SSE event longer than 1048576 bytes", 2.0),
    ("silent-after", "你好", "no event for 0.6 s", UPSTREAM_TIMEOUT + 1.0),
]


@pytest.mark.parametrize(("mode", "got", "words", "within"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_stream_that_breaks_after_it_started_ends_cleanly(
        upenv: UpEnv, mode: str, got: str, words: str, within: float) -> None:
    t0 = time.monotonic()
    raw = upenv.client.chat.completions.with_raw_response.create(
        model="bad", messages=[{"role": "user", "content": f"{mode} 你好"}], stream=True)
    chunks = list(raw.parse())
    assert time.monotonic() - t0 < within
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == got  # nothing of the garbage
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    error = last.model_extra["hegui"]["error"]
    assert error["type"] == "upstream_error" and words in error["message"]
    record = upenv.final_record(raw.headers["x-hegui-output-decision"])
    assert record.stream["sent_chars"] == len(got) and words in record.stream["upstream_error"]
    assert record.excerpt == got


def test_an_endless_stream_is_ended_at_the_request_timeout(upenv: UpEnv) -> None:
    t0 = time.monotonic()
    raw = upenv.client.chat.completions.with_raw_response.create(
        model="bad", messages=[{"role": "user", "content": "endless 说下去"}], stream=True)
    chunks = list(raw.parse())
    took = time.monotonic() - t0
    assert REQUEST_TIMEOUT <= took < REQUEST_TIMEOUT + 1.5
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(text) > 1000 and set(text) <= set("这是一段很长的回答，模型一直说下去。")
    error = chunks[-1].model_extra["hegui"]["error"]
    assert "gateway.request_timeout" in error["message"]
    record = upenv.final_record(raw.headers["x-hegui-output-decision"])
    assert record.stream["sent_chars"] == len(text)
    assert wait_until(lambda: upenv.up.open == 0), upenv.up.open_modes  # the upstream connection was closed


def test_a_cut_stream_closes_the_upstream_connection_every_time(upenv: UpEnv) -> None:
    """Art. 14: a stream cut by moderation stops the generation, i.e. the upstream's connection is
    closed — each time, not only when the reader happened to be idle."""
    for i in range(5):
        chunks = list(chat(upenv.client, "gamble-then-endless 说吧", model="bad", stream=True))
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        assert chunks[-1].model_extra["hegui"]["retract"] is True  # cut by output moderation
        assert wait_until(lambda: upenv.up.open == 0, timeout=3), f"stream {i}: upstream still open"


def test_a_stream_ended_by_the_gateway_closes_the_upstream_connection_every_time(tmp_path: Path) -> None:
    """When the gateway ends a stream (here at gateway.request_timeout), the upstream's connection
    is closed at once, every time. (It used to stay open — the model generating into a full socket —
    whenever the end of the stream raced httpcore's clean-up: two cancellations of the reader.)"""
    up = MisbehavingUpstream()
    with ExitStack() as stack:
        url = stack.enter_context(up.running())
        cfg = write_config(tmp_path, {
            "upstreams": [{"name": "bad", "base_url": url, "models": ["bad"], "timeout": 5}],
            "gateway": {"request_timeout": 0.2}, "labeling": {"explicit": False}, "accounts": NO_ACCOUNT_GATE})
        ledger = stack.enter_context(Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}"))
        add_test_keys(ledger)
        base = stack.enter_context(serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)))
        client = openai.OpenAI(base_url=base + "/v1", api_key=TEST_KEY, max_retries=0, timeout=15)
        for i in range(8):
            chunks = list(chat(client, "endless 说下去", model="bad", stream=True))
            assert "gateway.request_timeout" in chunks[-1].model_extra["hegui"]["error"]["message"]
            assert wait_until(lambda: up.open == 0, timeout=3), f"stream {i}: the upstream connection stayed open"


@pytest.mark.parametrize(("mode", "stream"), [("not-json", False), ("json-stream", True), ("garbage-sse", True),
                                            ("silent", True), ("long-line", True)])
def test_a_stream_broken_before_its_first_event_fails_over(upenv: UpEnv, mode: str, stream: bool) -> None:
    """Nothing has reached the client before the first event, so the next upstream may answer."""
    if stream:
        chunks = list(chat(upenv.client, f"{mode} 换一个", model="fo", stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        ext = chunks[-1].model_extra["hegui"]
    else:
        resp = chat(upenv.client, f"{mode} 换一个", model="fo")
        text, ext = resp.choices[0].message.content, resp.model_extra["hegui"]
    assert ext["upstream"] == "fallback" and "error" not in ext
    assert text == script_for(f"{mode} 换一个").text  # the demo model's answer, whole


def test_a_well_behaved_answer_still_passes(upenv: UpEnv) -> None:
    assert chat(upenv.client, "ok 一切正常", model="bad").choices[0].message.content == "一切正常"
    assert stream_text(upenv.client, "ok 流式正常", model="bad")[0] == "流式正常"


# -- slow clients ------------------------------------------------------------------------------------


def open_raw_stream(port: int, key: str, text: str, rcvbuf: int = 32 * 1024) -> socket.socket:
    """A streamed chat request on a bare socket whose reading the test controls (headers read)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    body = json.dumps({"model": "bad", "stream": True, "messages": [{"role": "user", "content": text}]}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                 b"authorization: Bearer " + key.encode() + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        assert data, "the gateway closed the connection"
        head += data
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_slow_or_stalled_client_does_not_grow_the_gateway(tmp_path: Path) -> None:
    """The upstream writes as fast as it may; the client reads slowly, then not at all. The gateway
    (a real ``hegui serve``) must push back on the upstream instead of buffering the answer."""
    up = MisbehavingUpstream()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with up.running() as up_url:
        cfg = serve_config(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", gateway={"request_timeout": 120},
                           upstreams=[{"name": "bad", "base_url": up_url, "models": ["bad"], "timeout": 10}])
        with hegui_serve(cfg, port, tmp_path / "serve.log") as proc:
            key = new_key(base)
            # a client that reads as fast as it can: how fast the gateway takes the upstream's answer
            warm = open_raw_stream(port, key, "endless 热身")
            t0 = time.monotonic()
            got = 0
            while time.monotonic() - t0 < 1.0:
                got += len(warm.recv(1 << 16))
            free_rate = up.stats["endless"] / (time.monotonic() - t0)
            warm.close()
            assert wait_until(lambda: up.open == 0)
            baseline = rss_kib(proc.pid)

            # slow: 8 KiB every 20 ms (~400 KiB/s)
            start = up.stats["endless"]
            sock = open_raw_stream(port, key, "endless 慢慢读")
            received = 0
            rss, handed = [], []
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.5:
                received += len(sock.recv(8192))
                if len(rss) < (time.monotonic() - t0) // 0.5:
                    rss.append(rss_kib(proc.pid))
                    handed.append(up.stats["endless"] - start)
                time.sleep(0.02)
            # stalled: no reading at all
            for _ in range(4):
                time.sleep(0.5)
                rss.append(rss_kib(proc.pid))
                handed.append(up.stats["endless"] - start)
            sock.close()
    growth_mib = (max(rss) - baseline) / 1024
    print(f"\ngateway RSS {baseline / 1024:.1f} MiB before, then every 0.5 s (slow client, then stalled): "
          f"{[round(r / 1024, 1) for r in rss]} MiB; the upstream handed over {[round(h / 1e6, 1) for h in handed]} MB "
          f"(reading freely, the gateway takes {free_rate / 1e6:.1f} MB/s); the client got {received / 1e6:.2f} MB")
    # what grows is the answer's text kept for its final decision and label (as for a fast client),
    # not a backlog: what the client has not taken waits in the upstream and the socket buffers
    assert growth_mib < 40
    # stalled: once the buffers on the way are full, the upstream cannot write any more, and the
    # gateway does not grow (without backpressure it would go on reading at the free rate)
    assert handed[-1] - handed[-3] < 256 * 1024
    assert rss[-1] - rss[-3] < 4 * 1024


def test_a_client_that_stops_reading_is_dropped_and_recorded(tmp_path: Path) -> None:
    """A client that takes nothing holds the stream (and the upstream's generation) no longer than
    the stall limit; gateway.request_timeout cannot end it: the gateway is stuck handing it data."""
    up = MisbehavingUpstream()
    with ExitStack() as stack:
        url = stack.enter_context(up.running())
        cfg = write_config(tmp_path, {
            "upstreams": [{"name": "bad", "base_url": url, "models": ["bad"], "timeout": 10}],
            "gateway": {"request_timeout": 60, "client_stall_seconds": 1.0}, "labeling": {"explicit": False},
            "accounts": NO_ACCOUNT_GATE})
        ledger = stack.enter_context(Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}"))
        add_test_keys(ledger)
        base = stack.enter_context(serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)))
        sock = stack.enter_context(open_raw_stream(int(base.rsplit(":", 1)[1]), TEST_KEY, "endless 不读了", 8192))
        assert sock.recv(4096)
        t0 = time.monotonic()
        assert wait_until(lambda: up.open == 0, timeout=8), "the upstream was not let go"
        assert time.monotonic() - t0 < 5
        # the upstream is closed first, then the record is written

        def output_rows() -> list[Any]:
            return [r for r in ledger.decisions(kind="decision", limit=5) if r.direction == "output"]

        assert wait_until(lambda: bool(output_rows()))
        row = output_rows()[0]
        assert row.stream is not None and row.stream["client_disconnected"] is True
        assert row.stream["sent_chars"] > 0 and row.stream["upstream_error"] is None


# -- the bounds themselves ---------------------------------------------------------------------------


FAT_EVENT = b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": "字" * 100_000}}]},
                                   ensure_ascii=False).encode() + b"\n\n"


def test_the_upstream_reader_stops_at_its_byte_bound_not_its_chunk_count() -> None:
    """Few, fat events (300 KB each) that nobody takes: the reader stops after about
    ``MAX_PENDING_BYTES`` of them, not after ``MAX_PENDING_CHUNKS`` (which would be 600 MB)."""
    pulled = 0

    async def body() -> Any:
        nonlocal pulled
        while True:
            pulled += 1
            yield FAT_EVENT

    async def run() -> None:
        resp = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())
        stream = upstream.HTTPStream("fat", resp, UpstreamConfig(max_response_bytes=1 << 40))
        await stream.start()
        await asyncio.sleep(0.3)
        await stream.aclose()

    asyncio.run(run())
    assert pulled * len(FAT_EVENT) <= upstream.MAX_PENDING_BYTES + 2 * len(FAT_EVENT)


def test_the_sse_pump_stops_at_its_byte_bound_and_drops_a_stalled_client() -> None:
    pulled = 0
    finished: list[str] = []

    async def frames() -> Any:
        nonlocal pulled
        try:
            while True:
                pulled += 1
                yield FAT_EVENT
        finally:
            finished.append("generator closed")

    async def run() -> float:
        writes: list[int] = []
        never = asyncio.Event()

        async def send(message: Any) -> None:
            if message["type"] == "http.response.body":
                writes.append(len(message["body"]))
                if len(writes) > 1:
                    await never.wait()  # the client stopped reading

        async def receive() -> Any:
            await never.wait()
            return {"type": "http.disconnect"}

        t0 = time.monotonic()
        await streaming.SSEResponse(frames(), stall_timeout=0.5)({"type": "http"}, receive, send)
        assert max(writes) <= streaming.SEND_PIECE_BYTES
        return time.monotonic() - t0

    took = asyncio.run(run())
    # one pile being written, the next one waiting: about twice the bound, never the whole stream
    assert pulled * len(FAT_EVENT) <= 2 * streaming.MAX_PENDING_BYTES + 2 * len(FAT_EVENT)
    assert 0.5 <= took < 2 and finished == ["generator closed"]


def test_a_client_gone_before_the_first_frame_still_closes_the_stream() -> None:
    """A disconnect already waiting when the response starts cancels it before the frames generator
    runs a single step, so the generator's finally never runs (seen as 9 of 5,459 disconnects left
    open in a soak). ``on_close`` runs however the response ends; the gateway records the stream there."""
    started: list[str] = []
    closed: list[str] = []

    async def frames() -> Any:
        started.append("started")
        yield b"data: {}\n\n"

    async def on_close() -> None:
        closed.append("closed")

    async def run() -> None:
        async def send(message: Any) -> None:
            pass

        async def receive() -> Any:
            return {"type": "http.disconnect"}

        await streaming.SSEResponse(frames(), on_close=on_close)({"type": "http"}, receive, send)

    asyncio.run(run())
    assert closed == ["closed"]  # whether or not the generator got to run


def test_streams_of_clients_that_leave_at_once_are_all_closed_in_the_ledger(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
                                  "labeling": {"explicit": False}, "accounts": NO_ACCOUNT_GATE})
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        add_test_keys(ledger)
        with serve(create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=ledger)) as base:
            port = int(base.rsplit(":", 1)[1])
            body = json.dumps({"model": "hegui-demo", "stream": True,
                               "messages": [{"role": "user", "content": "/say 你好，这是一个回答"}]}).encode()
            for _ in range(30):
                with socket.create_connection(("127.0.0.1", port)) as sock:
                    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 + f"Authorization: Bearer {TEST_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                                 + body)
            assert wait_until(lambda: not ledger.open_streams(), timeout=10), ledger.open_streams()[:3]
        assert ledger.verify().ok


class SlowOutputRecords:
    """The real ledger, whose output decision writes take a while: long enough for the client's
    disconnect to reach the response while the stream's record is being written."""

    def __init__(self, inner: Ledger, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def arecord_decision(self, rec: Any) -> int:
        if rec.direction == "output" and rec.kind == "decision":
            await asyncio.sleep(self.seconds)
        result: int = await self.inner.arecord_decision(rec)
        return result


def test_a_stream_record_being_written_when_the_disconnect_arrives_is_still_written(tmp_path: Path) -> None:
    """The server's send fails (the client is gone), the frames' finally starts writing the stream's
    record, and only then does the disconnect message reach the response, which cancels its pump;
    the pump is awaiting the producer, so the cancellation passes on to the write. The write must
    finish anyway (seen as 7 streams of 4,415 disconnects left open in a soak)."""
    cfg = write_config(tmp_path, {"upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"],
                                                 "token_delay_ms": 5}],
                                  "labeling": {"explicit": False}, "accounts": NO_ACCOUNT_GATE})
    body = json.dumps({"model": "hegui-demo", "stream": True, "messages": [
        {"role": "user", "content": "/say 这是一个比较长的回答，" + "一句接着一句，" * 20}]}).encode()

    async def one_request(app: Any) -> None:
        sent_bodies = 0
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if not getattr(receive, "done", False):
                receive.done = True  # type: ignore[attr-defined]
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            await asyncio.sleep(0.1)  # the disconnect message comes late, while the record is written
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal sent_bodies
            if message["type"] == "http.response.body":
                sent_bodies += 1
                if sent_bodies >= 3:
                    gone.set()
                    raise OSError("client gone")  # what an ASGI 2.4 server raises on a closed connection

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80),
                 "headers": [(b"host", b"x"), (b"content-type", b"application/json"),
                             (b"authorization", f"Bearer {TEST_KEY}".encode()),
                             (b"content-length", str(len(body)).encode())]}
        await app(scope, receive, send)

    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        add_test_keys(ledger)
        slow = SlowOutputRecords(ledger, 0.3)
        app = create_app(cfg, moderator=make_moderator({"赌博": "A1h"}), ledger=slow)  # type: ignore[arg-type]

        async def run() -> None:
            for _ in range(3):
                await one_request(app)
            await asyncio.sleep(0.5)  # a write left running in the background would finish here

        asyncio.run(run())
        assert not ledger.open_streams(), ledger.open_streams()[:3]
        outputs = [r for r in ledger.decisions(limit=100) if r.kind == "decision" and r.direction == "output"]
        assert len(outputs) == 3 and all((r.stream or {}).get("client_disconnected") for r in outputs)
        assert ledger.verify().ok
