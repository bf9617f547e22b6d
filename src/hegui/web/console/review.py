"""(being built)"""

from __future__ import annotations

from hegui.web.console.base import Console, ConsoleRoute


def routes(console: Console) -> list[ConsoleRoute]:
    return []
