"""Gateway settings: the ``gateway:`` section and the ``upstreams:`` list of ``hegui.yaml``.

Every key is documented in ``docs/gateway.md``; a test checks that the table there lists them all.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEMO_BASE_URL = "demo"


class UpstreamConfig(BaseModel):
    """One OpenAI-compatible model server the gateway forwards to."""

    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    """Name used in logs, metrics and the ``hegui.upstream`` field of responses."""
    base_url: str = DEMO_BASE_URL
    """``http(s)://host:port/v1`` of the server, or ``demo`` for the built-in demo model."""
    api_key: str | None = None
    """Key sent upstream as ``Authorization: Bearer``; prefer ``api_key_env``."""
    api_key_env: str | None = None
    """Environment variable holding the upstream key (read at start-up)."""
    models: list[str] = Field(default_factory=lambda: ["*"])
    """Model names or shell globs (``qwen*``) routed to this upstream, in failover order."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for a response (non-streamed) or for each streamed chunk."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a TCP connection before failing over."""
    retries: int = Field(default=0, ge=0, le=10)
    """Extra attempts on this upstream (connect error, timeout, 5xx) before the next one."""
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest answer read from this upstream: a non-streamed body (images included), or all the
    bytes of one stream. Above it the answer is a protocol failure (502, or the stream ends)."""
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Longest Server-Sent Event (bytes up to the blank line that ends it) read from this upstream;
    a longer one is not buffered further but is a protocol failure."""
    token_delay_ms: float = Field(default=0.0, ge=0)
    """Demo upstream only: pause between streamed tokens."""

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        v = value.strip().rstrip("/")
        if v != DEMO_BASE_URL and not v.startswith(("http://", "https://")):
            raise ValueError("must be 'demo' or an http(s):// URL such as http://127.0.0.1:8001/v1")
        return v

    @property
    def is_demo(self) -> bool:
        return self.base_url == DEMO_BASE_URL

    def resolved_api_key(self) -> str | None:
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or self.api_key
        return self.api_key


class GatewayConfig(BaseModel):
    """How ``hegui serve`` listens, authenticates and behaves when a part fails."""

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    """Address ``hegui serve`` binds to (``--host`` overrides)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Port ``hegui serve`` listens on (``--port`` overrides)."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes (``--workers`` overrides); >1 uses prometheus multiprocess mode."""
    admin_key_env: str = "HEGUI_ADMIN_KEY"
    """Environment variable holding the admin key for ``/admin/*`` routes."""
    admin_key: str | None = None
    """Admin key in the file itself (only for local use; prefer ``admin_key_env``)."""
    default_scene: str = "default"
    """Scene used when neither the API key nor the request names one."""
    scenes: list[str] = Field(default_factory=lambda: ["default"])
    """Scenes a client may pick with the ``x-hegui-scene`` header; anything else is a 400."""
    fail_open_scenes: list[str] = Field(default_factory=list)
    """Scenes where a moderation or ledger failure lets the request through (logged, counted)."""
    auth_cache_seconds: float = Field(default=30.0, ge=0)
    """How long a verified API key is cached in the worker (0 = look it up every request)."""
    max_body_bytes: int = Field(default=2_000_000, gt=0)
    """Largest request body accepted (413 above)."""
    max_json_depth: int = Field(default=64, ge=2, le=512)
    """Deepest nesting of arrays and objects accepted in a request body (400 above)."""
    max_messages: int = Field(default=2048, ge=1)
    """Most messages accepted in one chat request (400 above)."""
    max_input_chars: int = Field(default=500_000, ge=1)
    """Most characters of text (all messages, parts and tool definitions together) in one request (413 above)."""
    verdict_cache_entries: int = Field(default=50_000, ge=0)
    """Input verdicts kept per worker by hash of (account, scene, text), so resent history is not checked
    again (0 = off)."""
    allow_development_salts: bool = False
    """Let ``hegui serve`` start without ``$HEGUI_PII_SALT`` and ``$HEGUI_IDENTIFIER_SALT`` (hashes are
    then made with a public or a per-database salt). Never in production."""
    stream_checkpoint_seconds: float = Field(default=5.0, ge=0)
    """During a long stream, record how much was sent this often, so a crash leaves a trace (0 = off)."""
    stream_coalesce_ms: float = Field(default=15.0, ge=0, le=1000)
    """Once a stream has sent its first text, upstream chunks arriving within this many milliseconds
    are checked and sent together: tokens of 3–4 characters each cost a wake-up, a check and a frame,
    and the hold-back already delays what the client sees by more than this. 0: every chunk alone."""
    client_stall_seconds: float = Field(default=60.0, gt=0)
    """A streaming client that takes no data for this long is dropped (recorded as disconnected)."""
    request_timeout: float = Field(default=300.0, gt=0)
    """Upper bound on one whole streamed response, seconds; the stream is then ended cleanly."""
