"""`real3d` command line: one entry point, one subcommand per job.

Each job module exposes `add_cli(subparsers)` which adds its parser and sets `func=run(args)`. User mistakes
raise UserError and are printed here as one line (exit 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence

from .errors import UserError, one_line


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see '{self.prog} --help')")


def _subcommands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from .jobs import batch, export, fit, generate, info, sample, toyworld, train_prior
    from .jobs.bench import cli as bench_cli
    from .jobs.web import app as web_app
    from .jobs.web import report

    return [
        generate.add_cli,
        fit.add_cli,
        toyworld.add_cli,
        export.add_cli,
        train_prior.add_cli,
        sample.add_cli,
        bench_cli.add_cli,
        batch.add_cli,
        info.add_cli,
        web_app.add_cli,
        report.add_cli,
    ]


def build_parser() -> Parser:
    parser = Parser(
        prog="real3d",
        description="Text-to-3D generation with Real3D (SDS + discriminator, "
        "implicit NeRF + explicit DMTet renderers).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for add in _subcommands():
        add(sub)
    return parser


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (timeout, Ray, Kubernetes) stops like Ctrl-C; training loops catch both


def _resource_error(e: BaseException) -> str | None:
    """A one-line message for an exception that the size of a user's request causes (memory), else None."""
    text = str(e)
    if isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower():
        return "out of memory: lower the resolutions, samples or batch of the run (see real3d info for this machine)"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The one boundary where user input enters: a mistake (UserError) is one line and exit 2, Ctrl-C or
    SIGTERM exit 130, and anything else is a bug: its traceback, then a line that says so (exit 1)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from local folders only, never a hub
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own bars only: errors stay one line
    parser = build_parser()
    try:
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    except ValueError:  # not the main thread (a server's worker): leave signals alone
        previous = None
    try:
        args, extra = parser.parse_known_args(argv)
        # dotted overrides may come after options (`generate "x" --out d steps=10`): argparse leaves them over
        unknown = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if extra:
            args.overrides = [*args.overrides, *extra]
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"real3d: error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("real3d: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = _resource_error(e)
        if message is not None:
            print(f"real3d: error: {message}", file=sys.stderr)
            return 2
        traceback.print_exc()
        print(
            f"real3d: internal error ({type(e).__name__}): a bug in real3d, not in your input; please report it "
            "with the traceback above and the output of 'real3d info'",
            file=sys.stderr,
        )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
