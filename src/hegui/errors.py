"""User-facing errors: one line naming what is wrong and where.

The CLI prints ``UserError`` as ``error: <message>`` and exits 2, never with a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from a person (config, file, argument). ``str()`` is the one line to show."""

    exit_code = 2


class ConfigError(UserError):
    """A config, policy or lexicon file is invalid. The message names file, line and field."""
