"""The staff side of accounts over HTTP (``/admin/accounts/...``, ``/admin/appeals/...``): ladder
actions with a reason, appeal decisions, account pages. Admin key only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

if TYPE_CHECKING:
    from hegui.gateway.openapi import Operation
    from hegui.gateway.routes import Gateway

OPERATIONS: tuple[Operation, ...] = ()


def routes(gw: Gateway) -> list[Route]:
    return []
