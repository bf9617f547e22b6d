"""Input moderation of a whole request: every text the client sends, not only the last user turn.

A chat request carries text in many places the model reads: system and developer messages, earlier
user turns, assistant turns (a client can write an "assistant prefill"), tool results, message
``name`` fields, tool-call arguments, tool definitions. Each is a :class:`InputPart`, checked on its
own; the most severe verdict decides the request, and the decision record names the part it came
from (``where``: ``messages[0].content``).

A conversation resends its history on every turn, so checking every part anew would cost quadratic
time over a conversation. :class:`VerdictCache` keeps each part's verdict by a hash of (account,
scene, text), so a turn pays only for its new text. The cache holds no text, only the verdict
(findings, and for masked parts the masked text), and it is emptied when lexicons or policy reload.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hegui.gateway.request_models import where
from hegui.moderation import Verdict, new_decision_id
from hegui.policy import Action


@dataclass(frozen=True)
class InputPart:
    """One text of a request, with the path to it in the body (to name it and to mask it in place)."""

    path: tuple[int | str, ...]
    text: str
    role: str | None = None
    rewritable: bool = True
    """False for texts joined from several fields (tool definitions): a mask cannot be put back."""

    @property
    def where(self) -> str:
        return where(self.path)

    @property
    def message(self) -> int | None:
        return self.path[1] if self.path[:1] == ("messages",) and isinstance(self.path[1], int) else None


def chat_parts(body: dict[str, Any]) -> list[InputPart]:
    """Every text of a validated chat request, in the order the model reads them."""
    parts: list[InputPart] = []
    for i, msg in enumerate(body["messages"]):
        role = msg.get("role")
        base: tuple[int | str, ...] = ("messages", i)
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(InputPart((*base, "content"), content, role))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                for key in ("text", "refusal"):
                    if isinstance(part.get(key), str):
                        parts.append(InputPart((*base, "content", j, key), part[key], role))
        for key in ("name", "refusal"):
            if isinstance(msg.get(key), str):
                parts.append(InputPart((*base, key), msg[key], role))
        for k, tc in enumerate(msg.get("tool_calls") or []):
            fn = tc.get("function") or {}
            for key in ("name", "arguments"):
                if isinstance(fn.get(key), str):
                    parts.append(InputPart((*base, "tool_calls", k, "function", key), fn[key], role))
        fc = msg.get("function_call") or {}
        for key in ("name", "arguments"):
            if isinstance(fc.get(key), str):
                parts.append(InputPart((*base, "function_call", key), fc[key], role))
    for t, tool in enumerate(body.get("tools") or []):
        # names, descriptions and enum values anywhere in the definition reach the model's context
        texts = list(_strings(tool.get("function") or {}))
        if texts:
            parts.append(InputPart(("tools", t), "\n".join(texts), None, rewritable=False))
    return [p for p in parts if p.text]


def completion_parts(body: dict[str, Any]) -> list[InputPart]:
    prompt = body["prompt"]
    parts = [InputPart(("prompt",), prompt) if isinstance(prompt, str) else InputPart(("prompt", 0), prompt[0])]
    if isinstance(body.get("suffix"), str):
        parts.append(InputPart(("suffix",), body["suffix"]))
    return [p for p in parts if p.text] or parts[:1]


def _strings(node: Any) -> Any:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def total_chars(parts: list[InputPart]) -> int:
    return sum(len(p.text) for p in parts)


class VerdictCache:
    """Verdicts of request parts by a hash of (account, scene, text); least recently used out first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, Verdict] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.generation = 0
        """Moved on by :meth:`clear`: a verdict reached before a lexicon or policy change is not stored
        after it (see :meth:`put`)."""

    @staticmethod
    def key(account: str, scene: str, text: str) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        for field in (account, scene):
            h.update(field.encode("utf-8"))
            h.update(b"\x00")
        h.update(text.encode("utf-8"))
        return h.digest()

    def get(self, key: bytes) -> Verdict | None:
        verdict = self._items.get(key)
        if verdict is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return verdict

    def put(self, key: bytes, verdict: Verdict, generation: int | None = None) -> None:
        """Remember ``verdict``; ``generation`` is :attr:`generation` as it was when the check began,
        so a check that ran on the old lexicon while a reload swapped it in is not cached."""
        if self.max_entries <= 0 or verdict.failed_detectors:
            return  # a verdict reached without every detector is not worth remembering
        if generation is not None and generation != self.generation:
            return
        self._items[key] = verdict
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
        self.generation += 1

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class RequestVerdict:
    """The input verdict of a whole request: one verdict per part and the one that decides."""

    verdict: Verdict
    """The deciding verdict, with this request's decision id: its action, refusal and findings."""
    parts: list[tuple[InputPart, Verdict]]
    deciding: InputPart | None
    """The part whose verdict decided (None when every part was allowed without findings)."""

    def finding_dicts(self) -> list[dict[str, Any]]:
        """Every part's findings, each naming the part its span points into."""
        out: list[dict[str, Any]] = []
        for part, v in self.parts:
            for f in v.findings:
                d = f.to_dict()
                d["where"] = part.where
                if part.message is not None:
                    d["message"] = part.message
                out.append(d)
        return out

    def excerpt(self) -> str:
        """What the record keeps of the input (redacted): the deciding part, else the last part."""
        if self.deciding is not None:
            for part, v in self.parts:
                if part is self.deciding:
                    return f"[{part.where}] {v.redacted}"
        return self.parts[-1][1].redacted if self.parts else ""

    def masked_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with each masked part replaced by its masked text (the upstream never sees the
        personal data). Only the containers on the way to a masked part are copied."""
        masked = [(p, v) for p, v in self.parts if v.action is Action.MASK]
        if not masked:
            return body
        out = dict(body)
        for part, v in masked:
            node: Any = out
            for key in part.path[:-1]:
                child = node[key]
                child = dict(child) if isinstance(child, dict) else list(child)
                node[key] = child
                node = child
            node[part.path[-1]] = v.text
        return out


CheckText = Callable[[str], Awaitable[Verdict]]


async def check_parts(parts: list[InputPart], check: CheckText, cache: VerdictCache | None,
                      account: str, scene: str) -> RequestVerdict:
    """Check each part (from the cache where it was seen before) and decide the request."""
    results: list[tuple[InputPart, Verdict]] = []
    for part in parts:
        key = VerdictCache.key(account, scene, part.text) if cache is not None else b""
        verdict = cache.get(key) if cache is not None else None
        if verdict is None:
            generation = cache.generation if cache is not None else 0
            verdict = await check(part.text)
            if cache is not None:
                cache.put(key, verdict, generation)
        if verdict.action is Action.MASK and not part.rewritable:
            verdict = _refuse_unmaskable(verdict)
        results.append((part, verdict))
    return decide_request(results, scene)


def _refuse_unmaskable(verdict: Verdict) -> Verdict:
    """A part hegui cannot mask in place (a tool definition) is refused rather than sent unmasked."""
    message = "请求的工具定义中包含个人信息，已拒绝。"
    return Verdict(decision_id=verdict.decision_id, action=Action.REFUSE, direction=verdict.direction,
                   scene=verdict.scene, findings=verdict.findings, text=message, refusal=message,
                   failed_detectors=verdict.failed_detectors, timings_ms=verdict.timings_ms,
                   redacted=verdict.redacted)


def decide_request(results: list[tuple[InputPart, Verdict]], scene: str) -> RequestVerdict:
    deciding: tuple[InputPart, Verdict] | None = None
    for part, v in results:
        worse = deciding is None or v.action.severity > deciding[1].action.severity
        if worse and (v.findings or v.action is not Action.ALLOW or v.failed_detectors):
            deciding = (part, v)
    findings = [f for _, v in results for f in v.findings]
    failed = sorted({d for _, v in results for d in v.failed_detectors})
    timings: dict[str, float] = {}
    for _, v in results:
        for name, ms in v.timings_ms.items():
            timings[name] = timings.get(name, 0.0) + ms
    base = deciding[1] if deciding is not None else (results[-1][1] if results else None)
    verdict = Verdict(
        decision_id=new_decision_id(),
        action=base.action if base is not None else Action.ALLOW,
        direction="input",
        scene=scene,
        findings=findings,
        text=base.text if base is not None else "",
        refusal=base.refusal if base is not None else None,
        failed_detectors=failed,
        timings_ms=timings,
        escalate=any(v.escalate for _, v in results),
        redacted=base.redacted if base is not None else "",
    )
    return RequestVerdict(verdict, results, deciding[0] if deciding is not None else None)
