"""`real3d bench quality|speed`: one parser with a subcommand per benchmark (each module's add_cli)."""

from __future__ import annotations

import argparse


def add_cli(sub: argparse._SubParsersAction) -> None:
    from . import quality, speed

    p = sub.add_parser("bench", help="benchmarks: quality on toy-world ground truth, speed per component")
    kinds = p.add_subparsers(dest="bench", metavar="KIND", parser_class=type(p), required=True)
    quality.add_cli(kinds)
    speed.add_cli(kinds)
