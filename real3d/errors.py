"""User-facing errors: one line that says what to do, exit code 2 (see cli.main)."""


class UserError(Exception):
    """A mistake the user can fix (bad config, bad option, missing file). Printed as one line."""

    exit_code = 2


class ConfigError(UserError):
    """An invalid configuration value, key, preset or YAML file."""
