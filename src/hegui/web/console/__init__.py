"""The staff console under ``/console``: login, dashboard, review queue, cases, accounts, lexicon and
policy. Each page module declares its routes with their roles (:class:`~hegui.web.console.base.ConsoleRoute`);
:func:`routes` mounts them all behind the guard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

from hegui.web.console import (
    accounts_pages,
    auth,
    casework,
    dashboard,
    decisions_pages,
    lexicon_pages,
    policy_pages,
    review,
)
from hegui.web.console.base import Console

if TYPE_CHECKING:
    from hegui.gateway.routes import Gateway


def routes(gw: Gateway) -> list[BaseRoute]:
    if not gw.cfg.console.enabled:
        return []
    console = Console(gw)
    gw.console = console
    declared = [*auth.routes(console), *dashboard.routes(console), *review.routes(console),
                *casework.routes(console), *lexicon_pages.routes(console), *policy_pages.routes(console),
                *accounts_pages.routes(console), *decisions_pages.routes(console)]
    return console.mount(declared)
