"""How does the field's size evolve during a run? (issue #19: spheres that grow into the bounding box)

    python benchmarks/growth.py "a blue sphere" [key.sub=value ...] [--every 100] [--preset real3d]

Trains one run of the prompt with a preset (the preset at its own budget, with the overrides given; nothing is
written) and every `--every` steps prints the size of θ: the radius of the ball whose volume equals the
part of the bounding cube inside the surface (τ > 0.1, Eq. 9's ε) and where τ > 0.5, sampled on a 40³ grid,
the extent of τ > 0.1 along the up axis (z) and across it (x, y: the wider), the NeRF's mean opacity
over the judge's 12 views at 32 px, the mean albedo of θ where τ > 0.1 (does SDS drive a colour to its ends, and
when?) and the size of its logits before the sigmoid (past about 6 the sigmoid's slope is under 1/400: no
force moves the colour back) and, with a discriminator, D's mean D(x̃) and D(x') over the steps since the
last row (both near 0.5: D cannot tell the renders from x̃, and its gradient carries nothing). For comparison
the GT object's own equivalent radius is printed first (the GT sphere's radius is 0.7).
"""

from __future__ import annotations

import argparse
import math

import torch

from real3d import precision
from real3d.jobs.generate import run_config
from real3d.system import Real3DSystem, build_prior
from real3d.toyworld.runs import CAMERAS
from real3d.toyworld.scene import parse


def equivalent_radius(inside: torch.Tensor, bound: float) -> float:
    """Radius of the ball with the volume of the True share of a cube [−bound, bound]³ sampled by `inside`."""
    volume = float(inside.float().mean()) * (2 * bound) ** 3
    return (volume * 3 / (4 * math.pi)) ** (1 / 3)


def extents(points: torch.Tensor) -> str:
    """'height × width' of points [N,3]: their span along z (up) and the wider of their spans along x and y."""
    if len(points) == 0:
        return "empty"
    span = points.amax(0) - points.amin(0)  # [3]
    return f"{float(span[2]):.2f} × {float(span[:2].max()):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--preset", default="real3d")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = run_config(args.preset, args.prompt, args.overrides)
    generator = torch.Generator().manual_seed(cfg.seed)
    with precision.use(cfg.precision):
        system = Real3DSystem(cfg, build_prior(cfg), False)
        field = system.model.field
        g = torch.linspace(-field.bound, field.bound, 40)
        grid = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)  # [40³,3]
        gt_inside = parse(args.prompt).sdf(grid) < 0
        print(f"GT: radius {equivalent_radius(gt_inside, field.bound):.2f}, {extents(grid[gt_inside])}")
        print(
            "| step | radius (τ > 0.1) | radius (τ > 0.5) | height × width (τ > 0.1) | NeRF opacity | albedo (τ > 0.1) "
            "| albedo logit, mean |·| / max |·| | D(x̃) / D(x') |"
        )
        print("|---:|---:|---:|---:|---:|---|---:|---:|")
        d_seen: list[tuple[float, float]] = []  # (D(x̃), D(x')) of each step since the last row
        for step in range(1, cfg.steps + 1):
            system.train()
            stats = system.training_step(step, generator)
            if "d_real" in stats:
                d_seen.append((stats["d_real"], stats["d_fake"]))
            if step % args.every == 0 or step == 1:
                system.eval()
                with torch.no_grad():
                    tau = torch.cat([field.tau(x) for x in grid.split(20000)])
                    opacity = system.model.renderer(CAMERAS, 32, 32, "albedo").opacity.mean()
                    inside = grid[tau > 0.1]
                    albedo = field.albedo(inside).float().mean(0) if len(inside) else None
                    logits = field.albedo_logits(inside).abs() if len(inside) else None  # [N,3]
                r1, r5 = equivalent_radius(tau > 0.1, field.bound), equivalent_radius(tau > 0.5, field.bound)
                shape = extents(grid[tau > 0.1])
                d = " / ".join(f"{sum(v) / len(v):.2f}" for v in zip(*d_seen)) if d_seen else "–"
                d_seen = []
                rgb = ", ".join(f"{c:.2f}" for c in albedo.tolist()) if albedo is not None else "–"
                logit = f"{float(logits.mean()):.1f} / {float(logits.max()):.1f}" if logits is not None else "–"
                print(
                    f"| {step} | {r1:.2f} | {r5:.2f} | {shape} | {float(opacity):.2f} | {rgb} | {logit} | {d} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
