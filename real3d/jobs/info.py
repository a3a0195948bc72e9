"""`real3d info`: what this machine is and what real3d will do on it (the block to paste into a bug report).

    real3d info [--json] [--threads N]

Torch and its threads, the CPU (model, ATen capability, the flags that decide speed), matmul GFLOP/s measured
in fp32 and bf16, the precision `auto` picks here, CUDA and nvdiffrast, and where the weights are looked for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from .. import precision
from ..precision import RATE_SIZE
from .args import positive_int

ENVIRONMENT = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "CUDA_VISIBLE_DEVICES",
)


def _cuda() -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"available": False, "built_with": torch.version.cuda}
    return {
        "available": True,
        "built_with": torch.version.cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "bf16": torch.cuda.is_bf16_supported(),
    }


def _nvdiffrast() -> str:
    try:
        import nvdiffrast  # noqa: F401
    except ImportError:
        return "not installed (the DMTet raster runs in pure torch)"
    from ..render.raster import nvdiffrast_available

    if nvdiffrast_available():
        return "installed, usable"
    return "installed, but no CUDA: the pure-torch raster is used"


def _weights() -> dict[str, str]:
    """Where each prior and the judge are looked for, and whether they are there."""
    from huggingface_hub import constants

    from ..priors.embedded import CONFIG_FILE, SHIPPED, WEIGHTS_FILE
    from ..priors.stable_diffusion import StableDiffusionPrior
    from ..toyworld.judge import WEIGHTS_DIR

    embedded = "present" if (SHIPPED / CONFIG_FILE).exists() and (SHIPPED / WEIGHTS_FILE).exists() else "MISSING"
    model_id = StableDiffusionPrior.Config().model_id
    sd_cache = Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}"
    sd = "present" if sd_cache.exists() else "not there (set prior.path to a local diffusers folder)"
    return {
        "embedded prior": f"{SHIPPED} ({embedded})",
        "stable diffusion": f"prior.path, else the offline Hugging Face cache: {sd_cache} ({sd})",
        "judge": str(WEIGHTS_DIR),
    }


def machine_report() -> dict[str, Any]:
    """Everything `real3d info` prints, as a dict (at the current torch thread count)."""
    rates = precision.matmul_rates()
    probe = precision.probe()
    native = precision.native_bf16(precision.cpu_flags())
    return {
        "real3d": _version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "cpu": precision.cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": precision.flags_that_matter(),
        "native_bf16_flags": {True: "yes", False: "no", None: "unknown (flags unreadable)"}[native],
        f"matmul_{RATE_SIZE}_gflops": {k: round(v, 1) for k, v in rates.items()},
        "probe_gflops": {"fp32": probe.fp32_gflops, "bf16": probe.bf16_gflops},
        "precision_auto": precision.name(precision.resolve("auto")),
        "cuda": _cuda(),
        "nvdiffrast": _nvdiffrast(),
        "weights": _weights(),
        "environment": {k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("real3d")
    except PackageNotFoundError:
        return "not installed (source tree)"


def format_report(r: dict[str, Any]) -> str:
    """The report as aligned `key: value` lines."""
    rates = r[f"matmul_{RATE_SIZE}_gflops"]
    probe = r["probe_gflops"]
    probe_text = (
        "skipped: the flags show no native bf16"
        if probe["fp32"] is None
        else f"fp32 {probe['fp32']:.0f}, bf16 {probe['bf16']:.0f} GFLOP/s"
    )
    cuda = r["cuda"]
    cuda_text = (
        ", ".join(cuda["devices"]) + f" (bf16 {'yes' if cuda['bf16'] else 'no'})"
        if cuda["available"]
        else f"not available (torch built with CUDA {cuda['built_with'] or 'none'})"
    )
    rows = [
        ("real3d", r["real3d"]),
        ("python", r["python"]),
        ("torch", r["torch"]),
        ("platform", r["platform"]),
        ("threads", f"{r['threads']} of {r['cpus']} CPUs"),
        ("cpu", r["cpu"]),
        ("cpu capability", r["cpu_capability"]),
        ("cpu flags", " ".join(r["cpu_flags"]) or "none of note"),
        ("native bf16", r["native_bf16_flags"]),
        (f"matmul {RATE_SIZE}²", f"fp32 {rates['fp32']:.0f}, bf16 {rates['bf16']:.0f} GFLOP/s"),
        ("precision probe", probe_text),
        ("precision auto", r["precision_auto"]),
        ("cuda", cuda_text),
        ("nvdiffrast", r["nvdiffrast"]),
        *((f"weights: {k}", v) for k, v in r["weights"].items()),
        *((f"env {k}", v) for k, v in r["environment"].items()),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)} : {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    report = machine_report()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    sys.stdout.flush()
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="this machine: torch, CPU flags, measured GFLOP/s, the precision auto picks")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--threads",
        type=positive_int,
        default=torch.get_num_threads(),
        help="torch CPU threads to measure with (default: torch's, %(default)s here)",
    )
    p.set_defaults(func=run)
