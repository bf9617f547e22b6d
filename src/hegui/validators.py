"""Field types shared by config sections."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    return value


RegexStr = Annotated[str, AfterValidator(_compiles)]
"""A string that must compile as a Python regular expression (the error names the problem)."""
