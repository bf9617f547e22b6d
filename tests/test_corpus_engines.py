"""The engines: every shard is mapped exactly once, results arrive as they finish, and the local and
Dask engines give the same results for the same function."""

from __future__ import annotations

import os
import time

import pytest

from hegui.corpus.engines import DaskEngine, EngineError, LocalEngine, make_engine
from hegui.corpus.shards import Shard, ShardResult


def fake_scan(shard: Shard) -> ShardResult:
    """Records = part number + 1, flagged = part mod 3; the slow first shard lets the others overtake it."""
    if shard.part == 0:
        time.sleep(0.3)
    return ShardResult(shard_id=shard.shard_id, source=shard.source, records=shard.part + 1,
                       chars=10 * (shard.part + 1), flagged=shard.part % 3, errors=[str(os.getpid())])


def failing_scan(shard: Shard) -> ShardResult:
    raise RuntimeError(f"cannot read {shard.url}")


def shards(n: int) -> list[Shard]:
    return [Shard(shard_id=f"s-{i}", source="src", url=f"/x/{i}.jsonl", format="jsonl", part=i, parts=n)
            for i in range(n)]


def test_local_engine_maps_every_shard_once_and_yields_as_finished() -> None:
    with LocalEngine(workers=2, in_flight=1) as engine:
        results = list(engine.map(fake_scan, shards(7)))
    assert sorted(r.shard_id for r in results) == [f"s-{i}" for i in range(7)]
    assert sum(r.records for r in results) == sum(range(1, 8))  # 28
    # the slow first shard does not hold the others back: it is not the first result
    assert results[0].shard_id != "s-0"
    # two worker processes shared the work, none of them the test process
    pids = {r.errors[0] for r in results}
    assert str(os.getpid()) not in pids and len(pids) == 2


def test_dask_engine_gives_the_same_results_as_local() -> None:
    with LocalEngine(workers=2) as local:
        a = sorted((r.model_dump() for r in local.map(fake_scan, shards(6))), key=lambda d: d["shard_id"])
    with DaskEngine(workers=2) as dask:
        b = sorted((r.model_dump() for r in dask.map(fake_scan, shards(6))), key=lambda d: d["shard_id"])
    for d in a + b:
        d["errors"] = []  # the worker pid differs, nothing else may
    assert a == b


def test_a_failing_shard_raises_its_error() -> None:
    with LocalEngine(workers=1) as engine, pytest.raises(RuntimeError, match=r"/x/\d\.jsonl"):
        list(engine.map(failing_scan, shards(2)))


def test_make_engine_refuses_unknown_names_and_address_for_local() -> None:
    with pytest.raises(EngineError, match="local or dask"):
        make_engine("ray")
    with pytest.raises(EngineError, match="--address is for --engine dask"):
        make_engine("local", address="tcp://h:8786")
