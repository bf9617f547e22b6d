"""The 27-character provider code of TC260-PG-20252A, written as ``ContentProducer``.

Layout: ``00`` (format) + ``1`` (organisation) + ``1`` (bound to a USCC) + the 18-character
统一社会信用代码 + ``1`` (generation) or ``2`` (propagation) + a 4-character model/app code.
"""

from __future__ import annotations

import re
from typing import Literal

from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import ValidationError

from hegui.config import ProviderConfig
from hegui.errors import ConfigError
from hegui.labeling.metadata import charset_problem

_SERVICE_CODE = re.compile(r"[0-9A-Z]{4}")
_KIND = {"generation": "1", "propagation": "2"}


def validated_uscc(value: str) -> str:
    """The compact USCC, or ConfigError naming ``provider.uscc``."""
    try:
        return str(stdnum_uscc.validate(value))
    except ValidationError as exc:
        raise ConfigError(f"provider.uscc: {value!r} is not a valid 统一社会信用代码 ({exc})") from None


def provider_code(provider: ProviderConfig, kind: Literal["generation", "propagation"] = "generation") -> str:
    """The 27-character code for ``provider`` (needs ``provider.uscc``)."""
    if not provider.uscc:
        raise ConfigError("provider.uscc: not set; the provider code needs the 统一社会信用代码")
    code = validated_uscc(provider.uscc)
    service = provider.service_code
    if not _SERVICE_CODE.fullmatch(service):
        raise ConfigError(f"provider.service_code: {service!r} must be 4 characters 0-9 or A-Z")
    result = "00" + "1" + "1" + code + _KIND[kind] + service
    assert len(result) == 27
    return result


def content_producer(
    provider: ProviderConfig, kind: Literal["generation", "propagation"] = "generation"
) -> str:
    """The provider code when a USCC is configured, else the provider name (checked against the charset)."""
    if provider.uscc:
        return provider_code(provider, kind)
    problem = charset_problem(provider.name)
    if problem:
        raise ConfigError(
            f"provider.name: {provider.name!r} cannot be written as ContentProducer: {problem}; "
            "set provider.uscc to use the provider code instead"
        )
    if not provider.name:
        raise ConfigError("provider.name: must not be empty when provider.uscc is not set")
    return provider.name
