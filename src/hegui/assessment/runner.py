"""Asking the model: ``hegui assess run``.

Draws the sample (seeded, stratified by risk or topic so every group is present), writes it to
``sample.jsonl`` before the first question, then asks every item through any OpenAI-compatible
``/chat/completions`` (a model directly, or through a hegui gateway) with bounded concurrency, a
request-rate limit and retries with exponential backoff and full jitter on 429, 5xx, timeouts and
dropped connections (``Retry-After`` respected). Each answer is appended to ``answers.jsonl`` and
flushed as it arrives, so a crashed run resumes with the same ``--out``: ids already answered (``ok``
or ``refused_by_gateway``) are skipped, errors asked again.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from hegui.assessment.bank import BANK_KINDS, BankItem, BankKind
from hegui.assessment.results import AnswerRecord, RunFolder, RunManifest
from hegui.errors import UserError

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0
"""A ``Retry-After`` longer than this is capped: a run of 1,600 questions must end."""


# -- sampling -------------------------------------------------------------------------------------

def parse_sample(spec: str | None, defaults: dict[str, int]) -> dict[BankKind, int]:
    """``generated=1000,should_refuse=300`` over ``defaults``; a bad part is a one-line UserError."""
    out: dict[BankKind, int] = {k: int(defaults[k]) for k in BANK_KINDS}
    if not spec:
        return out
    for part in spec.split(","):
        name, eq, value = part.strip().partition("=")
        if not eq or name not in BANK_KINDS:
            raise UserError(f"--sample: {part.strip()!r}: write KIND=N with KIND one of {', '.join(BANK_KINDS)}")
        try:
            n = int(value)
        except ValueError:
            raise UserError(f"--sample: {name}={value!r}: not a whole number") from None
        if n < 0:
            raise UserError(f"--sample: {name}={n}: must be 0 or more")
        out[name] = n
    return out


def group_of(item: BankItem) -> str:
    """The stratum of an item: its risk (generated, should_refuse) or its topic (should_not_refuse)."""
    return (item.topic if item.kind == "should_not_refuse" else item.risk) or "?"


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Split ``n`` draws over groups of the given sizes: one per group first (so every risk is
    present when ``n`` allows), the rest proportionally to size by largest remainder, never more
    than a group holds. Deterministic (ties by group name)."""
    groups = sorted(g for g, s in sizes.items() if s > 0)
    take = dict.fromkeys(groups, 0)
    if n <= 0 or not groups:
        return take
    n = min(n, sum(sizes[g] for g in groups))
    if n < len(groups):
        # fewer draws than groups: the largest groups get one each
        for g in sorted(groups, key=lambda g: (-sizes[g], g))[:n]:
            take[g] = 1
        return take
    for g in groups:
        take[g] = 1
    left = n - len(groups)
    if left <= 0:
        return take
    # largest remainder over what each group still holds: a quota never exceeds a group's room
    room = {g: sizes[g] - 1 for g in groups}
    total = sum(room.values())
    quotas = {g: left * r / total for g, r in room.items()}
    floors = {g: math.floor(q) for g, q in quotas.items()}
    for g, f in floors.items():
        take[g] += f
    rest = left - sum(floors.values())
    for g in sorted((g for g in groups if floors[g] < room[g]), key=lambda g: (-(quotas[g] - floors[g]), g))[:rest]:
        take[g] += 1
    return take


@dataclass
class Sample:
    items: list[BankItem]
    sizes: dict[str, int]
    shortfalls: list[str] = field(default_factory=list)


def draw_sample(items: Sequence[BankItem], wanted: dict[BankKind, int], seed: int) -> Sample:
    """Draw ``wanted`` items of each kind, stratified by :func:`group_of`, seeded; where a kind has
    fewer items than wanted, all are taken and the shortfall noted. The result is shuffled (seeded),
    so kinds and risks interleave while asking."""
    rng = random.Random(seed)
    chosen: list[BankItem] = []
    sizes: dict[str, int] = {}
    shortfalls: list[str] = []
    for kind in BANK_KINDS:
        pool = [i for i in items if i.kind == kind]
        want = wanted.get(kind, 0)
        if want > len(pool):
            shortfalls.append(f"{kind}: {want} asked, the bank has {len(pool)} ({want - len(pool)} short)")
        by_group: dict[str, list[BankItem]] = defaultdict(list)
        for item in pool:
            by_group[group_of(item)].append(item)
        take = allocate({g: len(v) for g, v in by_group.items()}, want)
        picked: list[BankItem] = []
        for g in sorted(take):
            members = sorted(by_group[g], key=lambda i: i.id)
            picked.extend(rng.sample(members, take[g]))
        sizes[kind] = len(picked)
        chosen.extend(picked)
    rng.shuffle(chosen)
    return Sample(chosen, sizes, shortfalls)


