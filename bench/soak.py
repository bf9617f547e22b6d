"""Soak test: hegui under mixed load for a bounded time, then memory drift, outcomes and the ledger.

Starts the HTTP demo model (``python -m hegui.gateway.demo_upstream``, a fixed latency per answer and
a fixed pause between streamed tokens) and ``hegui serve`` in front of it (the default detectors
or those of ``--config``; a SQLite ledger in a temp folder, or a fresh database of its own on the
PostgreSQL server of ``--ledger-url``) as separate processes on loopback. This process drives them
at ``--concurrency`` for ``--minutes`` with a fixed mix of requests:

    chat                 non-streamed, benign (the model says a 340-character paragraph)
    stream               the same, streamed
    long_stream          streamed, 12 times as long (over 5 s: the gateway writes stream_progress rows)
    mask, mask_stream    the model says a phone number (13800138000): it must come back masked
    refuse_input(_stream) the prompt asks for a gambling site: refused before the model (content_filter)
    refuse_output        the model says a refused phrase (/say64): the answer is refused (content_filter)
    cut_stream           streamed; the refused phrase comes after 200 characters: the stream is cut
    disconnect           streamed; the client drops the connection after 1-5 content chunks
    bad_json, bad_request, bad_key   invalid JSON (400), no messages (400), unknown key (401)

Every outcome is classified. Expected: the answer each kind should get (200 with finish_reason
``stop``, a masked number, ``content_filter`` refusals and cuts, a disconnect, the 4xx of a bad
request). Unexpected: 5xx, other statuses, connect errors, timeouts, broken connections, malformed
JSON or SSE (every line ``data: {json}``, a last chunk with ``finish_reason``, then ``[DONE]``),
a wrong outcome (a benign answer refused, a refusal that was not), and leaks (the raw number or the
refused phrase reaching the client).

The gateway's resident memory (VmRSS of its process and its children, from /proc) is sampled every
``--sample-seconds``. Warm-up is the first 10 % of the run (at least 30 s, or a quarter of a short
run); the aim is RSS at the end within 10 % of RSS right after warm-up. When the load stops, the
gateway is given time to settle (open streams closed), then ``hegui ledger verify`` checks the hash
chain and the ledger is reconciled with what the clients saw: each answered request has exactly
one input decision, each request that reached the model one output decision, each stream one
``stream_open`` row, each disconnect an output record with ``client_disconnected`` (or, when the
gateway had sent the whole answer before it noticed, one with every character sent), and no stream
is left open.

The account gate stays on, with the ladder off and no rate limits (one bench account sends all the
load, refusals included, which would otherwise suspend it within seconds); ``--no-account-gate``
turns it off. The figures name the code under test (commit, local changes, a hash of the sources)
and say when the sources changed during the run.

    python bench/soak.py                      # 10 minutes at concurrency 32 (SQLite ledger)
    python bench/soak.py --minutes 1 --json soak.json
    python bench/soak.py --ledger-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Exit status 0 when every aim is met (no unexpected outcome, RSS drift within --max-rss-drift, the
ledger intact and reconciled, no error in the gateway's log), 1 otherwise, 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import free_port, pct  # bench/gateway.py

BENCH_KEY = "sk-hegui-soak"
BENCH_ACCOUNT = "acc_soak"
MODEL = "hegui-demo"
PHONE = "13800138000"
REFUSED_INPUT = "请推荐一个靠谱的网络赌博平台，最好能用微信充值。"  # A1h: refused at input
REFUSED_OUTPUT = "出售冰毒"  # A1h: refused in the output
PARAGRAPH = (
    "人工智能技术的发展为社会带来了新的机遇，也提出了新的治理问题。服务提供者应当依法开展训练数据处理活动，"
    "使用具有合法来源的数据和基础模型，采取有效措施提高训练数据质量，增强训练数据的真实性、准确性、客观性和多样性。"
)
BENIGN = (PARAGRAPH * 3)[:340]
MASK_TEXT = BENIGN[:120] + f"如有疑问请拨打客服电话{PHONE}，工作时间为周一至周五。" + BENIGN[120:200]
LONG_TEXT = BENIGN * 12  # about 2,000 tokens: long enough for `stream_progress` checkpoints
CUT_TEXT = BENIGN[:200] + f"另外，我们这里可以{REFUSED_OUTPUT}，价格面议。" + BENIGN[200:]

# --------------------------------------------------------------------------------------- the mix


@dataclass(frozen=True)
class Kind:
    name: str
    weight: float
    stream: bool
    expect: str
    """ok | mask | refuse | cut | disconnect | status:<code>"""


KINDS = [
    Kind("chat", 26, False, "ok"),
    Kind("stream", 22, True, "ok"),
    Kind("long_stream", 0.5, True, "ok"),
    Kind("mask", 6, False, "mask"),
    Kind("mask_stream", 6, True, "mask"),
    Kind("refuse_input", 4, False, "refuse"),
    Kind("refuse_input_stream", 4, True, "refuse"),
    Kind("refuse_output", 4, False, "refuse"),
    Kind("cut_stream", 5, True, "cut"),
    Kind("disconnect", 12, True, "disconnect"),
    Kind("bad_json", 1.5, False, "status:400"),
    Kind("bad_request", 1, False, "status:400"),
    Kind("bad_key", 1, False, "status:401"),
]
EXPECTED = ("ok", "masked", "refused", "cut", "disconnected", "rejected_4xx")
UNEXPECTED = ("http_5xx", "http_other", "connect_error", "timeout", "transport_error", "malformed_json",
              "malformed_sse", "wrong_outcome", "leak")


def prompt_for(kind: Kind, latency_s: float) -> str:
    sleep = f"/sleep {latency_s:g} " if latency_s > 0 else ""
    if kind.name == "long_stream":
        return f"{sleep}/say {LONG_TEXT}"
    if kind.name in ("chat", "stream", "disconnect"):
        return f"{sleep}/say {BENIGN}"
    if kind.name.startswith("mask"):
        return f"{sleep}/say {MASK_TEXT}"
    if kind.name.startswith("refuse_input"):
        return REFUSED_INPUT
    if kind.name in ("refuse_output", "cut_stream"):
        return sleep + "/say64 " + base64.b64encode(CUT_TEXT.encode()).decode()
    return f"{sleep}/say {BENIGN}"


# --------------------------------------------------------------------------------------- one request


@dataclass
class Outcome:
    kind: str
    cls: str
    seconds: float
    first: float | None = None
    request_id: str | None = None
    detail: str = ""
    disconnected_after: int = 0


def check_answer(kind: Kind, content: str, finish: str | None, ext: dict[str, Any] | None) -> tuple[str, str]:
    """(class, detail) of a complete answer against what its kind should get."""
    if PHONE in content:
        return "leak", "raw phone number reached the client"
    if REFUSED_OUTPUT in content or "网络赌博" in content:
        return "leak", "refused phrase reached the client"
    ext = ext or {}
    if kind.expect == "ok":
        if finish != "stop" or BENIGN not in content:
            return "wrong_outcome", f"benign answer: finish_reason {finish!r}, action {ext.get('action')!r}"
        if "label" not in ext:
            return "wrong_outcome", "benign answer without its implicit label"
        return "ok", ""
    if kind.expect == "mask":
        if finish != "stop" or ext.get("action") != "mask":
            return "wrong_outcome", f"masked answer: finish_reason {finish!r}, action {ext.get('action')!r}"
        return "masked", ""
    if kind.expect in ("refuse", "cut"):
        if finish != "content_filter":
            return "wrong_outcome", f"refusal expected: finish_reason {finish!r}, action {ext.get('action')!r}"
        if kind.expect == "cut" and not ext.get("retract"):
            return "wrong_outcome", "cut stream without hegui.retract"
        return ("cut" if kind.expect == "cut" else "refused"), ""
    return "wrong_outcome", f"unhandled kind {kind.name}"


async def parse_sse(r: Any, kind: Kind, rng: random.Random, t0: float) -> Outcome:
    """Read a stream line by line, checking the framing; a ``disconnect`` kind closes it early."""
    content: list[str] = []
    finish: str | None = None
    ext: dict[str, Any] | None = None
    done = False
    first: float | None = None
    chunks = 0
    stop_after = rng.randint(1, 5) if kind.expect == "disconnect" else 0
    rid = r.headers.get("x-request-id")
    async for line in r.aiter_lines():
        if not line:
            continue
        if done:
            return Outcome(kind.name, "malformed_sse", time.perf_counter() - t0, first, rid, "data after [DONE]")
        if not line.startswith("data: "):
            if line.startswith(":"):
                continue  # an SSE comment (keep-alive)
            return Outcome(kind.name, "malformed_sse", time.perf_counter() - t0, first, rid, f"line {line[:60]!r}")
        payload = line[6:]
        if payload == "[DONE]":
            done = True
            continue
        try:
            obj = json.loads(payload)
            choice = obj["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return Outcome(kind.name, "malformed_sse", time.perf_counter() - t0, first, rid, f"chunk {payload[:60]!r}")
        piece = (choice.get("delta") or {}).get("content") or ""
        if piece:
            content.append(piece)
            chunks += 1
            if first is None:
                first = time.perf_counter() - t0
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
            ext = obj.get("hegui")
        if stop_after and chunks >= stop_after:
            # leave mid-stream: the context manager closes the response, so the connection is dropped
            return Outcome(kind.name, "disconnected", time.perf_counter() - t0, first, rid,
                           disconnected_after=chunks)
    dt = time.perf_counter() - t0
    if not done:
        return Outcome(kind.name, "malformed_sse", dt, first, rid, "stream ended without [DONE]")
    if finish is None:
        return Outcome(kind.name, "malformed_sse", dt, first, rid, "no chunk with finish_reason")
    text = "".join(content)
    if kind.expect == "disconnect":
        # the whole stream arrived before the client left: fine, but judged as a benign answer
        cls, detail = check_answer(Kind("stream", 0, True, "ok"), text, finish, ext)
        return Outcome(kind.name, cls, dt, first, rid, detail or "finished before the client left")
    cls, detail = check_answer(kind, text, finish, ext)
    return Outcome(kind.name, cls, dt, first, rid, detail)


async def one_request(client: Any, base: str, kind: Kind, rng: random.Random, latency_s: float,
                      timeout: float) -> Outcome:
    import httpx

    headers = {"authorization": f"Bearer {BENCH_KEY}", "content-type": "application/json"}
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": prompt_for(kind, latency_s)}]}
    if kind.stream:
        body["stream"] = True
    content = json.dumps(body, ensure_ascii=False).encode()
    if kind.name == "bad_json":
        content = content[: rng.randint(1, len(content) - 1)]  # cut off: never valid JSON
    elif kind.name == "bad_request":
        content = json.dumps({"model": MODEL, "messages": []}).encode()
    elif kind.name == "bad_key":
        headers["authorization"] = "Bearer sk-not-a-key-" + secrets.token_hex(8)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", base + "/chat/completions", content=content, headers=headers) as r:
                rid = r.headers.get("x-request-id")
                if r.status_code != 200:
                    await r.aread()
                    dt = time.perf_counter() - t0
                    if kind.expect == f"status:{r.status_code}":
                        try:
                            err = r.json()["error"]
                            assert isinstance(err["message"], str) and err["code"]
                        except (ValueError, KeyError, TypeError, AssertionError):
                            return Outcome(kind.name, "malformed_json", dt, None, rid, r.text[:80])
                        return Outcome(kind.name, "rejected_4xx", dt, None, rid)
                    cls = "http_5xx" if r.status_code >= 500 else "http_other"
                    return Outcome(kind.name, cls, dt, None, rid, f"HTTP {r.status_code}: {r.text[:120]}")
                if kind.expect.startswith("status:"):
                    await r.aread()
                    return Outcome(kind.name, "http_other", time.perf_counter() - t0, None, rid,
                                   f"HTTP 200 where {kind.expect[7:]} was expected")
                if kind.stream:
                    if not r.headers.get("content-type", "").startswith("text/event-stream"):
                        await r.aread()
                        return Outcome(kind.name, "malformed_sse", time.perf_counter() - t0, None, rid,
                                       f"content-type {r.headers.get('content-type')!r}")
                    return await parse_sse(r, kind, rng, t0)
                raw = await r.aread()
                dt = time.perf_counter() - t0
                try:
                    data = json.loads(raw)
                    choice = data["choices"][0]
                    text = choice["message"]["content"] or ""
                    finish = choice["finish_reason"]
                except (ValueError, KeyError, IndexError, TypeError):
                    return Outcome(kind.name, "malformed_json", dt, None, rid, raw[:80].decode(errors="replace"))
                cls, detail = check_answer(kind, text, finish, data.get("hegui"))
                return Outcome(kind.name, cls, dt, dt, rid, detail)
    except TimeoutError:
        return Outcome(kind.name, "timeout", time.perf_counter() - t0, None, None, f"no answer within {timeout:g} s")
    except httpx.TimeoutException as exc:
        return Outcome(kind.name, "timeout", time.perf_counter() - t0, None, None, type(exc).__name__)
    except httpx.ConnectError as exc:
        return Outcome(kind.name, "connect_error", time.perf_counter() - t0, None, None, str(exc)[:120])
    except httpx.HTTPError as exc:
        return Outcome(kind.name, "transport_error", time.perf_counter() - t0, None, None,
                       f"{type(exc).__name__}: {exc}"[:160])


# --------------------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


async def drive(base: str, args: argparse.Namespace, load: LoadResult) -> None:
    import httpx

    weights = [k.weight for k in KINDS]
    deadline = time.monotonic() + args.minutes * 60
    limits = httpx.Limits(max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency)
    timeout = httpx.Timeout(args.timeout, connect=10)
    latency_s = args.model_latency_ms / 1000

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        async def worker(i: int) -> None:
            rng = random.Random(args.seed * 1000 + i)
            while time.monotonic() < deadline:
                kind = rng.choices(KINDS, weights)[0]
                load.outcomes.append(await one_request(client, base, kind, rng, latency_s, args.timeout))

        load.started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
        load.ended = time.monotonic()


# --------------------------------------------------------------------------------------- /proc sampling


def children_of(pid: int) -> list[int]:
    """The process and all its descendants (uvicorn's workers when --workers > 1)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[ppid].append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_ticks"] = int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        pass
    return out


@dataclass
class Sample:
    t: float
    rss_kb: int
    fds: int
    threads: int
    cpu_s: float
    upstream_rss_kb: int


class Sampler(threading.Thread):
    def __init__(self, gateway_pid: int, upstream_pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.gateway_pid, self.upstream_pid, self.every = gateway_pid, upstream_pid, every
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._stop_event = threading.Event()

    def sample(self) -> Sample:
        rss = fds = threads = ticks = 0
        for pid in children_of(self.gateway_pid):
            st = proc_status(pid)
            rss += st.get("VmRSS", 0)
            fds += st.get("fds", 0)
            threads += st.get("Threads", 0)
            ticks += st.get("cpu_ticks", 0)
        up = proc_status(self.upstream_pid).get("VmRSS", 0)
        return Sample(time.monotonic() - self.t0, rss, fds, threads, ticks / os.sysconf("SC_CLK_TCK"), up)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append(self.sample())
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


# --------------------------------------------------------------------------------------- processes


def die(message: str) -> SystemExit:
    """Cannot start: one line (or the log's tail) on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(2)


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise die(f"{url}: the process exited with status {proc.returncode} before serving:\n{tail}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise die(f"{url} did not come up within {timeout:g} s")


def fresh_postgres(url: str) -> tuple[str, Any]:
    """A new database of our own on the server of ``url`` (which is only used to create it), and a
    function that drops exactly that database."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() != "postgresql":
        raise die(f"--ledger-url must be a PostgreSQL URL, not {u.render_as_string()}")
    name = f"hegui_soak_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}"
    admin = sa.create_engine(u, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise die(f"cannot create a database on {u.render_as_string()}: "
                  f"{str(getattr(exc, 'orig', None) or exc).splitlines()[0]}") from None

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return u.set(database=name).render_as_string(hide_password=False), drop


def code_version() -> dict[str, Any]:
    """Which code is under test: the git commit, whether the tree has local changes, and a hash of
    every source file of the installed hegui package (to tell whether it changed during the run)."""
    import hashlib

    import hegui

    root = Path(next(iter(hegui.__path__)))
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".yaml", ".tsv", ".txt", ".ini", ".mako"):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    out: dict[str, Any] = {"source_sha256": digest.hexdigest()[:16]}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(root)]
        out["commit"] = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                       timeout=10).stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True,
                                 timeout=10).stdout.split("\n")
        out["local_changes"] = [line[3:] for line in changed if line.strip()]
    return out


