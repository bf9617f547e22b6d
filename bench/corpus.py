"""Corpus-audit throughput and memory, measured in one run on a generated corpus.

Generates a JSONL corpus (Chinese text, 2% planted harmful lines, some ID numbers and phone numbers)
and audits it with ``run_audit`` (the real scan: read, moderate, sample, write the cleaned copy; the
report is left out) on the local engine and on Dask distributed, with 1 and 2 workers. Prints MB/s
and MB/s per worker (wall time), and MB per CPU-second the worker processes spent, against the raw
``Moderator.check`` throughput on one core (CPU time, on texts taken from the same corpus); the
engines' warm-up time (start, imports, building the Moderator in each worker), kept apart; and the peak RSS (VmHWM) of the worker
processes for two corpus sizes, to show that memory does not grow with the corpus.

The machine may be shared: wall times are noisy, so each figure is the best of ``--repeat`` runs.

    .venv/bin/python bench/corpus.py [--mb 20] [--big-mb 80] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HEGUI_PII_SALT", "bench")

SENTENCES = [
    "今天天气很好，我们去公园散步，顺便讨论了人工智能的发展。",
    "这本书讲述了一个普通家庭在改革开放以来的变化，语言朴实。",
    "研究表明，规律作息和适量运动有助于提高睡眠质量。",
    "本文介绍了分布式系统中的一致性协议及其在数据库中的应用。",
    "学校组织学生参观博物馆，了解本地的历史和文化。",
    "用户反馈新版本的界面更清晰，但加载速度还有待提高。",
]
HARMFUL = ["出售冰毒，量大从优，加微信", "代开发票 联系QQ 123456", "推翻社会主义制度"]
PII = ["联系人身份证号11010519491231002X。", "电话13800138000。"]


def make_corpus(folder: Path, megabytes: float, files: int = 8, seed: int = 7) -> int:
    """JSONL files of about ``megabytes`` in all; returns the bytes written."""
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    target = int(megabytes * 1_000_000 / files)
    total = 0
    for f in range(files):
        written = 0
        with (folder / f"part-{f:02d}.jsonl").open("w", encoding="utf-8") as fh:
            i = 0
            while written < target:
                parts = [rnd.choice(SENTENCES) for _ in range(rnd.randint(3, 12))]
                if rnd.random() < 0.02:
                    parts.insert(rnd.randrange(len(parts)), rnd.choice(HARMFUL))
                if rnd.random() < 0.05:
                    parts.append(rnd.choice(PII))
                line = json.dumps({"id": f"{f}-{i}", "text": "".join(parts)}, ensure_ascii=False) + "\n"
                fh.write(line)
                written += len(line.encode("utf-8"))
                i += 1
        total += written
    return total


def registry(path: Path, data: Path) -> Path:
    path.write_text(f"sources:\n  - name: bench\n    type: open_source\n    licence: CC0-1.0\n"
                    f"    licence_evidence: https://example.org\n    pi_basis: none_present\n"
                    f"    languages: [zh]\n    locations: {data}\n", encoding="utf-8")
    return path


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (``/proc/PID/stat``)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def raw_check_mb_s(data: Path, limit_bytes: int = 3_000_000) -> float:
    """``Moderator.check`` alone on one core (CPU time), on the first records of the corpus."""
    from hegui.config import load_config
    from hegui.moderation import Moderator

    mod = Moderator.from_config(load_config(None))
    texts, n = [], 0
    with (data / "part-00.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            t = json.loads(line)["text"]
            texts.append(t)
            n += len(t.encode("utf-8"))
            if n >= limit_bytes:
                break
    mod.check(texts[0], "input", "default")
    t0 = time.process_time()
    for t in texts:
        mod.check(t, "input", "default")
    return n / 1e6 / (time.process_time() - t0)


def audit_once(engine_name: str, workers: int, sources: Path, work: Path) -> dict[str, Any]:
    from hegui.corpus.audit import build_scan_settings, run_audit
    from hegui.corpus.config import CorpusConfig
    from hegui.corpus.engines import make_engine

    out = work / f"out-{engine_name}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = CorpusConfig()
    t0 = time.perf_counter()
    engine = make_engine(engine_name, workers)
    # warm-up: a tiny audit, so worker start, imports and the Moderator's build
    # (a fixed ~1-2 s per worker, nothing at corpus scale) are timed apart from the throughput
    # (several tiny shards per worker: a scheduler may give two shards to one worker)
    warm = work / f"warm-{workers}"
    if not warm.is_dir():
        make_corpus(warm, 0.04 * workers, files=4 * workers)
    warm_out = work / "warm-out"
    shutil.rmtree(warm_out, ignore_errors=True)
    run_audit(registry(work / f"warm-{workers}.yaml", warm), warm_out, engine, build_scan_settings(warm_out, cfg, None),
              corpus=cfg, write_report=False)
    started = time.perf_counter() - t0
    peak: dict[int, float] = {}
    cpu0 = {pid: cpu_seconds(pid) for pid in descendants(os.getpid())}
    try:
        last = [0.0]

        def progress(done: int, total: int, records: int) -> None:
            if done == total:
                last[0] = time.perf_counter()

        t1 = time.perf_counter()
        summary = run_audit(sources, out, engine, build_scan_settings(out, cfg, None), corpus=cfg,
                            write_report=False, on_progress=progress)
        # the scan ends with the last shard's result; the merge's outputs (summary, CSV, the
        # 4,000-row review sheet) are a fixed cost per audit, timed apart
        wall = last[0] - t1
        finish = time.perf_counter() - last[0]
        procs = descendants(os.getpid())
        for pid in procs:
            peak[pid] = hwm_mb(pid)
        # CPU the other processes spent on this audit (workers, nannies, scheduler threads' helpers)
        cpu = sum(cpu_seconds(pid) - cpu0.get(pid, 0.0) for pid in procs)
    finally:
        engine.close()
    # the biggest processes are the workers (the forkserver and the Dask nanny stay small)
    workers_rss = sorted(peak.values(), reverse=True)[:workers]
    return {"engine": engine_name, "workers": workers, "start_s": started, "wall_s": wall, "cpu_s": cpu,
            "finish_s": finish,
            "records": summary.records, "bytes": summary.bytes_read, "flagged": sum(v.flagged for v in summary.sources),
            "worker_peak_mb": max(workers_rss or [0.0]), "workers_peak_sum_mb": sum(workers_rss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=8, help="corpus size for the throughput runs (MB)")
    ap.add_argument("--big-mb", type=float, default=32, help="second corpus size for the memory bound (MB)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (best is kept)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hegui-bench-corpus-"))
    try:
        small = work / "small"
        size = make_corpus(small, args.mb)
        sources = registry(work / "small.yaml", small)
        raw = raw_check_mb_s(small)
        print(f"corpus: {size / 1e6:.1f} MB JSONL, 8 files; cores: {os.cpu_count()}")
        print(f"raw Moderator.check, one core (CPU time): {raw:.2f} MB/s")
        print(f"{'engine':<8}{'workers':>8}{'warm-up s':>10}{'wall s':>8}{'MB/s':>7}{'MB/s/worker':>13}"
              f"{'MB/CPU-s':>10}{'vs raw':>8}{'worker peak RSS MB':>20}")
        results = []
        for name in ("local", "dask"):
            for workers in (1, 2):
                best = min((audit_once(name, workers, sources, work) for _ in range(args.repeat)),
                           key=lambda r: r["wall_s"])
                results.append(best)
                mbs = best["bytes"] / 1e6 / best["wall_s"]
                per_cpu = best["bytes"] / 1e6 / best["cpu_s"] if best["cpu_s"] else 0.0
                print(f"{name:<8}{workers:>8}{best['start_s']:>10.2f}{best['wall_s']:>8.2f}{mbs:>7.2f}"
                      f"{mbs / workers:>13.2f}{per_cpu:>10.2f}{per_cpu / raw:>8.2f}{best['worker_peak_mb']:>20.0f}")
        print(f"outputs after the scan (summary, CSV, review sheet): "
              f"{min(r['finish_s'] for r in results):.2f}–{max(r['finish_s'] for r in results):.2f} s per audit")
        same = {(r["records"], r["flagged"]) for r in results}
        print(f"same records and flagged on every engine: {len(same) == 1} {sorted(same)}")
        big = work / "big"
        big_size = make_corpus(big, args.big_mb, seed=8)
        shutil.rmtree(small)
        big_sources = registry(work / "big.yaml", big)
        for name in ("local", "dask"):
            r_big = audit_once(name, 2, big_sources, work)
            r_small = next(r for r in results if r["engine"] == name and r["workers"] == 2)
            print(f"memory bound ({name}, 2 workers): {size / 1e6:.0f} MB corpus → worker peak "
                  f"{r_small['worker_peak_mb']:.0f} MB; {big_size / 1e6:.0f} MB corpus → worker peak "
                  f"{r_big['worker_peak_mb']:.0f} MB ({r_big['bytes'] / 1e6 / r_big['wall_s']:.2f} MB/s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
