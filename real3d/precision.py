"""The compute precision of every network on the CPU, decided in one place: `precision: auto | fp32 | bf16`.

bfloat16 matrix products are about 2× fp32 on a CPU with native bf16 units (x86 `avx512_bf16` / `amx_bf16`,
Arm `bf16`) and about 100× slower where they are emulated (AVX2 only: 1 against 118 GFLOP/s measured). So
`auto` uses bf16 only where this process has measured it faster: the CPU's flags rule bf16 out at no cost
where they show no native unit; otherwise a short matmul probe (a few ms, once per process) compares the two.
A forced `bf16` on a CPU without native support still runs, with a one-line warning.

The networks that follow it (field MLP, the embedded prior's UNet for SDS and x̃, the discriminator, judge
and prior training) enter `autocast(device)`, which reads the mode set by `use(mode)` around a job
(default `auto`). Renderers, compositing and the judge's scoring stay in fp32, so metrics compare across
machines. On CUDA, `auto` means bf16 where the GPU supports it.
"""

from __future__ import annotations

import contextvars
import functools
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .errors import UserError

Precision = Literal["auto", "fp32", "bf16"]
MODES: tuple[str, ...] = ("auto", "fp32", "bf16")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 (AVX-512 BF16, AMX), Arm (FEAT_BF16)
FLAGS_THAT_MATTER = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
    "bf16",
    "i8mm",
)
PROBE_SIZE = 256  # n of the n×n @ n×n products of the probe
BF16_MARGIN = 1.25  # auto takes bf16 only if it measures at least this many times the fp32 rate
PROBE_ROUNDS = 8  # fp32 and bf16 timed in turn, 3 products each a round (a few ms in all on a native CPU)

_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("real3d_precision", default="auto")


@dataclass(frozen=True)
class Probe:
    """Matmul rates (GFLOP/s) this process measured, or None where the CPU flags made a probe needless."""

    fp32_gflops: float | None
    bf16_gflops: float | None

    @property
    def bf16_faster(self) -> bool:
        return (
            self.fp32_gflops is not None
            and self.bf16_gflops is not None
            and self.bf16_gflops >= BF16_MARGIN * self.fp32_gflops
        )


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (/proc/cpuinfo `flags` on x86, `Features` on Arm); None where unreadable."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return None


def cpu_name() -> str:
    """The CPU model (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def flags_that_matter() -> list[str]:
    """The vector and matrix-unit flags of this CPU that decide its speed here (empty where unreadable)."""
    flags = cpu_flags() or set()
    return [f for f in FLAGS_THAT_MATTER if f in flags]


def native_bf16(flags: set[str] | None) -> bool | None:
    """Whether the flags show a native bf16 unit (None: flags unknown, only a probe can tell)."""
    return None if flags is None else any(f in flags for f in NATIVE_BF16_FLAGS)


def matmul_gflops(dtype: torch.dtype, n: int = PROBE_SIZE, repeats: int = 3, budget_s: float = 0.25) -> float:
    """This machine's matmul rate in GFLOP/s: the fastest of `repeats` n×n @ n×n products in `dtype` (just
    the warm-up where that alone took over `budget_s`: an emulated dtype is seconds a product at n = 1024)."""
    gen = torch.Generator().manual_seed(0)  # its own: measuring must not move the global RNG of a seeded run
    a, b = torch.randn(n, n, generator=gen).to(dtype), torch.randn(n, n, generator=gen).to(dtype)
    start = time.perf_counter()
    a @ b  # warm-up (oneDNN / BLAS kernel selection)
    best = time.perf_counter() - start
    if best > budget_s:
        return 2 * n**3 / best / 1e9
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


RATE_SIZE = 1024  # n of the n×n products that `matmul_rates` times (the FLOP bounds of `bench speed`)


def matmul_rates(n: int = RATE_SIZE, repeats: int = 5) -> dict[str, float]:
    """This machine's matmul GFLOP/s in fp32 and bf16 at n×n (what `real3d info` and `bench speed` report)."""
    return {"fp32": matmul_gflops(torch.float32, n, repeats), "bf16": matmul_gflops(torch.bfloat16, n, repeats)}


@functools.cache
def probe() -> Probe:
    """Measure fp32 against bf16 once per process, unless the flags already rule bf16 out."""
    if native_bf16(cpu_flags()) is False:
        return Probe(None, None)
    fp32 = bf16 = 0.0
    for _ in range(PROBE_ROUNDS):  # interleaved, best of each: a busy moment (another process starting) slows
        fp32 = max(fp32, matmul_gflops(torch.float32))  # one round, not the comparison
        bf16 = max(bf16, matmul_gflops(torch.bfloat16))
    return Probe(fp32, bf16)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UserError(f"precision must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def resolve(mode: str | None = None, device: torch.device | str = "cpu") -> torch.dtype:
    """The dtype matrix products run in on `device` for `mode` (default: the mode set by `use`)."""
    mode = check_mode(mode or _MODE.get())
    device = torch.device(device)
    if mode == "fp32":
        return torch.float32
    if device.type == "cuda":
        if mode == "bf16" or torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if mode == "bf16":
        _warn_emulated()
        return torch.bfloat16
    return torch.bfloat16 if probe().bf16_faster else torch.float32


def name(dtype: torch.dtype) -> str:
    return "bf16" if dtype == torch.bfloat16 else "fp32"


@functools.cache
def _warn_emulated() -> None:
    """One line, once per process, when bf16 is forced where the CPU has no native unit for it."""
    if native_bf16(cpu_flags()) is False or not probe().bf16_faster:
        print(
            "real3d: warning: precision bf16 was asked for, but this CPU has no native bfloat16 units: it runs "
            "emulated, far slower than fp32 (precision=auto picks fp32 here)",
            file=sys.stderr,
        )


@contextmanager
def use(mode: str) -> Iterator[None]:
    """Run the enclosed job with precision `mode` (auto, fp32 or bf16)."""
    token = _MODE.set(check_mode(mode))
    try:
        if mode == "bf16":
            resolve(mode)  # the warning, if any, before the work starts
        yield
    finally:
        _MODE.reset(token)


def autocast(device: torch.device | str = "cpu") -> AbstractContextManager[None]:
    """torch.autocast to bf16 on `device` where the current mode resolves to bf16; a no-op under fp32."""
    device = torch.device(device)
    dtype = resolve(device=device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
