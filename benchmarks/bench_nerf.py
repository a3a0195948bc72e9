"""NeRF renderer speed: ms per render forward + backward on this CPU, and the levers behind it.

    .venv/bin/python benchmarks/bench_nerf.py [--threads 2] [--repeats 10]

Prints three markdown tables: (1) the renderer at 64² and 32² pixels × 64 samples for the field at its
initial density blob (an object-sized occupied region), per shading mode; (2) the levers — occupancy-grid
skipping off, and the field's precision fp32 or bf16 against what `auto` picks; (3) the grid encodings
compared when choosing the field (20k points, encode + backward).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timing import setup, timed  # benchmarks/timing.py (scripts run from benchmarks/ on sys.path)

from real3d import config as config_lib
from real3d import precision
from real3d.cameras import orbit
from real3d.model import SceneConfig, SceneModel


def scene(overrides: list[str]) -> SceneModel:
    torch.manual_seed(0)
    model = SceneModel(config_lib.parse(SceneConfig, config_lib.apply_overrides({}, overrides)))
    model.train()
    model.renderer.grid.update(model.field.density, torch.Generator().manual_seed(0))
    return model


def render_fn(model: SceneModel, size: int, mode: str) -> Callable[[], torch.Tensor]:
    cams = orbit(1, elevation=20.0, radius=2.5, fovy=45.0)
    return lambda: model.renderer(cams, size, size, mode, light=cams.position).rgb


def renderer_table(repeats: int) -> None:
    model = scene([])
    print("| pixels | samples/ray | shading | ms fwd+bwd | occupied cells |")
    print("|---|---|---|---|---|")
    for size in (64, 32):
        for mode in ("albedo", "lambertian"):
            ms = timed(render_fn(model, size, mode), repeats)
            print(f"| {size}×{size} | 64 | {mode} | {ms:.1f} | {model.renderer.grid.fraction():.1%} |")


def levers_table(repeats: int) -> None:
    print("\n| 64×64 × 64 samples, albedo | ms fwd+bwd |")
    print("|---|---|")
    auto = precision.name(precision.resolve("auto"))
    variants = {
        f"as configured (precision auto: {auto} here)": ("auto", False),
        "precision fp32": ("fp32", False),
        "precision bf16": ("bf16", False),
        "no empty-space skipping": ("auto", True),
    }
    for name, (mode, all_occupied) in variants.items():
        model = scene([])
        if all_occupied:
            model.renderer.grid.occupied.fill_(True)
        with precision.use(mode):
            print(f"| {name} | {timed(render_fn(model, 64, 'albedo'), repeats):.1f} |")


def encodings_table(repeats: int) -> None:
    x = torch.rand(20000, 3) * 2 - 1
    print("\n| encoding (20k points) | params | ms encode+bwd |")
    print("|---|---|---|")
    for res, ch in ((64, 12), (128, 12), (128, 16)):
        planes = torch.nn.Parameter(torch.randn(3, ch, res, res) * 0.1)
        coords = torch.stack([x[:, [0, 1]], x[:, [0, 2]], x[:, [1, 2]]])[:, None]
        ms = timed(lambda: F.grid_sample(planes, coords, align_corners=False), repeats)
        print(f"| triplane {res}², {ch} ch | {planes.numel() / 1e6:.2f} M | {ms:.1f} |")
    for levels, ch in (((16, 32, 64), 4), ((16, 32, 64, 128), 4)):
        grids = [torch.nn.Parameter(torch.randn(1, ch, r, r, r) * 0.1) for r in levels]
        c = x[None, :, None, None, :]
        ms = timed(lambda: torch.cat([F.grid_sample(g, c, align_corners=False) for g in grids], 1), repeats)
        n = sum(g.numel() for g in grids) / 1e6
        print(f"| dense 3D grids {'/'.join(map(str, levels))}, {ch} ch | {n:.2f} M | {ms:.1f} |")


def main() -> None:
    args = setup(__doc__.splitlines()[0])
    renderer_table(args.repeats)
    levers_table(args.repeats)
    encodings_table(args.repeats)


if __name__ == "__main__":
    main()
