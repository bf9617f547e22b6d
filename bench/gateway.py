"""What hegui adds to a request: the gateway vs. calling the same upstream directly, in one run.

Starts the demo upstream (token delay 0) and ``hegui serve`` (SQLite ledger in a temp folder,
the configured detectors) as separate processes on loopback, then drives both from a third process
with the same load (concurrency 8; each phase bounded by a request count and a time limit). The
workers alternate between direct and gateway requests, so both see the same load on the machine;
``req/s`` is what a target sustains at this concurrency (requests / time spent waiting on it).
The prompt is 1,000 Chinese characters and the model answers it back in full, so input and output
moderation both see 1,000 characters. Prints p50/p99 for direct and gateway requests and the
difference (the time hegui adds), for non-streamed requests and for streams (also per chunk).

    python bench/gateway.py [--requests 400] [--seconds 20] [--concurrency 8] [--config hegui.yaml]

With ``HEGUI_BENCH_LITELLM=/path/to/litellm`` (a LiteLLM proxy binary in its own environment) the
LiteLLM proxy, without guardrails, runs in front of the same upstream as a third target in the same
rounds, so both gateways are measured against one direct baseline on one load.

Each phase is run one request at a time (latency without queueing) and at ``--concurrency`` (2,000
requests and about 60 s in all by default). ``CPU per request`` is read from ``/proc`` for the
gateway and upstream processes: unlike latency, it hardly depends on what else the machine runs.

Aim (issue 15): <= 3 ms gateway CPU per non-streamed request and >= 0.8x direct throughput at
concurrency 8; <= 15 ms CPU per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_KEY = "sk-hegui-bench"
PARAGRAPH = (
    "人工智能技术的发展为社会带来了新的机遇，也提出了新的治理问题。服务提供者应当依法开展训练数据处理活动，"
    "使用具有合法来源的数据和基础模型，采取有效措施提高训练数据质量，增强训练数据的真实性、准确性、客观性和多样性。"
    "在提供服务的过程中，应当明确并公开服务的适用人群、场合和用途，指导使用者科学理性认识和依法使用生成式人工智能技术。"
)


def prompt_text(n: int = 1000) -> str:
    return (PARAGRAPH * (n // len(PARAGRAPH) + 1))[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout:g} s")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


# ---------------------------------------------------------------------------- load driver (own process)


async def one(client: Any, base: str, key: str | None, body: dict[str, Any]) -> tuple[float, int, float]:
    """Returns (seconds to the last byte, chunks received, seconds to the first content chunk)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    t0 = time.perf_counter()
    if not body.get("stream"):
        r = await client.post(base + "/chat/completions", json=body, headers=headers)
        r.raise_for_status()
        r.json()
        dt = time.perf_counter() - t0
        return dt, 1, dt
    chunks = 0
    first = 0.0
    async with client.stream("POST", base + "/chat/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                if '"content":"' in line and '"content":""' not in line:
                    chunks += 1
                    if not first:
                        first = time.perf_counter() - t0
    return time.perf_counter() - t0, chunks, first


async def phase(targets: dict[str, tuple[str, str | None]], stream: bool, requests: int, seconds: float,
                conc: int) -> dict[str, dict[str, Any]]:
    """Each worker alternates between the targets (direct, hegui), so both see the same machine load."""
    import httpx

    body = {"model": "hegui-demo", "stream": stream,
            "messages": [{"role": "user", "content": "/say " + prompt_text()}]}
    stats: dict[str, dict[str, Any]] = {
        name: {"lat": [], "first": [], "chunks": [], "errors": 0, "busy": 0.0} for name in targets
    }
    issued = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=2 * conc, max_keepalive_connections=2 * conc)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for base, key in targets.values():  # warm up connections and caches
            for _ in range(conc):
                await one(client, base, key, body)

        async def worker(offset: int) -> None:
            nonlocal issued
            names = list(targets)
            i = offset
            while issued < requests * len(names) and time.monotonic() < deadline:
                issued += 1
                name = names[i % len(names)]
                i += 1
                base, key = targets[name]
                st = stats[name]
                try:
                    dt, chunks, first = await one(client, base, key, body)
                except Exception:
                    st["errors"] += 1
                    continue
                st["lat"].append(dt)
                st["first"].append(first)
                st["chunks"].append(chunks)
                st["busy"] += dt

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(conc)))
        wall = time.perf_counter() - t0
    for st in stats.values():
        st["n"] = len(st["lat"])
        st["wall"] = wall
        # requests per second this target would sustain alone at this concurrency
        st["rps"] = conc * st["n"] / st["busy"] if st["busy"] else 0.0
        st["chunks"] = statistics.mean(st["chunks"]) if st["chunks"] else 0
    return stats


