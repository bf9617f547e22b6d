"""The moderation policy: which action each finding leads to, per risk, direction and scene.

A policy is a YAML file::

    refusal: 抱歉，这个问题我无法回答。      # default refusal message
    fail_mode: closed                       # a detector error refuses (closed) or is ignored (open)
    default_action: flag                    # for findings no rule matches
    scenes:                                 # scenes the provider names; `default` always exists
      minor: {fail_mode: closed, refusal: 这个问题不适合讨论哦。}
    rules:                                  # first matching rule decides a finding's action
      - risks: [A1a, A1b]                   # codes, categories (A1) or "*"
        direction: input                    # input | output | both (default)
        scenes: [default]                   # omitted: every scene
        min_score: 0.5                      # findings scoring lower fall through to later rules
        action: block                       # allow | flag | mask | refuse | block
        message: 该请求涉及违法内容，已被拒绝。

The verdict's action is the most severe action over all findings. ``block`` is ``refuse`` plus an
escalation of the user (the enforcement ladder).
"""

from __future__ import annotations

from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from hegui import taxonomy
from hegui.errors import ConfigError
from hegui.yamlsource import LocatedYaml, load_yaml, parse_yaml, validate

Direction = Literal["input", "output"]
DEFAULT_SCENE = "default"


class Action(StrEnum):
    ALLOW = "allow"
    FLAG = "flag"
    MASK = "mask"
    REFUSE = "refuse"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def passes(self) -> bool:
        """Whether content under this action reaches the other side (possibly masked)."""
        return self.severity <= _SEVERITY[Action.MASK]


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.MASK: 2, Action.REFUSE: 3, Action.BLOCK: 4}


class FailMode(StrEnum):
    CLOSED = "closed"
    OPEN = "open"


class Scene(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refusal: str | None = None
    """Refusal message for this scene (overrides the policy's default)."""
    fail_mode: FailMode | None = None
    """Override of the policy's ``fail_mode`` for this scene."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    risks: list[str] = Field(min_length=1)
    direction: Literal["input", "output", "both"] = "both"
    scenes: list[str] | None = None
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    action: Action
    message: str | None = None

    @field_validator("risks")
    @classmethod
    def _known_risks(cls, value: list[str]) -> list[str]:
        out = []
        for sel in value:
            code = taxonomy.normalize_code(sel)
            if code != "*" and code not in taxonomy.BY_CODE and code not in {c.value for c in taxonomy.Category}:
                raise ValueError(f"unknown risk {sel!r} (use a code like A1a, a category like A1, PI, JB or *)")
            out.append(code)
        return out

    def applies(self, risk: str, direction: Direction, scene: str, score: float) -> bool:
        if self.direction != "both" and self.direction != direction:
            return False
        if self.scenes is not None and scene not in self.scenes:
            return False
        if score < self.min_score:
            return False
        return any(taxonomy.matches(sel, risk) for sel in self.risks)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refusal: str = "抱歉，我无法回答这个问题。"
    error_refusal: str = "内容安全检查暂时不可用，请稍后再试。"
    """Message when a detector failed and the scene fails closed."""
    fail_mode: FailMode = FailMode.CLOSED
    default_action: Action = Action.FLAG
    scenes: dict[str, Scene] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    _index: dict[tuple[str, str, str], tuple[Rule, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _default_scene(self) -> Policy:
        self.scenes.setdefault(DEFAULT_SCENE, Scene())
        return self

    def has_scene(self, scene: str) -> bool:
        return scene in self.scenes

    def rule_for(self, risk: str, direction: Direction, scene: str, score: float) -> Rule | None:
        # Rules are matched per finding on the hot path: index them by (risk, direction, scene) once.
        key = (risk, direction, scene)
        candidates = self._index.get(key)
        if candidates is None:
            candidates = tuple(
                r for r in self.rules
                if (r.direction in ("both", direction))
                and (r.scenes is None or scene in r.scenes)
                and any(taxonomy.matches(sel, risk) for sel in r.risks)
            )
            self._index[key] = candidates
        for rule in candidates:
            if score >= rule.min_score:
                return rule
        return None

    def action_for(self, risk: str, direction: Direction, scene: str, score: float) -> tuple[Action, str | None]:
        """The action and (for refusals) the message this finding leads to."""
        rule = self.rule_for(risk, direction, scene, score)
        if rule is None:
            return self.default_action, None
        return rule.action, rule.message

    def refusal_for(self, scene: str) -> str:
        s = self.scenes.get(scene)
        return (s.refusal if s and s.refusal else None) or self.refusal

    def fails_closed(self, scene: str) -> bool:
        s = self.scenes.get(scene)
        mode = (s.fail_mode if s else None) or self.fail_mode
        return mode is FailMode.CLOSED


def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file, or the starter policy shipped with hegui when ``path`` is None.

    Errors raise :class:`hegui.errors.ConfigError` naming ``file:line: field``.
    """
    if path is None:
        return parse_policy(starter_policy_text(), STARTER_SOURCE)
    return _checked(load_yaml(path))


STARTER_SOURCE = "hegui/data/policy/default.yaml"


def starter_policy_text() -> str:
    """The YAML of the starter policy shipped with hegui (in force when ``policy:`` is not set)."""
    return resources.files("hegui").joinpath("data/policy/default.yaml").read_text(encoding="utf-8")


def parse_policy(text: str, source: str) -> Policy:
    """A policy from YAML text (the console checks an edit before saving it); errors name ``source:line``."""
    return _checked(parse_yaml(text, source))


def _checked(located: LocatedYaml) -> Policy:
    policy = validate(Policy, located)
    for i, rule in enumerate(policy.rules):
        for j, name in enumerate(rule.scenes or ()):
            if name not in policy.scenes:
                declared = ", ".join(sorted(policy.scenes))
                raise ConfigError(
                    f"{located.where(('rules', i, 'scenes', j))}: rules.{i}.scenes: scene {name!r} is not "
                    f"declared under `scenes:` (declared: {declared})"
                )
    return policy
