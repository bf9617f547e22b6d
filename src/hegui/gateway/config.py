"""Gateway settings (PLACEHOLDER; the gateway work fills this in)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class UpstreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "default"
    base_url: str = "demo"


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = 8000
