"""Engines: where the shards of an audit are scanned.

One small interface, :meth:`Engine.map`: apply a picklable function to shards and yield the results
as they finish (in any order; the audit merges them order-free, so every engine gives the same
summary). :class:`LocalEngine` uses a process pool on this machine; :class:`DaskEngine` a Dask
distributed cluster, local (``LocalCluster``) or remote (``--address tcp://head:8786``).

Why Dask and not Ray: measured on the 2-core dev machine (``docs/corpus.md``), Dask distributed
idles at ~250 MB against Ray's ~770 MB, starts in about a second, and has no actor CPU accounting
that can starve a read stage into a silent deadlock. Shards are read *inside* the tasks, so there is
no separate reader to starve: each worker reads, scans and writes one shard at a time.

Both engines keep only ``workers × in_flight`` shards submitted at once, so memory stays bounded
whatever the corpus size, and an interrupted audit loses at most those shards' work.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import islice
from typing import Any, Protocol

from hegui.corpus.shards import Shard, ShardResult
from hegui.errors import UserError

ScanFn = Callable[[Shard], ShardResult]


class EngineError(UserError):
    pass


class Engine(Protocol):
    name: str
    workers: int

    def map(self, fn: ScanFn, shards: Sequence[Shard]) -> Iterator[ShardResult]:
        """Apply ``fn`` to every shard; yield each result as it finishes."""
        ...

    def close(self) -> None: ...


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class LocalEngine:
    """A process pool on this machine (``--workers``, default the CPU count)."""

    name = "local"

    def __init__(self, workers: int | None = None, in_flight: int = 2) -> None:
        self.workers = workers or default_workers()
        self.in_flight = max(1, in_flight)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            # forkserver, not fork: the driver runs a progress-bar thread, and forking a threaded
            # process can copy a held lock into the child. The server forks workers from a clean
            # process, cheaper than spawn's fresh interpreter per worker.
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def map(self, fn: ScanFn, shards: Sequence[Shard]) -> Iterator[ShardResult]:
        pool = self._executor()
        todo = iter(shards)
        pending: set[Future[ShardResult]] = set()
        limit = self.workers * self.in_flight
        try:
            pending = {pool.submit(fn, shard) for shard in islice(todo, limit)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.add(pool.submit(fn, nxt))
        finally:
            for fut in pending:
                fut.cancel()

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # after an error or a Ctrl-C, do not wait for the running shards: their results would be
        # thrown away anyway, and a resume scans them again
        self.close(wait=exc_type is None)


class DaskEngine:
    """A Dask distributed cluster: ``address`` (a running ``dask scheduler``), or a LocalCluster of
    ``workers`` single-threaded worker processes (the scan holds the GIL, so threads would not help)."""

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None, in_flight: int = 2) -> None:
        self.address = address
        self.in_flight = max(1, in_flight)
        self._cluster: Any = None
        self._client: Any = None
        self.workers = workers or default_workers()
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - dask is a dependency
            raise EngineError("--engine dask needs dask[distributed]: pip install 'dask[distributed]'") from None
        if address:
            try:
                self._client = Client(address, timeout="10s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise EngineError(f"--address {address}: cannot reach the Dask scheduler ({exc})") from None
            n = len(self._client.scheduler_info().get("workers", {}))
            self.workers = n or self.workers
        else:
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=40)
            self._client = Client(self._cluster, set_as_default=False)

    def map(self, fn: ScanFn, shards: Sequence[Shard]) -> Iterator[ShardResult]:
        from distributed import as_completed

        client = self._client
        todo = iter(shards)
        limit = self.workers * self.in_flight
        # pure=False and a key per shard: a rerun of the same shard (resume) must scan again, and
        # the key names the shard in the scheduler's logs.
        first = [client.submit(fn, s, pure=False, key=f"scan-{s.shard_id}") for s in islice(todo, limit)]
        queue = as_completed(first, loop=client.loop)
        try:
            for fut in queue:
                result = fut.result()
                fut.release()
                yield result
                nxt = next(todo, None)
                if nxt is not None:
                    queue.add(client.submit(fn, nxt, pure=False, key=f"scan-{nxt.shard_id}"))
        finally:
            queue.clear()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_engine(name: str, workers: int | None = None, address: str | None = None,
                in_flight: int = 2) -> LocalEngine | DaskEngine:
    """The engine ``--engine`` names (``local`` or ``dask``)."""
    if name == "local":
        if address:
            raise EngineError("--address is for --engine dask (the local engine uses this machine's processes)")
        return LocalEngine(workers, in_flight)
    if name == "dask":
        return DaskEngine(address, workers, in_flight)
    raise EngineError(f"--engine {name!r}: local or dask")
