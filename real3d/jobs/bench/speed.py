"""`real3d bench speed`: milliseconds per component of one Eq. 11 step, against a FLOP lower bound.

    real3d bench speed [--preset real3d] [--threads 2] [--repeats 10] [--out DIR] [key.sub=value ...]

The system is built exactly as `real3d generate` builds it (preset + overrides, prompt "a red cube"), with
two changes so that every repeat of a component does the same work: both renderers draw on every step
(system.p_nerf = system.p_dmtet = 1) and every render uses one shading mode (`--shading`, lambertian by
default: the costlier mode, normals by finite differences). Each component is called with a generator
re-seeded to the same seed, so it sees the same views, light, t and ε on every repeat.

Per component: the median wall-clock ms over `--repeats` calls after a warm-up; the FLOPs of one call as
counted by torch's FlopCounterMode (matmul, convolution and attention only); bound = FLOPs / the best
matmul rate measured on this machine in the precision the run uses (`precision`, auto by default: bf16 where
the CPU runs it natively, else fp32); ratio = ms / bound, how far a component is from being limited by its
matrix products.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from ... import precision
from ...cameras import Cameras
from ...config import scheduled
from ...errors import UserError
from ...io import peak_rss_mb, write_text
from ...precision import RATE_SIZE
from ...priors.base import DiffusionPrior, Prior
from ...render.base import RenderOutput
from ...render.dmtet import Mesh
from ...system import Real3DSystem, build_prior, deterministic
from ..args import positive_int
from ..generate import run_config

PROMPT = "a red cube"
SHADING_MODES = ("lambertian", "albedo", "textureless", "preset")
STEP = 1  # the step index the whole-step row runs at: no periodic upkeep unless an upkeep period is 1
REAL_BATCH = 4  # x̃ per D step (as Real3DSystem.training_step draws them)

Renders = list[tuple[RenderOutput, Cameras]]


# ------------------------------------------------------------------------------------ measuring


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock milliseconds of fn() over `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _sdpa_cpu_flops(
    query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int], *args: object, **kwargs: object
) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flops(
    grad_out_shape: Sequence[int],
    query_shape: Sequence[int],
    key_shape: Sequence[int],
    value_shape: Sequence[int],
    *args: object,
    **kwargs: object,
) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# FlopCounterMode knows the CUDA attention kernels only; the CPU one has the same shapes ([B,heads,L,E])
_CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops,
}


class _GlobalOnly:
    """FlopCounterMode's module tracker reduced to the global total. The real one hooks every module's inputs,
    which autograd.grad on a leaf input refuses (D's R1 penalty); per-module counts are not needed here."""

    parents = {"Global"}

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def eager(prior: Prior) -> AbstractContextManager[None]:
    """The prior's networks run eagerly inside (a DiffusionPrior may otherwise run a traced graph)."""
    return prior.eager() if isinstance(prior, DiffusionPrior) else nullcontext()


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of fn() (forward and any backward it runs): matmul, convolution and attention only."""
    counter = FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
    counter.mod_tracker = _GlobalOnly()  # type: ignore[assignment]
    with counter:
        fn()
    return int(counter.get_total_flops())


# ------------------------------------------------------------------------------------- the system


def forced_overrides(shading: str) -> list[str]:
    """What the benchmark pins on top of the preset: both renders every step, one shading mode."""
    forced = ["system.p_nerf=1.0", "system.p_dmtet=1.0"]
    return forced if shading == "preset" else [*forced, f"shading.probs={{{shading}: 1.0}}"]


def build_system(
    preset: str = "real3d", overrides: Sequence[str] = (), shading: str = "lambertian", progress: bool = False
) -> Real3DSystem:
    """The system of a `real3d generate` run of the preset on PROMPT, with `forced_overrides`, in training
    mode, after its step 0 (occupancy grid and DMTet band measured, every kernel warmed up)."""
    if shading not in SHADING_MODES:
        raise UserError(f"unknown shading '{shading}'; choose one of {', '.join(SHADING_MODES)}")
    cfg = run_config(preset, PROMPT, [*overrides, *forced_overrides(shading)])
    system = Real3DSystem(cfg, build_prior(cfg), progress)
    system.train()
    system.training_step(0, _generator(cfg.seed))
    return system


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _backward(out: RenderOutput) -> None:
    """A scalar of the render (colour and coverage) back to θ."""
    (out.rgb.mean() + out.opacity.mean()).backward()


@contextmanager
def fixed_mesh(renderer: torch.nn.Module, mesh: Mesh) -> Iterator[None]:
    """The DMTet renderer rasterizes `mesh` instead of extracting one (an instance attribute shadows `mesh()`)."""
    renderer.__dict__["mesh"] = lambda: mesh
    try:
        yield
    finally:
        del renderer.__dict__["mesh"]


def sample_renders(system: Real3DSystem) -> Renders:
    """x'1 (NeRF at v1) and x'2 (DMTet at v2), detached: the inputs of the prior, SDS and D rows."""
    cfg, gen = system.cfg, _generator(system.cfg.seed)
    v1, v2 = system.views(gen, 0)
    with torch.no_grad():
        x1 = system.render(system.model.renderer, v1, cfg.system.nerf_resolution, gen)  # rgb [1,n1,n1,3]
        x2 = system.render(system.model.explicit, v2, cfg.system.dmtet_resolution, gen)  # rgb [1,n2,n2,3]
    return [(x1, v1), (x2, v2)]


# ------------------------------------------------------------------------------------- components


@dataclass
class Component:
    """One timed piece of the step: a key for JSON, a label for the table, one call of the work."""

    key: str
    label: str
    call: Callable[[], object]


def render_components(system: Real3DSystem) -> list[Component]:
    """NeRF x'1 and DMTet x'2 forward + backward to θ, and DMTet split into extract (Eq. 9) and raster (Eq. 10)."""
    cfg, model, seed = system.cfg.system, system.model, system.cfg.seed

    def render(renderer: torch.nn.Module, view: int, size: int) -> Callable[[], None]:
        def call() -> None:
            system.optimizer.zero_grad(set_to_none=True)
            gen = _generator(seed)
            cams = system.views(gen, 0)[view]
            _backward(system.render(renderer, cams, size, gen))

        return call

    def extract() -> None:
        system.optimizer.zero_grad(set_to_none=True)
        model.explicit.mesh().verts.sum().backward()  # verts [V,3] → τ of the crossed tets and Δu

    mesh = model.explicit.mesh()
    leaf = Mesh(mesh.verts.detach().requires_grad_(), mesh.faces)  # the extracted surface, as a leaf

    def raster() -> None:
        with fixed_mesh(model.explicit, leaf):
            render(model.explicit, 1, cfg.dmtet_resolution)()

    grid, n1, n2 = model.explicit.cfg.grid_resolution, cfg.nerf_resolution, cfg.dmtet_resolution
    samples = model.renderer.cfg.num_samples
    return [
        Component("nerf", f"NeRF render x'1 ({n1}², {samples} samples/ray), fwd+bwd", render(model.renderer, 0, n1)),
        Component("dmtet", f"DMTet render x'2 ({n2}², grid {grid}³), fwd+bwd", render(model.explicit, 1, n2)),
        Component("dmtet_extract", f"├ DMTet extract (Eq. 9, {mesh.faces.shape[0]} faces), fwd+bwd", extract),
        Component("dmtet_raster", "└ DMTet raster + shade (Eq. 10), fwd+bwd", raster),
    ]


def guidance_components(system: Real3DSystem, renders: Renders) -> list[Component]:
    """The prior's ε̂ with CFG on both renders (no grad), and SDS: that call + backward to the pixels."""
    prior, cfg, seed = system.prior, system.cfg, system.cfg.seed
    with torch.no_grad():
        x = torch.cat([prior.encode_images(out.rgb) for out, _ in renders])  # [2,C,h,w] model space
        emb = system.prompt(torch.cat([c.azimuth for _, c in renders]), torch.cat([c.elevation for _, c in renders]))
    t = torch.full((len(renders),), prior.num_train_timesteps // 2, device=x.device)  # [2]
    scale = scheduled(cfg.sds.guidance_scale, STEP)

    @torch.no_grad()
    def predict() -> None:
        prior.predict_noise(x, t, emb, scale)  # one UNet call on [uncond; cond] = 4 images

    def score_distillation() -> None:
        leaves = [(dataclasses.replace(out, rgb=out.rgb.detach().requires_grad_()), c) for out, c in renders]
        system.score_distillation(leaves, STEP, _generator(seed)).backward()

    return [
        Component("prior", f"prior ε̂ with CFG (s={scale:g}), batch {len(renders)}, no grad", predict),
        Component("sds", f"SDS, batch {len(renders)}: ε̂ + backward to the pixels", score_distillation),
    ]


def discriminator_components(system: Real3DSystem, renders: Renders) -> list[Component]:
    """D's step of Eq. 4 on REAL_BATCH x̃ and the two renders, without and (if on) with the lazy R1 penalty.
    D's step counter is pinned before each call so that R1 is off, or on, every time."""
    d, seed = system.discriminator, system.cfg.seed
    if d is None:
        return []
    fakes = [out.rgb for out, _ in renders]  # [1,n1,n1,3], [1,n2,n2,3]

    def update(d_steps: int) -> Callable[[], None]:
        def call() -> None:
            gen = _generator(seed)
            real = system.reference[torch.randint(len(system.reference), (REAL_BATCH,), generator=gen)]
            d.steps.fill_(d_steps)
            d.update(real.float() / 255, fakes, gen)  # real [4,H,W,3] in [0,1]

        return call

    rows = [Component("d_step", f"D step (Eq. 4): {REAL_BATCH} x̃ + {len(fakes)} renders", update(1))]
    if d.cfg.r1_gamma > 0:
        rows.append(Component("d_step_r1", f"D step with R1 (lazy: every {d.cfg.r1_every}th D step)", update(0)))
    return rows


def step_component(system: Real3DSystem) -> Component:
    """The whole Eq. 11 step, `Real3DSystem.training_step`, at step STEP (no upkeep) with D's R1 off."""

    def call() -> None:
        if system.discriminator is not None:
            system.discriminator.steps.fill_(1)
        system.training_step(STEP, _generator(system.cfg.seed))

    return Component("step", "Eq. 11 step: both renders, SDS, L_adv, Adam, D step", call)


def components(system: Real3DSystem) -> list[Component]:
    """Every row of the table, in order; the whole step last."""
    renders = sample_renders(system)
    return [
        *render_components(system),
        *guidance_components(system, renders),
        *discriminator_components(system, renders),
        step_component(system),
    ]


# ------------------------------------------------------------------------------------------ report


@dataclass
class Row:
    key: str
    label: str
    ms: float  # median wall clock
    flops: int  # FlopCounterMode: matmul, convolution and attention of one call
    bound_ms: float  # flops at the machine's best matmul rate
    ratio: float  # ms / bound_ms (inf where nothing was counted)


@dataclass
class SpeedReport:
    rows: list[Row]
    machine: dict[str, Any]  # torch, threads, cpu, matmul GFLOP/s per dtype, the rate the bound uses, peak RSS
    setup: dict[str, Any] = field(default_factory=dict)  # preset, overrides, shading, repeats

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)

    def markdown(self) -> str:
        """The table, the machine line and the footnotes, as markdown."""
        m, s = self.machine, self.setup
        lines = ["| component | ms | GFLOP¹ | bound ms | ratio |", "|---|---:|---:|---:|---:|"]
        for r in self.rows:
            bound = f"{r.bound_ms:.2f} | {r.ratio:.{1 if r.ratio < 10 else 0}f}" if r.flops else "– | –"
            lines.append(f"| {r.label} | {r.ms:.1f} | {r.flops / 1e9:.3f} | {bound} |")
        rates = ", ".join(f"{k} {v:.0f}" for k, v in m["matmul_gflops"].items())
        lines += [
            "",
            f"machine: torch {m['torch']}, {m['threads']} threads ({m['cpu']}, {m['cpus']} CPUs, capability "
            f"{m['cpu_capability']}, flags {' '.join(m['cpu_flags']) or 'none of note'}; 1-min load "
            f"average {m['load_average']:.1f} at the end: timings need an idle machine); matmul "
            f"{RATE_SIZE}² GFLOP/s: {rates}; networks in {m['precision']}, the bound uses "
            f"{m['bound_gflops']:.0f}; peak RSS {m['peak_rss_mb']:.0f} MB",
            f"setup: preset {s['preset']}, forced {' '.join(s['forced'])}"
            + (f", overrides {' '.join(s['overrides'])}" if s["overrides"] else "")
            + f"; median of {s['repeats']} after {s['warmup']} warm-up",
            "¹ FlopCounterMode counts matmul, convolution and attention only (not elementwise ops, "
            "grid_sample, interpolation or the rasterizer's gathers and scatters): bound ms = GFLOP / the "
            "matmul rate of the networks' precision is a lower bound for those ops alone; ratio = ms / bound.",
            f"The Eq. 11 step runs at step {STEP}: without the periodic upkeep (occupancy-grid refresh, DMTet "
            "band re-centring and full re-measure) and without D's lazy R1 (its own row).",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        rows = [{**dataclasses.asdict(r), "ratio": None if r.ratio == float("inf") else r.ratio} for r in self.rows]
        return {"rows": rows, "machine": self.machine, "setup": self.setup}


def machine_info(rates: dict[str, float], used: str) -> dict[str, Any]:
    """Torch version, threads, CPU and its flags that matter, the measured matmul rates, the precision the
    networks ran in (whose rate the bound uses), peak RSS so far."""
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": precision.cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": precision.flags_that_matter(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "matmul_gflops": rates,
        "precision": used,
        "bound_gflops": rates[used],
        "peak_rss_mb": peak_rss_mb(),
    }


def measure(system: Real3DSystem, repeats: int, warmup: int = 1) -> tuple[list[Row], dict[str, float], str]:
    """Rows of every component (median ms, FLOPs, bound, ratio) in the run's precision, the matmul rates
    and that precision (the bound uses its rate)."""
    rates = precision.matmul_rates()
    used = precision.name(precision.resolve(system.cfg.precision))
    best = rates[used] * 1e9 / 1000  # FLOP per ms in the precision the networks run in
    rows = []
    with precision.use(system.cfg.precision):
        for c in components(system):
            ms = median_ms(c.call, repeats, warmup)
            with eager(system.prior):  # FlopCounterMode cannot see into a traced graph's fused kernels
                flops = count_flops(c.call)
            bound = flops / best
            rows.append(Row(c.key, c.label, ms, flops, bound, ms / bound if flops else float("inf")))
    return rows, rates, used


def speed(
    preset: str = "real3d",
    overrides: Sequence[str] = (),
    repeats: int = 10,
    shading: str = "lambertian",
    warmup: int = 1,
    progress: bool = False,
) -> SpeedReport:
    """Python API of `real3d bench speed` (at the current torch thread count): build the system, time and count
    every component, and report with the machine's matmul rates and peak RSS."""
    if repeats < 1 or warmup < 0:
        raise UserError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    with deterministic():
        system = build_system(preset, overrides, shading, progress)
        rows, rates, used = measure(system, repeats, warmup)
    setup = {
        "preset": preset,
        "overrides": list(overrides),
        "forced": forced_overrides(shading),
        "shading": shading,
        "repeats": repeats,
        "warmup": warmup,
    }
    return SpeedReport(rows, machine_info(rates, used), setup)


def write_report(report: SpeedReport, out: Path) -> None:
    """speed.json and speed.md in `out`, each written atomically."""
    write_text(out / "speed.json", json.dumps(report.to_dict(), indent=2))
    write_text(out / "speed.md", report.markdown() + "\n")


# --------------------------------------------------------------------------------------------- CLI


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    report = speed(args.preset, args.overrides, args.repeats, args.shading, progress=True)
    print(report.markdown())
    if args.out is not None:
        write_report(report, args.out)
        print(f"written: {args.out / 'speed.json'}, {args.out / 'speed.md'}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    from ..args import add_config_arguments

    p = sub.add_parser("speed", help="ms per component of the Eq. 11 step against its FLOP lower bound")
    add_config_arguments(p, default_preset="real3d")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--repeats", type=positive_int, default=10, help="timed calls per component (default 10)")
    p.add_argument(
        "--shading",
        choices=SHADING_MODES,
        default="lambertian",
        help="shading of every render (default lambertian; 'preset' draws it as a run does)",
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="also write speed.json and speed.md into DIR")
    p.set_defaults(func=run)
