"""(being built)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from hegui.gateway.routes import Gateway


def routes(gw: Gateway) -> list[BaseRoute]:
    return []
