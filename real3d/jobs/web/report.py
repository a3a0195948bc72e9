"""`real3d report DIR`: one self-contained HTML file for a run, a multi-seed run or a bench / batch folder.

    real3d report outputs/demo                 # → outputs/demo/report.html
    real3d report outputs/bench --out bench.html

Everything is inside the file: the tables, the images (contact sheets, views, the evolution figure or a run's
snapshots) as data URIs, each model.glb as a data URI in an interactive viewer (the same vendored
<model-viewer> as `real3d serve`, inlined), so it opens from disk, with no server and no network. All text
from the run folders is HTML-escaped.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from ...errors import UserError, shorten
from ...io import write_text
from ..args import int_in

STATIC = Path(__file__).resolve().parent / "static"
REPORT_CSS = """
.report section { border-top: 1px solid #ddd; margin-top: 1.5em; }
.report img.sheet { max-width: 100%; image-rendering: pixelated; }
.report table.data { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
.report table.data td, .report table.data th { border: 1px solid #ddd; padding: .2em .5em; }
.report table.data td { text-align: right; font-variant-numeric: tabular-nums; }
.report table.data td:first-child { text-align: left; }
.report .strip img { width: 96px; height: 96px; image-rendering: pixelated; }
"""


def data_uri(path: Path, media: str) -> str:
    return f"data:{media};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def image(path: Path, alt: str, css: str = "sheet") -> str:
    if not path.is_file():
        return ""
    return f'<figure><img class="{css}" src="{data_uri(path, "image/png")}" alt="{html.escape(alt)}">' + (
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def viewer(path: Path, alt: str) -> str:
    """An orbit-and-zoom view of a GLB, the file itself inside the page."""
    src = data_uri(path, "model/gltf-binary")
    return (
        f'<model-viewer class="model" src="{src}" camera-controls interaction-prompt="none" '
        f'shadow-intensity="0" alt="{html.escape(alt)}"></model-viewer>'
    )


def table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="numbers">{body}</table>'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "–" if v is None else str(v)


def markdown_tables(text: str) -> str:
    """The paragraphs and pipe tables of a results.md as HTML (every cell escaped)."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if lines and all(line.startswith("|") for line in lines):
            rows = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in lines]
            rows = [r for r in rows if not all(set(c) <= set("-: ") for c in r)]  # the |---| row
            head = "".join(f"<th>{c}</th>" for c in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
            out.append(f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        elif lines:
            out.append(f"<p>{html.escape(' '.join(lines))}</p>")
    return "\n".join(out)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not readable JSON ({shorten(str(e))}); run the job again to rewrite it") from e
    return data if isinstance(data, dict) else {}


def run_section(folder: Path, title: str) -> str:
    """One run: its metrics, its model, the 12 judge views, its snapshots."""
    metrics = _read_json(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += [(f"{key}: {part}", v) for part, v in value.items()]
        elif key != "prompt":
            rows.append((key, value))
    model = folder / "model.glb"
    parts = [f"<h2>{html.escape(title)}</h2>", '<div class="row">']
    if model.is_file():
        parts.append(viewer(model, f"{title}: drag to orbit, scroll to zoom"))
    parts.append(table(rows) if rows else "<p>not finished: no metrics.json yet</p>")
    parts.append("</div>")
    parts.append(image(folder / "views.png", "the 12 views the judge scores (azimuth 0° to 330°)"))
    snaps = sorted((folder / "snapshots").glob("step-*.png")) if (folder / "snapshots").is_dir() else []
    if snaps:
        strip = "".join(
            f'<figure><img src="{data_uri(s, "image/png")}" alt="{s.stem}"><figcaption>{s.stem}</figcaption></figure>'
            for s in snaps
        )
        parts.append(f'<h3>Evolution</h3><div class="row strip">{strip}</div>')
    return "<section>" + "\n".join(parts) + "</section>"


def prompt_of(folder: Path) -> str:
    try:
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return folder.name
    return str(cfg.get("prompt", folder.name)) if isinstance(cfg, dict) else folder.name


def collection_sections(folder: Path, max_models: int) -> list[str]:
    """A bench or batch folder: results.md's tables, its contact sheets and evolution figure, then each cell
    that has a model (up to max_models), in an interactive viewer."""
    parts = ["<section><h2>Results</h2>"]
    if (folder / "results.md").is_file():
        parts.append(markdown_tables((folder / "results.md").read_text()))
    for sheet in sorted(folder.glob("contact-*.png")):
        parts.append(image(sheet, f"{sheet.stem}: rows are prompts, columns seeds (view at azimuth 30°)"))
    parts.append(image(folder / "evolution.png", "evolution: θ through the explicit renderer over the steps"))
    parts.append("</section>")
    cells = sorted(p.parent for p in folder.glob("cells/**/metrics.json"))
    with_model = [c for c in cells if (c / "model.glb").is_file()]
    shown = with_model[:max_models]
    parts.append(f"<section><h2>Models</h2><p>{len(cells)} finished cells, {len(with_model)} with a model.glb")
    if len(with_model) > len(shown):
        parts.append(f"; the first {len(shown)} are in this file (more with --max-models)")
    if len(with_model) < len(cells):
        parts.append("; the others have no model.glb (made before metrics-only cells wrote one)")
    parts.append(".</p></section>")
    for cell in shown:
        relative = cell.relative_to(folder / "cells").as_posix()
        parts.append(run_section(cell, f"{prompt_of(cell)} · {relative}"))
    return parts


def build(folder: Path, max_models: int = 24) -> str:
    """The report of `folder` as one HTML document."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give a run folder or a bench / batch folder")
    if (folder / "results.json").is_file():
        title, sections = f"real3d report: {folder.name}", collection_sections(folder, max_models)
    elif (folder / "config.yaml").is_file():
        title = f"real3d: {prompt_of(folder)}"
        sections = [run_section(folder, prompt_of(folder))]
        seeds = sorted(folder.glob("seed-*/config.yaml"))  # a multi-seed run: each seed under its own folder
        sections += [run_section(s.parent, f"{prompt_of(s.parent)} · {s.parent.name}") for s in seeds]
    else:
        raise UserError(
            f"{folder} holds neither a run (config.yaml) nor a bench or batch summary (results.json); "
            "give a folder that real3d generate, batch or bench quality wrote"
        )
    script = (STATIC / "model-viewer.min.js").read_text().replace("</script", "<\\/script")
    script = script.replace("//# sourceMappingURL=", "// source map (not shipped): ")
    css = (STATIC / "style.css").read_text() + REPORT_CSS
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{css}</style></head>\n"
        f'<body class="report"><header><span class="brand">real3d</span><span>{html.escape(title)}</span></header>'
        f"<main>{''.join(sections)}</main>\n<script>{script}</script>\n</body></html>\n"
    )


def run(args: argparse.Namespace) -> int:
    out = args.out or args.folder / "report.html"
    write_text(out, build(args.folder, args.max_models))
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB; open it in a browser, no server needed)")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML file for a run, bench or batch folder")
    p.add_argument("folder", type=Path, help="a run folder (generate) or a bench / batch folder")
    p.add_argument("--out", type=Path, help="the HTML file (default FOLDER/report.html)")
    p.add_argument("--max-models", type=int_in(0), default=24, help="models embedded from a bench / batch (24)")
    p.set_defaults(func=run)