def drive(args: argparse.Namespace) -> None:
    targets = {"direct": (args.direct, None), "hegui": (args.gateway, BENCH_KEY)}
    if args.litellm:
        targets["litellm"] = (args.litellm, "sk-bench-litellm")
    res = asyncio.run(phase(targets, args.stream, args.requests, args.seconds, args.concurrency))
    json.dump(res, sys.stdout)


# ---------------------------------------------------------------------------- orchestration


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def report_phase(title: str, res: dict[str, Any], cpu: dict[str, float], cpu_up: float) -> dict[str, float]:
    """Print one phase: every target's latency, and what each gateway adds over direct."""
    ms = 1000.0
    d = res["direct"]
    print(f"\n{title}")
    for name, r in res.items():
        print(f"  {name:8}{r['n']:>6}{r['errors']:>5}{r['rps']:>10.1f}"
              f"{pct(r['lat'], 50) * ms:>10.2f}{pct(r['lat'], 99) * ms:>10.2f}")
    out: dict[str, float] = {}
    total = sum(r["n"] for r in res.values())
    for name, h in res.items():
        if name == "direct":
            continue
        add50 = (pct(h["lat"], 50) - pct(d["lat"], 50)) * ms
        add99 = (pct(h["lat"], 99) - pct(d["lat"], 99)) * ms
        tput = h["rps"] / d["rps"] if d["rps"] and h["rps"] else float("nan")
        gw_cpu = cpu[name] / h["n"] * ms if h["n"] else float("nan")
        print(f"  {name} added: p50 {add50:.2f} ms, p99 {add99:.2f} ms; throughput {name}/direct {tput:.2f}; "
              f"CPU per request {gw_cpu:.2f} ms")
        if d["chunks"] > 1:
            tokens = d["chunks"]  # the upstream's chunks (the gateway may merge some on the way)
            first = (pct(h["first"], 50) - pct(d["first"], 50)) * ms
            print(f"    per upstream token ({tokens:.0f} a stream; the client got {h['chunks']:.0f} chunks): "
                  f"added p50 {add50 / tokens:.3f} ms; time to first chunk added p50 {first:.2f} ms")
        out.update({f"{name}_add50": add50, f"{name}_add99": add99, f"{name}_tput": tput, f"{name}_cpu": gw_cpu})
    print(f"  upstream CPU per request {cpu_up / total * ms if total else float('nan'):.2f} ms")
    return out


