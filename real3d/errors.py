"""User-facing errors: one line that says what to do, exit code 2 (printed by cli.main, the one boundary)."""

from __future__ import annotations

import re

MAX_MESSAGE = 300  # characters of a message line; longer user input is cut in the middle


class UserError(Exception):
    """A mistake the user can fix (bad config, bad option, missing file). Printed as one line."""

    exit_code = 2


class ConfigError(UserError):
    """An invalid configuration value, key, preset or YAML file."""


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` as one printable line of at most `limit` characters: control characters shown as escapes, lone
    surrogates (undecodable bytes of a command line) as \\udcXX, the middle of a long text cut."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)
    if len(text) > limit:
        keep = (limit - 5) // 2
        text = f"{text[:keep]} […] {text[-keep:]}"
    return text


def shorten(text: str, limit: int = 60) -> str:
    """A user's input quoted inside a message: one line, at most `limit` characters."""
    return one_line(text, limit)
