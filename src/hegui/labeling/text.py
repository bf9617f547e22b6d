"""Text labels for generated answers: the explicit prompt at the start/end, and the implicit label.

The gateway uses :class:`TextLabeler`: ``explicit_prefix``/``explicit_suffix`` go around the answer
(stream the prefix first, the suffix last), and ``implicit(answer)`` gives the signed
``AIGCLabel`` to send as a response field and header (``to_json()``). Label values are limited to
printable ASCII (Annex E), so ``to_json()`` is always a valid HTTP header value. A stream announces
``begin()`` in its headers and sends ``implicit(full_text, base=that)`` in its last event.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from hegui.labeling.metadata import AIGCLabel, new_label
from hegui.labeling.signing import load_signing_key, sign

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hegui.config import HeguiConfig
    from hegui.labeling.config import TextLabelConfig

HEADER_NAME = "AIGC"
"""HTTP response header carrying ``AIGCLabel.to_json()`` (its name contains ``AIGC`` as Annex E asks)."""


def text_digest(content: str) -> bytes:
    """SHA-256 of the text as delivered (UTF-8), ignoring trailing line breaks."""
    return hashlib.sha256(content.rstrip("\r\n").encode("utf-8")).digest()


def explicit_parts(conf: TextLabelConfig, enabled: bool = True) -> tuple[str, str]:
    """(prefix, suffix) to put around a text, per ``labeling.text.position``."""
    if not enabled:
        return "", ""
    prefix = conf.prefix if conf.position in ("start", "both") else ""
    suffix = conf.suffix if conf.position in ("end", "both") else ""
    return prefix, suffix


class TextLabeler:
    """Labels text answers for one config; build once, use per response (thread-safe, no I/O per call)."""

    def __init__(self, cfg: HeguiConfig, *, explicit: bool | None = None) -> None:
        self._cfg = cfg
        self._key: Ed25519PrivateKey | None = load_signing_key(cfg)
        new_label(cfg)  # fail at start-up, not per request, on a bad provider config
        on = cfg.labeling.explicit if explicit is None else explicit
        self.explicit_prefix, self.explicit_suffix = explicit_parts(cfg.labeling.text, on)

    def apply_explicit(self, content: str) -> str:
        """``content`` with the explicit label(s); separated by a line break from the text."""
        out = content
        if self.explicit_prefix:
            out = self.explicit_prefix + "\n" + out
        if self.explicit_suffix:
            out = out.rstrip("\r\n") + "\n" + self.explicit_suffix
        return out

    def begin(self, *, label: str = "1") -> AIGCLabel:
        """An unsigned label with a fresh ProduceID, for the headers of a stream (sent before the text)."""
        return new_label(self._cfg, label=label)

    def implicit(self, content: str, *, label: str = "1", base: AIGCLabel | None = None) -> AIGCLabel:
        """The implicit label signed over ``content`` (exactly the text the client receives).

        ``base``: the label from :meth:`begin`, so a stream's final label keeps the ProduceID its
        headers announced; otherwise a fresh one.
        """
        start = base if base is not None else new_label(self._cfg, label=label)
        return sign(start, text_digest(content), self._key)

    def label(self, content: str, *, label: str = "1") -> tuple[str, AIGCLabel]:
        """Explicit label applied, and the implicit label signed over the result."""
        labelled = self.apply_explicit(content)
        return labelled, self.implicit(labelled, label=label)