def start_litellm(binary: str, up_port: int, port: int, tmp: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The LiteLLM proxy (no guardrails) in front of the same upstream."""
    import yaml

    cfg = {"model_list": [{"model_name": "hegui-demo", "litellm_params": {
        "model": "openai/hegui-demo", "api_base": f"http://127.0.0.1:{up_port}/v1", "api_key": "unused"}}],
        "general_settings": {"master_key": "sk-bench-litellm"}, "litellm_settings": {"telemetry": False}}
    path = Path(tmp) / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return subprocess.Popen([binary, "--config", str(path), "--port", str(port), "--num_workers", "1"],
                            env={**env, "LITELLM_LOG": "ERROR"}, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400,
                    help="Requests per target in each concurrent phase (2 targets x 2 phases).")
    ap.add_argument("--seconds", type=float, default=20.0, help="Time limit of each concurrent phase.")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--serial-requests", type=int, default=100,
                    help="Requests per target in each one-at-a-time phase (latency without queueing).")
    ap.add_argument("--serial-seconds", type=float, default=10.0, help="Time limit of each one-at-a-time phase.")
    ap.add_argument("--config", type=Path, help="hegui.yaml for detectors and policy (default: embedded defaults).")
    ap.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--direct", help=argparse.SUPPRESS)
    ap.add_argument("--gateway", help=argparse.SUPPRESS)
    ap.add_argument("--litellm", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drive:
        drive(args)
        return

    import yaml

    py = sys.executable
    up_port, gw_port, ll_port = free_port(), free_port(), free_port()
    litellm_bin = os.environ.get("HEGUI_BENCH_LITELLM")
    procs: list[subprocess.Popen[bytes]] = []
    summary: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hegui-bench-") as tmp:
        base_cfg: dict[str, Any] = {}
        if args.config:
            base_cfg = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
            for key in ("policy",):
                if isinstance(base_cfg.get(key), str):
                    base_cfg[key] = str((args.config.parent / base_cfg[key]).resolve())
        cfg = {**base_cfg,
               "ledger": {**base_cfg.get("ledger", {}), "url": f"sqlite:///{tmp}/bench.db"},
               "upstreams": [{"name": "mock", "base_url": f"http://127.0.0.1:{up_port}/v1", "models": ["*"]}]}
        cfg_path = Path(tmp) / "hegui.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        from hegui.ledger.store import Ledger

        with Ledger.open(f"sqlite:///{tmp}/bench.db") as ledger:
            ledger.ensure_account("acc_bench")
            ledger.ensure_api_key("acc_bench", BENCH_KEY)
        env = {"HEGUI_PII_SALT": "hegui-bench-pii-salt", "HEGUI_IDENTIFIER_SALT": "hegui-bench-identifier-salt",
               **os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            upstream = subprocess.Popen(
                [py, "-m", "hegui.gateway.demo_upstream", "--port", str(up_port), "--token-delay-ms", "0"], env=env)
            procs.append(upstream)
            gateway = subprocess.Popen(
                [py, "-c", "from hegui.cli import main; main()", "serve", "--config", str(cfg_path),
                 "--port", str(gw_port), "--log-level", "warning"], env=env)
            procs.append(gateway)
            litellm = start_litellm(litellm_bin, up_port, ll_port, tmp, env) if litellm_bin else None
            if litellm is not None:
                procs.append(litellm)
            wait_http(f"http://127.0.0.1:{up_port}/healthz")
            wait_http(f"http://127.0.0.1:{gw_port}/healthz")
            if litellm is not None:
                wait_http(f"http://127.0.0.1:{ll_port}/health/liveliness", timeout=120)
            print("prompt: 1,000 Chinese characters; answer: the same 1,000 characters (demo upstream, no delay)")
            print(f"  {'target':8}{'n':>6}{'err':>5}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
            phases = [(1, args.serial_requests, args.serial_seconds),
                      (args.concurrency, args.requests, args.seconds)]
            for conc, requests, seconds in phases:
                for stream in (False, True):
                    cmd = [py, __file__, "--drive", "--direct", f"http://127.0.0.1:{up_port}/v1",
                           "--gateway", f"http://127.0.0.1:{gw_port}/v1", "--requests", str(requests),
                           "--seconds", str(seconds), "--concurrency", str(conc)]
                    if stream:
                        cmd.append("--stream")
                    if litellm is not None:
                        cmd += ["--litellm", f"http://127.0.0.1:{ll_port}/v1"]
                    gateways = {"hegui": gateway, **({"litellm": litellm} if litellm is not None else {})}
                    before = {name: cpu_seconds(p.pid) for name, p in gateways.items()}
                    up0 = cpu_seconds(upstream.pid)
                    out = subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=seconds * 6 + 120)
                    cpu = {name: cpu_seconds(p.pid) - before[name] for name, p in gateways.items()}
                    up1 = cpu_seconds(upstream.pid)
                    title = f"{'streamed' if stream else 'non-streamed'}, concurrency {conc}"
                    summary[f"{'stream' if stream else 'plain'}{conc}"] = report_phase(
                        title, json.loads(out.stdout), cpu, up1 - up0)
            with Ledger.open(f"sqlite:///{tmp}/bench.db") as ledger:
                rows = ledger.count_decisions()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"\nledger rows written during the run: {rows}")
    plain, stream = summary.get(f"plain{args.concurrency}"), summary.get(f"stream{args.concurrency}")
    if plain and stream:
        met = plain["hegui_cpu"] <= 3 and plain["hegui_tput"] >= 0.8 and stream["hegui_cpu"] <= 15
        print(f"aim at concurrency {args.concurrency} (<= 3 ms CPU and >= 0.8x throughput non-streamed, "
              f"<= 15 ms CPU a stream): {'met' if met else 'NOT met'} (CPU {plain['hegui_cpu']:.2f} ms, "
              f"throughput {plain['hegui_tput']:.2f}x, stream CPU {stream['hegui_cpu']:.2f} ms)")


if __name__ == "__main__":
    main()
