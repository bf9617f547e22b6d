"""The public account API: one-time codes, registration and login, agreements, consent, minor mode,
appeals (``/v1/hegui/...``). Routes are mounted by :func:`hegui.gateway.app.create_app`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

if TYPE_CHECKING:
    from hegui.gateway.openapi import Operation
    from hegui.gateway.routes import Gateway

OPERATIONS: tuple[Operation, ...] = ()


def routes(gw: Gateway) -> list[Route]:
    return []