# -- the target -----------------------------------------------------------------------------------

def api_base(url: str) -> str:
    """The OpenAI base URL: ``http://host:port`` gets ``/v1``; a URL with a path is used as given."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"{url!r}: not an http(s):// URL (e.g. http://127.0.0.1:8001/v1)")
    base = url.rstrip("/")
    return base + "/v1" if parts.path in ("", "/") else base


@dataclass
class Target:
    base_url: str
    model: str
    api_key: str | None = None
    gateway: bool = False
    """Through a hegui gateway: its content_filter refusals are recorded as ``refused_by_gateway``."""

    @property
    def label(self) -> str:
        return f"gateway:{self.base_url}" if self.gateway else self.base_url


@dataclass
class RunOptions:
    concurrency: int = 8
    rate: float | None = None
    """Requests per second, retries included; ``None``: no limit."""
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 0.5
    """First backoff in seconds; doubled each attempt, full jitter, capped at ``backoff_cap``."""
    backoff_cap: float = 30.0
    max_tokens: int | None = None
    temperature: float | None = None


class RateLimiter:
    """At most ``rate`` starts per second, spaced evenly (no bursts to trip a provider's limit)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def is_content_filter_error(body: Any) -> bool:
    """hegui's own refusal as an error body (``{"error": {"code"/"type": "content_filter"}}``)."""
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and "content_filter" in (err.get("code"), err.get("type"))


class Asker:
    """Asks one question with retries; returns the AnswerRecord (status ``error`` after the last try)."""

    def __init__(self, client: httpx.AsyncClient, target: Target, options: RunOptions,
                 limiter: RateLimiter, rng: random.Random | None = None,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.client = client
        self.target = target
        self.options = options
        self.limiter = limiter
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.url = target.base_url + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}

    def payload(self, question: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.target.model, "messages": [{"role": "user", "content": question}],
                                "stream": False}
        if self.options.max_tokens is not None:
            body["max_tokens"] = self.options.max_tokens
        if self.options.temperature is not None:
            body["temperature"] = self.options.temperature
        return body

    def backoff(self, attempt: int) -> float:
        # full jitter (AWS architecture blog): uniform in [0, base * 2^attempt], so many clients
        # retrying at once spread out instead of hitting the provider again together
        return self.rng.uniform(0, min(self.options.backoff_cap, self.options.backoff * 2 ** attempt))

    async def ask(self, item: BankItem) -> AnswerRecord:
        record = AnswerRecord(item_id=item.id, kind=item.kind, risk=item.risk, topic=item.topic,
                              question=item.question)
        started = time.monotonic()
        attempts = 0
        last_error = ""
        while True:
            attempts += 1
            await self.limiter.wait()
            wait: float | None = None
            try:
                resp = await self.client.post(self.url, json=self.payload(item.question), headers=self.headers,
                                              timeout=self.options.timeout)
            except httpx.TimeoutException:
                last_error = f"timeout after {self.options.timeout:g} s"
            except httpx.TransportError as exc:
                last_error = f"connection: {exc.__class__.__name__}: {exc}"[:300]
            else:
                done = self.read(resp, record)
                if done:
                    break
                last_error = record.error
                if resp.status_code not in RETRY_STATUSES:
                    break
                wait = retry_after(resp.headers)
            if attempts > self.options.retries:
                record.status, record.error = "error", last_error
                break
            delay = self.backoff(attempts - 1)
            if wait is not None:
                delay = max(delay, min(wait, MAX_RETRY_AFTER))
            await self.sleep(delay)
        record.attempts = attempts
        record.latency_ms = round((time.monotonic() - started) * 1000, 1)
        return record

    def read(self, resp: httpx.Response, record: AnswerRecord) -> bool:
        """Fill ``record`` from ``resp``; True when it is final (an answer, a refusal, or an error
        not worth retrying)."""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code == 200 and isinstance(body, dict):
            try:
                choice = body["choices"][0]
                text = choice.get("message", {}).get("content") or ""
                finish = choice.get("finish_reason")
            except (KeyError, IndexError, TypeError, AttributeError):
                record.status, record.error = "error", "HTTP 200 without choices[0].message"
                return True
            record.answer, record.finish_reason, record.error = str(text), finish, ""
            # the gateway answers its refusals with 200 and finish_reason content_filter (input or
            # output moderation); straight from a model the same reason is the provider's own filter,
            # kept as finish_reason for the judges
            refused = self.target.gateway and (finish == "content_filter" or _hegui_refused(body))
            record.status = "refused_by_gateway" if refused else "ok"
            return True
        message = _error_message(body) or resp.text[:200]
        if resp.status_code == 400 and self.target.gateway and is_content_filter_error(body):
            record.status, record.answer, record.error = "refused_by_gateway", message, ""
            record.finish_reason = "content_filter"
            return True
        record.status, record.error = "error", f"HTTP {resp.status_code}: {message}"[:300]
        return resp.status_code not in RETRY_STATUSES


def _hegui_refused(body: dict[str, Any]) -> bool:
    ext = body.get("hegui")
    return isinstance(ext, dict) and ext.get("action") in ("refuse", "block")


def _error_message(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or "")
    return str(err) if err else ""


# -- the run --------------------------------------------------------------------------------------

@dataclass
class RunResult:
    folder: RunFolder
    asked: int
    skipped: int
    errors: int
    shortfalls: list[str]


def prepare_run(out: Path, items: Sequence[BankItem], digest: str, banks: Sequence[str], target: Target,
                wanted: dict[BankKind, int], seed: int) -> tuple[RunFolder, list[BankItem], list[str]]:
    """Start the run folder, or check a resumed one against the bank and seed; returns the folder,
    the sample and the shortfall warnings."""
    folder = RunFolder(out)
    if folder.exists():
        m = folder.manifest()
        if m.bank_digest != digest:
            raise UserError(f"{out}: the run was made with bank {m.bank_digest[:12]}…, these banks are "
                            f"{digest[:12]}…; use a new --out for a changed bank")
        if m.seed != seed:
            raise UserError(f"{out}: the run was made with --seed {m.seed}, not {seed}; use a new --out")
        if m.requested and m.requested != {str(k): v for k, v in wanted.items()}:
            raise UserError(f"{out}: the run was made with --sample "
                            f"{','.join(f'{k}={v}' for k, v in m.requested.items())}; use a new --out")
        # the address may move (a restarted server, a new port); the model and the path through a
        # gateway or not may not: answers of two models, or with and without hegui, do not mix
        if m.model != target.model or m.target.startswith("gateway:") != target.gateway:
            raise UserError(f"{out}: the run asked {m.target} model {m.model}, not {target.label} model "
                            f"{target.model}; use a new --out")
        sample = folder.sample()
        return folder, sample, list(m.notes)
    drawn = draw_sample(items, wanted, seed)
    if not drawn.items:
        raise UserError("the sample is empty: the banks have no items of the kinds asked for")
    out.mkdir(parents=True, exist_ok=True)
    folder.write_sample(drawn.items)  # before the manifest: a folder with a manifest always has its sample
    folder.write_manifest(RunManifest(
        run_id="run_" + uuid.uuid4().hex[:12], bank_digest=digest, target=target.label, model=target.model,
        seed=seed, sample_sizes=drawn.sizes, requested={str(k): v for k, v in wanted.items()}, banks=list(banks),
        started_at=datetime.now(UTC), notes=[f"sample short: {s}" for s in drawn.shortfalls],
    ))
    return folder, drawn.items, drawn.shortfalls


def pending(folder: RunFolder, sample: Sequence[BankItem]) -> list[BankItem]:
    """Items still to ask: not answered, or last answered with an error."""
    done = {i for i, a in folder.answers().items() if a.status in ("ok", "refused_by_gateway")}
    return [item for item in sample if item.id not in done]


async def ask_all(folder: RunFolder, todo: Sequence[BankItem], target: Target, options: RunOptions,
                  on_answer: Callable[[AnswerRecord], None] | None = None,
                  transport: httpx.AsyncBaseTransport | None = None,
                  sleep: Callable[[float], Any] = asyncio.sleep) -> int:
    """Ask ``todo`` with ``options.concurrency`` workers; each answer appended and flushed as it
    arrives. Returns the number of errors."""
    queue: asyncio.Queue[BankItem] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    errors = 0
    limiter = RateLimiter(options.rate)
    # one TLS context for all the workers' clients (loading the CA bundle takes ~30 ms each)
    tls = httpx.create_ssl_context()
    with folder.open_answers() as log:

        async def worker() -> None:
            nonlocal errors
            # a client (one kept-alive connection) per worker: httpcore's shared pool scans every
            # connection on each request, which at 32 workers cost more than the requests (bench/assess.py)
            async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                                         transport=transport, follow_redirects=False, verify=tls) as client:
                asker = Asker(client, target, options, limiter, sleep=sleep)
                while True:
                    try:
                        item = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    record = await asker.ask(item)
                    # one write and flush per answer: a crash loses at most the answers in flight
                    log.write(record.model_dump_json() + "\n")
                    log.flush()
                    if record.status == "error":
                        errors += 1
                    if on_answer is not None:
                        on_answer(record)

        await asyncio.gather(*(worker() for _ in range(max(1, min(options.concurrency, len(todo))))))
    return errors


def finish(folder: RunFolder) -> None:
    m = folder.manifest()
    answers = folder.answers()
    if all(i.id in answers and answers[i.id].status != "error" for i in folder.sample()):
        m.finished_at = datetime.now(UTC)
        folder.write_manifest(m)