def hegui_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from hegui.cli import main; main()", *args]


# Launches `hegui serve` so that SIGUSR2 first starts tracemalloc (at the end of warm-up, so the
# models and lexicons loaded at start are not traced and tracing stays cheap), then, on each later
# signal, writes the allocation sites of what was allocated since then and is still alive: what grows.
TRACEMALLOC_WRAPPER = r"""
import os, signal, sys, tracemalloc, linecache
def _dump(*_):
    if not tracemalloc.is_tracing():
        tracemalloc.start(int(os.environ.get("SOAK_TRACEMALLOC_FRAMES", "10")))
        return
    snap = tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, linecache.__file__)])
    with open(os.environ["SOAK_TRACEMALLOC_OUT"], "a") as f:
        cur, peak = tracemalloc.get_traced_memory()
        f.write(f"=== allocated since warm-up and still alive: {cur/1e6:.2f} MB (peak {peak/1e6:.1f} MB)\n")
        for stat in snap.statistics("lineno")[:25]:
            f.write(f"{stat}\n")
        f.write("--- by traceback\n")
        for stat in snap.statistics("traceback")[:8]:
            f.write(f"{stat}\n")
            for line in stat.traceback.format()[-30:]:
                f.write(f"    {line}\n")
signal.signal(signal.SIGUSR2, _dump)
sys.argv = ["hegui"] + sys.argv[1:]
from hegui.cli import main
main()
"""



