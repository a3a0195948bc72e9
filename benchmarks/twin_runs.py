"""Do two configs train θ's body (geometry planes, MLP, DMTet's deformation and level, the occupancy grid) bit
for bit alike? Trains both side by side and prints the first step where the body differs, or that none did.

    .venv/bin/python benchmarks/twin_runs.py "a blue cube with a door" --steps 200 \
        --a regularizers.lambda_albedo_logit=0.3 \
        --b regularizers.lambda_albedo_logit=0.3 <the decal recipe> system.decal_in_training=false

(docs/results.md, twenty-fifth round: a decal hidden from SDS and D leaves the body as it trains without one.)
"""

from __future__ import annotations

import argparse

import torch

from real3d.jobs.generate import run_config
from real3d.system import Real3DSystem, build_prior, deterministic


def body(system: Real3DSystem) -> list[torch.Tensor]:
    """What the density and the mesh depend on: the geometry planes, the MLP, DMTet's deformation and level,
    and the NeRF's occupancy grid."""
    field, geometry = system.model.field, system.model.explicit.geometry
    return [
        field.planes[:, : system.cfg.field.channels].detach().clone(),
        *(p.detach().clone() for p in field.net.parameters()),
        geometry.deformation.detach().clone(),
        torch.tensor(float(geometry.eps)),
        system.model.renderer.grid.density_ema.clone(),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("prompt")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--a", nargs="*", default=[], help="overrides of the first run")
    p.add_argument("--b", nargs="*", default=[], help="overrides of the second run")
    args = p.parse_args()
    torch.set_num_threads(2)
    systems = []
    for overrides in (args.a, args.b):
        cfg = run_config("real3d", args.prompt, overrides)
        systems.append((Real3DSystem(cfg, build_prior(cfg)), torch.Generator().manual_seed(cfg.seed)))
    with deterministic():
        for step in range(args.steps):
            for system, generator in systems:
                system.training_step(step, generator)
            a, b = (body(s) for s, _ in systems)
            if not all(torch.equal(x, y) for x, y in zip(a, b, strict=True)):
                print(f"the bodies differ after step {step}")
                return
    print(f"the bodies are identical after each of {args.steps} steps")


if __name__ == "__main__":
    main()