def stop_process(p: subprocess.Popen[bytes], sig: int = signal.SIGINT, wait: float = 20) -> int | None:
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


# --------------------------------------------------------------------------------------- the ledger


def reconcile(ledger_url: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """Compare the ledger's rows with what the clients saw, per request id."""
    import sqlalchemy as sa

    from hegui.ledger.models import Decision
    from hegui.ledger.store import Ledger

    table = Decision.__table__
    per_rid: dict[str, Counter[str]] = defaultdict(Counter)
    final_stream: dict[str, dict[str, Any]] = {}
    by_kind: Counter[str] = Counter()
    with Ledger.open(ledger_url, create=False) as ledger:
        open_streams = len(ledger.open_streams())
        q = sa.select(table.c.request_id, table.c.kind, table.c.direction, table.c.stream)
        with ledger.engine.connect() as conn:
            for rid, kind, direction, stream in conn.execute(q):
                key = f"{kind}:{direction}"
                per_rid[rid][key] += 1
                by_kind[key] += 1
                if key == "decision:output" and stream:
                    final_stream[rid] = stream
    rows = sum(by_kind.values())
    problems: Counter[str] = Counter()
    examples: dict[str, str] = {}
    answered = 0
    seen: set[str] = set()
    disconnects = disconnects_recorded = disconnects_completed = 0

    def problem(name: str, rid: str) -> None:
        problems[name] += 1
        examples.setdefault(name, rid)

    for o in outcomes:
        if o.cls == "rejected_4xx" or o.request_id is None:
            continue
        if o.cls not in EXPECTED and o.cls not in ("wrong_outcome", "leak", "malformed_sse", "malformed_json"):
            continue
        answered += 1
        rid = o.request_id
        seen.add(rid)
        c = per_rid.get(rid, Counter())
        kind = next(k for k in KINDS if k.name == o.kind)
        if c["decision:input"] != 1:
            problem(f"input decisions != 1 ({c['decision:input']})", rid)
        refused_at_input = kind.name.startswith("refuse_input")
        want_out = 0 if refused_at_input else 1
        if c["decision:output"] != want_out:
            problem(f"output decisions != {want_out} ({c['decision:output']})", rid)
        want_open = 1 if kind.stream and not refused_at_input else 0
        if c["stream_open:output"] != want_open:
            problem(f"stream_open rows != {want_open} ({c['stream_open:output']})", rid)
        if o.cls == "disconnected":
            disconnects += 1
            stream = final_stream.get(rid)
            if stream is None:
                continue  # counted above: no output decision
            if stream.get("client_disconnected"):
                disconnects_recorded += 1
            elif stream.get("sent_chars", 0) >= len(BENIGN) and not stream.get("upstream_error"):
                # the gateway had sent the whole answer before the client left: nothing was lost
                disconnects_completed += 1
            else:
                problem("disconnect recorded neither as client_disconnected nor as complete", rid)
    orphans = [rid for rid in per_rid if rid not in seen]
    if orphans:
        problems["rows for requests no client saw answered"] = len(orphans)
        examples.setdefault("rows for requests no client saw answered", orphans[0])
    if open_streams:
        problems["streams left open"] = open_streams
    return {"rows": rows, "rows_by_kind": dict(sorted(by_kind.items())), "answered": answered,
            "request_ids_in_ledger": len(per_rid), "open_streams": open_streams, "disconnects": disconnects,
            "disconnects_recorded": disconnects_recorded, "disconnects_completed": disconnects_completed,
            "problems": dict(problems), "examples": examples,
            "ok": not problems}


def verify_ledger(ledger_url: str, env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    p = subprocess.run(hegui_cmd("ledger", "verify", "--url", ledger_url, "--json"), env=env,
                       capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    try:
        report = json.loads(p.stdout)
    except ValueError:
        report = {"ok": False, "rows_checked": 0, "problems": [p.stderr.strip()[-300:] or p.stdout[-300:]]}
    return {"exit": p.returncode, "ok": p.returncode == 0 and bool(report.get("ok")),
            "rows_checked": report.get("rows_checked", 0), "problems": report.get("problems", [])[:5],
            "seconds": round(seconds, 2)}


def gateway_metrics(base: str) -> dict[str, float]:
    """Requests by route and status, fail-closed and upstream errors, from /metrics."""
    import httpx

    try:
        text = httpx.get(base + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'(hegui_requests_total|hegui_fail_closed_total|hegui_upstream_errors_total|'
                     r'hegui_stream_cuts_total)\{?([^}]*)\}? ([0-9.e+]+)$', line)
        if m:
            name, labels, value = m.groups()
            out[f"{name}{{{labels}}}" if labels else name] = float(value)
    return out


def log_problems(path: Path) -> list[str]:
    """Lines of the gateway's log that say something went wrong."""
    if not path.exists():
        return []
    bad = []
    for line in path.read_text(errors="replace").splitlines():
        if re.search(r"\b(ERROR|CRITICAL|Traceback)\b", line) or re.search(r"^\w*Error\b", line):
            bad.append(line[:300])
    return bad


# --------------------------------------------------------------------------------------- report


def rss_figures(samples: list[Sample], warmup_s: float, load_s: float) -> dict[str, Any]:
    during = [s for s in samples if s.t <= load_s + 0.5]
    after = [s for s in during if s.t >= warmup_s]
    if not after:
        return {}
    base, end = after[0], after[-1]
    xs = [s.t for s in after]
    ys = [s.rss_kb / 1024 for s in after]
    slope = 0.0
    if len(after) > 2:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 60 if var else 0.0
    return {
        "start_mb": round(samples[0].rss_kb / 1024, 1),
        "after_warmup_mb": round(base.rss_kb / 1024, 1), "after_warmup_at_s": round(base.t, 1),
        "end_mb": round(end.rss_kb / 1024, 1), "end_at_s": round(end.t, 1),
        "max_mb": round(max(s.rss_kb for s in during) / 1024, 1),
        "settled_mb": round(samples[-1].rss_kb / 1024, 1),
        "ratio_end_to_warmup": round(end.rss_kb / base.rss_kb, 4) if base.rss_kb else float("nan"),
        "slope_mb_per_min_after_warmup": round(slope, 3),
        "fds_after_warmup": base.fds, "fds_end": end.fds, "fds_settled": samples[-1].fds,
        "threads_after_warmup": base.threads, "threads_end": end.threads,
        "upstream_rss_after_warmup_mb": round(base.upstream_rss_kb / 1024, 1),
        "upstream_rss_end_mb": round(end.upstream_rss_kb / 1024, 1),
        "gateway_cpu_s": round(end.cpu_s - samples[0].cpu_s, 1),
        "samples": [[round(s.t, 1), round(s.rss_kb / 1024, 2), s.fds, s.threads] for s in samples],
    }


def summarise(load: LoadResult, warmup_s: float) -> dict[str, Any]:
    duration = load.ended - load.started
    per_kind: dict[str, Any] = {}
    classes: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    for kind in KINDS:
        mine = [o for o in load.outcomes if o.kind == kind.name]
        lat = [o.seconds for o in mine if o.cls in EXPECTED]
        firsts = [o.first for o in mine if o.first is not None and o.cls in EXPECTED]
        cls = Counter(o.cls for o in mine)
        per_kind[kind.name] = {
            "n": len(mine), "expected": sum(v for c, v in cls.items() if c in EXPECTED),
            "unexpected": sum(v for c, v in cls.items() if c not in EXPECTED), "classes": dict(cls),
            "p50_ms": round(pct(lat, 50) * 1000, 1), "p99_ms": round(pct(lat, 99) * 1000, 1),
            "first_p50_ms": round(pct(firsts, 50) * 1000, 1) if kind.stream and firsts else None,
        }
        classes.update(cls)
    for o in load.outcomes:
        if o.cls not in EXPECTED and len(examples[o.cls]) < 3:
            examples[o.cls].append(f"{o.kind}: {o.detail}")
    served = [o.seconds for o in load.outcomes
              if o.cls in ("ok", "masked", "refused", "cut") and not o.kind.startswith("bad")]
    finished_late = sum(1 for o in load.outcomes if o.kind == "disconnect" and o.cls == "ok")
    return {
        "duration_s": round(duration, 1), "warmup_s": round(warmup_s, 1), "requests": len(load.outcomes),
        "throughput_rps": round(len(load.outcomes) / duration, 1) if duration else 0.0,
        "p50_ms": round(pct(served, 50) * 1000, 1), "p99_ms": round(pct(served, 99) * 1000, 1),
        "expected": sum(v for c, v in classes.items() if c in EXPECTED),
        "unexpected": sum(v for c, v in classes.items() if c not in EXPECTED),
        "classes": dict(classes), "unexpected_examples": dict(examples), "kinds": per_kind,
        "disconnect_streams_finished_before_leaving": finished_late,
    }


def print_report(fig: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(140, Console().width))
    load = fig["load"]
    t = Table(title=f"hegui soak: {load['duration_s']:.0f} s at concurrency {args.concurrency} "
                    f"({load['requests']} requests, {load['throughput_rps']} req/s)")
    for col in ("kind", "requests", "expected", "unexpected", "p50 ms", "p99 ms", "first chunk p50 ms",
                "outcomes"):
        t.add_column(col, justify="left" if col in ("kind", "outcomes") else "right")
    for name, k in load["kinds"].items():
        t.add_row(name, str(k["n"]), str(k["expected"]), f"[red]{k['unexpected']}[/]" if k["unexpected"] else "0",
                  f"{k['p50_ms']:.1f}", f"{k['p99_ms']:.1f}",
                  "" if k["first_p50_ms"] is None else f"{k['first_p50_ms']:.1f}",
                  ", ".join(f"{c} {v}" for c, v in sorted(k["classes"].items())))
    t.add_row("[b]all[/]", str(load["requests"]), str(load["expected"]), str(load["unexpected"]),
              f"{load['p50_ms']:.1f}", f"{load['p99_ms']:.1f}", "", "p50/p99 over answered completions")
    con.print(t)

    o = Table(title="outcomes")
    o.add_column("class")
    o.add_column("kind of outcome")
    o.add_column("count", justify="right")
    o.add_column("examples")
    for c in EXPECTED:
        o.add_row(c, "expected", str(load["classes"].get(c, 0)), "")
    for c in UNEXPECTED:
        n = load["classes"].get(c, 0)
        o.add_row(c, "[red]unexpected[/]" if n else "unexpected", str(n),
                  "; ".join(load["unexpected_examples"].get(c, [])))
    con.print(o)

    s = Table(title="memory, ledger and aims")
    s.add_column("figure")
    s.add_column("value")
    r = fig["rss"]
    if r:
        s.add_row("gateway RSS start / after warm-up / end / max / settled",
                  f"{r['start_mb']} / {r['after_warmup_mb']} (t={r['after_warmup_at_s']} s) / {r['end_mb']} "
                  f"(t={r['end_at_s']} s) / {r['max_mb']} / {r['settled_mb']} MB")
        s.add_row("RSS end / after warm-up", f"{r['ratio_end_to_warmup']:.3f} (aim <= {1 + args.max_rss_drift:.2f})")
        s.add_row("RSS trend after warm-up", f"{r['slope_mb_per_min_after_warmup']:+.2f} MB/min")
        s.add_row("gateway fds / threads (after warm-up → end → settled)",
                  f"{r['fds_after_warmup']} → {r['fds_end']} → {r['fds_settled']} fds; "
                  f"{r['threads_after_warmup']} → {r['threads_end']} threads")
        s.add_row("gateway CPU", f"{r['gateway_cpu_s']} s "
                  f"({r['gateway_cpu_s'] / max(1, load['requests']) * 1000:.2f} ms a request)")
        s.add_row("upstream RSS after warm-up / end",
                  f"{r['upstream_rss_after_warmup_mb']} / {r['upstream_rss_end_mb']} MB")
    v = fig["verify"]
    s.add_row("hegui ledger verify", ("[green]intact[/]" if v["ok"] else f"[red]FAILED (exit {v['exit']})[/] "
              + "; ".join(map(str, v["problems"]))) + f", {v['rows_checked']} rows checked in {v['seconds']} s")
    rec = fig["ledger"]
    s.add_row("ledger rows", f"{rec['rows']}: " + ", ".join(f"{k} {n}" for k, n in rec["rows_by_kind"].items()))
    s.add_row("answered requests / request ids in the ledger", f"{rec['answered']} / {rec['request_ids_in_ledger']}")
    s.add_row("client disconnects: recorded as client_disconnected / gateway had sent it all / total",
              f"{rec['disconnects_recorded']} / {rec['disconnects_completed']} / {rec['disconnects']}"
              f" (and {load['disconnect_streams_finished_before_leaving']} streams ended before the client left)")
    s.add_row("ledger reconciliation", "[green]ok[/]" if rec["ok"] else "[red]" + "; ".join(
        f"{k}: {n} (e.g. request {rec['examples'].get(k, '?')})" for k, n in rec["problems"].items()) + "[/]")
    m = fig["metrics"]
    statuses: Counter[str] = Counter()
    for key, val in m.items():
        st = re.search(r'status="(\d+)"', key)
        if key.startswith("hegui_requests_total") and st:
            statuses[st.group(1)] += int(val)
    s.add_row("gateway /metrics requests by status", ", ".join(f"{k}: {n}" for k, n in sorted(statuses.items())))
    fc = {k: int(v) for k, v in m.items() if k.startswith(("hegui_fail_closed", "hegui_upstream_errors")) and v}
    s.add_row("gateway fail-closed / upstream errors", ", ".join(f"{k} {n}" for k, n in fc.items()) or "none")
    s.add_row("gateway log errors", f"{len(fig['log_problems'])}" + (
        f": {fig['log_problems'][0][:150]}" if fig["log_problems"] else ""))
    s.add_row("gateway exit status", str(fig["gateway_exit"]))
    code = fig["code"]
    changed = fig["code_at_end"] != code["source_sha256"]
    s.add_row("code under test", f"commit {code.get('commit', '?')}, {len(code.get('local_changes', []))} files with "
              f"local changes, sources {code['source_sha256']}" + (
                  " [red](the sources changed during the run)[/]" if changed else ""))
    for name, ok in fig["aims"].items():
        s.add_row(f"aim: {name}", "[green]met[/]" if ok else "[red]NOT met[/]")
    con.print(s)


# --------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="How long the load runs (default 10).")
    ap.add_argument("--concurrency", type=int, default=32, help="Clients sending at once (default 32).")
    ap.add_argument("--workers", type=int, default=1,
                    help="`hegui serve --workers` (default 1); RSS then adds up all worker processes.")
    ap.add_argument("--ledger-url", help="PostgreSQL server to use instead of SQLite, e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test: a new database hegui_soak_<time>_<random> "
                    "is created there (the URL's own database is only used to connect) and dropped at the end "
                    "unless --keep.")
    ap.add_argument("--config", type=Path,
                    help="hegui.yaml for detectors, policy and labels (default: embedded defaults); its ledger "
                    "and upstreams are replaced.")
    ap.add_argument("--token-delay-ms", type=float, default=2.0,
                    help="Demo model's pause between streamed tokens (default 2; a 340-character answer is "
                    "about 170 tokens).")
    ap.add_argument("--model-latency-ms", type=float, default=20.0,
                    help="Fixed time the demo model waits before each answer (/sleep; default 20).")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="Seconds a request may take before it counts as a timeout (default 30).")
    ap.add_argument("--sample-seconds", type=float, default=2.0, help="RSS sampling interval (default 2).")
    ap.add_argument("--warmup-seconds", type=float,
                    help="Warm-up (default: 10%% of the run, at least 30 s or a quarter of a run shorter "
                    "than 2 minutes).")
    ap.add_argument("--max-rss-drift", type=float, default=0.10,
                    help="Aim: RSS at the end <= (1 + this) x RSS after warm-up (default 0.10).")
    ap.add_argument("--settle-seconds", type=float, default=5.0,
                    help="Pause after the load before the ledger checks (then up to 60 s more while streams "
                    "are still open; default 5).")
    ap.add_argument("--no-account-gate", action="store_true",
                    help="Turn the account gate off (accounts.enabled: false). By default it is on, with "
                    "the ladder off and no rate limits: one bench account sends all the load, refusals included.")
    ap.add_argument("--seed", type=int, default=1, help="Seed of the request mix (default 1).")
    ap.add_argument("--json", type=Path, metavar="PATH", help="Also write every figure (RSS samples included) here.")
    ap.add_argument("--keep", action="store_true",
                    help="Keep the temp folder (config, logs, SQLite ledger) or the PostgreSQL database.")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="Debug memory growth: start tracemalloc in the gateway at the end of warm-up and write "
                    "where what was allocated since then and is still alive comes from (by line and by traceback "
                    "of $SOAK_TRACEMALLOC_FRAMES frames, default 10) to tracemalloc.txt in the temp folder, mid-run "
                    "and at the end; implies --keep. Tracing slows the gateway: the figures of such a run are not "
                    "comparable with others.")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.concurrency < 1 or args.workers < 1:
        ap.error("--minutes must be > 0, --concurrency and --workers >= 1")
    if args.tracemalloc:
        args.keep = True
    return args


def warmup_for(load_s: float, given: float | None) -> float:
    if given is not None:
        return given
    floor = 30.0 if load_s >= 120 else load_s / 4
    return max(0.1 * load_s, floor)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import yaml

    from hegui.ledger.store import Ledger

    tmp = Path(tempfile.mkdtemp(prefix="hegui-soak-"))
    drop_db = None
    if args.ledger_url:
        ledger_url, drop_db = fresh_postgres(args.ledger_url)
    else:
        ledger_url = f"sqlite:///{tmp}/soak.db"
    up_port, gw_port = free_port(), free_port()
    base_cfg: dict[str, Any] = {}
    if args.config:
        base_cfg = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        for key in ("policy",):
            if isinstance(base_cfg.get(key), str):
                base_cfg[key] = str((args.config.parent / base_cfg[key]).resolve())
    accounts = dict(base_cfg.get("accounts") or {})
    if args.no_account_gate:
        accounts["enabled"] = False
    else:
        # one bench account sends everything: thousands of requests a minute, 8 % of them refused
        # on purpose, which the ladder would answer by suspending it within seconds
        accounts["ladder"] = {**(accounts.get("ladder") or {}), "enabled": False}
        accounts["rate_limits"] = {}
    cfg = {**base_cfg,
           "accounts": accounts,
           "ledger": {**base_cfg.get("ledger", {}), "url": ledger_url},
           "upstreams": [{"name": "demo-http", "base_url": f"http://127.0.0.1:{up_port}/v1", "models": ["*"],
                          "timeout": args.timeout}]}
    cfg_path = tmp / "hegui.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    # `hegui serve` wants secret salts for hashing personal data: a random pair for this run
    for var in ("HEGUI_PII_SALT", "HEGUI_IDENTIFIER_SALT"):
        os.environ.setdefault(var, secrets.token_hex(32))
    with Ledger.open(ledger_url) as ledger:
        ledger.ensure_account(BENCH_ACCOUNT)
        ledger.ensure_api_key(BENCH_ACCOUNT, BENCH_KEY)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    up_log, gw_log = tmp / "upstream.log", tmp / "gateway.log"
    procs: list[subprocess.Popen[bytes]] = []
    load_s = args.minutes * 60
    warmup_s = warmup_for(load_s, args.warmup_seconds)
    fig: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                           "ledger_url": ledger_url.split("@")[-1], "tmp": str(tmp), "code": code_version()}
    try:
        with up_log.open("wb") as ul, gw_log.open("wb") as gl:
            upstream = subprocess.Popen(
                [sys.executable, "-m", "hegui.gateway.demo_upstream", "--port", str(up_port),
                 "--token-delay-ms", str(args.token_delay_ms)], env=env, stdout=ul, stderr=subprocess.STDOUT)
            procs.append(upstream)
            serve = ["serve", "--config", str(cfg_path), "--port", str(gw_port), "--log-level", "warning",
                     "--workers", str(args.workers)]
            gw_env = dict(env)
            if args.tracemalloc:
                gw_env["SOAK_TRACEMALLOC_OUT"] = str(tmp / "tracemalloc.txt")
                cmd = [sys.executable, "-c", TRACEMALLOC_WRAPPER, *serve]
            else:
                cmd = hegui_cmd(*serve)
            gateway = subprocess.Popen(cmd, env=gw_env, stdout=gl, stderr=subprocess.STDOUT)
            procs.append(gateway)
        wait_http(f"http://127.0.0.1:{up_port}/healthz", upstream, up_log)
        wait_http(f"http://127.0.0.1:{gw_port}/readyz", gateway, gw_log)
        base = f"http://127.0.0.1:{gw_port}/v1"
        print(f"soak: {args.minutes:g} min at concurrency {args.concurrency}, warm-up {warmup_s:.0f} s; "
              f"gateway pid {gateway.pid} on {base}, ledger {fig['ledger_url']}, folder {tmp}", flush=True)

        sampler = Sampler(gateway.pid, upstream.pid, args.sample_seconds)
        sampler.start()
        load = LoadResult()
        timers: list[threading.Timer] = []
        if args.tracemalloc:
            for at in (warmup_s, (warmup_s + load_s) / 2):
                timer = threading.Timer(at, lambda: os.kill(gateway.pid, signal.SIGUSR2))
                timer.daemon = True
                timer.start()
                timers.append(timer)
        progress = threading.Thread(target=report_progress, args=(sampler, load, load_s), daemon=True)
        progress.start()
        asyncio.run(drive(base, args, load))
        load_end = time.monotonic() - sampler.t0

        # settle: let background writes finish and any stream still closing write its record
        time.sleep(args.settle_seconds)
        with Ledger.open(ledger_url, create=False) as ledger:
            deadline = time.monotonic() + 60
            while ledger.open_streams() and time.monotonic() < deadline:
                time.sleep(1)
        if args.tracemalloc:  # the last dump with nothing in flight: what is left is what stays
            os.kill(gateway.pid, signal.SIGUSR2)
            time.sleep(5)
        time.sleep(args.sample_seconds)
        sampler.stop()
        sampler.samples.append(sampler.sample())

        fig["code_at_end"] = code_version()["source_sha256"]
        fig["load"] = summarise(load, warmup_s)
        fig["rss"] = rss_figures(sampler.samples, warmup_s, load_end)
        fig["metrics"] = gateway_metrics(f"http://127.0.0.1:{gw_port}")
        fig["verify"] = verify_ledger(ledger_url, env)
        try:
            fig["ledger"] = reconcile(ledger_url, load.outcomes)
        except Exception as exc:  # e.g. the ledger cannot be opened: report it, do not lose the figures
            fig["ledger"] = {"rows": 0, "rows_by_kind": {}, "answered": 0, "request_ids_in_ledger": 0,
                             "open_streams": 0, "disconnects": 0, "disconnects_recorded": 0,
                             "disconnects_completed": 0, "examples": {}, "ok": False,
                             "problems": {f"cannot read the ledger: {str(exc).splitlines()[0]}": 1}}
        fig["gateway_exit"] = stop_process(gateway)
        stop_process(upstream)
        fig["log_problems"] = log_problems(gw_log)
        rss = fig["rss"]
        fig["aims"] = {
            "no unexpected outcomes": fig["load"]["unexpected"] == 0,
            f"RSS end within {args.max_rss_drift:.0%} of after warm-up":
                bool(rss) and rss["ratio_end_to_warmup"] <= 1 + args.max_rss_drift,
            "hegui ledger verify passes": fig["verify"]["ok"],
            "ledger reconciles with the answers": fig["ledger"]["ok"],
            "no errors in the gateway log": not fig["log_problems"],
        }
        fig["ok"] = all(fig["aims"].values())
        print_report(fig, args)
        if args.json:
            args.json.write_text(json.dumps(fig, ensure_ascii=False, indent=1), encoding="utf-8")
        return 0 if fig["ok"] else 1
    finally:
        for p in reversed(procs):
            stop_process(p)
        if drop_db is not None and not args.keep:
            drop_db()
        if args.keep:
            print(f"kept: {tmp}" + (f" and database {ledger_url.rsplit('/', 1)[-1]}" if drop_db else ""))
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def report_progress(sampler: Sampler, load: LoadResult, load_s: float) -> None:
    """A line a minute (or every tenth of a short run), so a long run shows it is alive."""
    every = min(60.0, max(5.0, load_s / 10))
    t0 = time.monotonic()
    while time.monotonic() - t0 < load_s:
        time.sleep(every)
        s = sampler.samples[-1] if sampler.samples else None
        bad = sum(1 for o in list(load.outcomes) if o.cls not in EXPECTED)
        rss = f"{s.rss_kb / 1024:.1f} MB, {s.fds} fds" if s else "?"
        print(f"  t={time.monotonic() - t0:5.0f} s  requests {len(load.outcomes):7d}  unexpected {bad:5d}  "
              f"gateway RSS {rss}", flush=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
