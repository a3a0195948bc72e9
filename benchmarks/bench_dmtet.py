"""DMTet renderer speed (Eq. 9–10): ms per render forward + backward on this CPU, field evaluation included.

    .venv/bin/python benchmarks/bench_dmtet.py [--threads 2] [--repeats 10]

Prints two markdown tables: (1) the DMTet renderer on the field at its initial density blob (a ball of radius
≈ 0.4), lambertian shading, one view, loss on rgb + opacity, against the issue's targets — in the training
steady state (narrow band on) and with the whole grid measured every step (τ is measured without gradients
on the band / grid, then evaluated with gradients only on the tets the surface crosses); (2) the parts: the
naive marching tetrahedra (gradients through τ at every grid vertex), and the rasterizer alone (20k faces,
128², with antialiasing).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from timing import setup, timed  # benchmarks/timing.py (scripts run from benchmarks/ on sys.path)

from real3d.cameras import orbit
from real3d.field import TriplaneField
from real3d.render.dmtet import DMTetRenderer, marching_tets, tet_grid
from real3d.render.raster import TorchRasterizer, interpolate, to_clip
from real3d.render.shading import ShadingConfig, SolidBackground

TARGETS_MS = {(32, 64): 60.0, (64, 128): 200.0}  # (grid, pixels) → issue 4's budget with 2 threads


def make_field() -> TriplaneField:
    torch.manual_seed(0)
    return TriplaneField(TriplaneField.Config())


def renderer_table(repeats: int) -> None:
    field = make_field()
    cams = orbit(1, elevation=20.0, radius=2.5, fovy=45.0)
    light = F.normalize(cams.position, dim=-1)
    print("| grid | pixels | τ measured on | vertices measured | faces | ms fwd+bwd | target ms |")
    print("|---|---|---|---|---|---|---|")
    grids: tuple[tuple[Literal[32, 64, 128], int], ...] = ((32, 64), (64, 128), (128, 128))
    for grid, size in grids:
        for band in (True, False):
            cfg = DMTetRenderer.Config(grid_resolution=grid, narrow_band=band, band_start_step=0)
            renderer = DMTetRenderer(
                cfg, field=field, background=SolidBackground(SolidBackground.Config()), shading=ShadingConfig()
            )
            renderer.train()
            renderer.update_step(1)  # the steady state: band measured and centred (no full re-measure this step)

            def step() -> torch.Tensor:
                out = renderer(cams, size, size, "lambertian", light)
                return torch.cat([out.rgb, out.opacity], -1)

            ms = timed(step, repeats)
            geo = renderer.geometry
            n_eval = geo.band[0].numel() if band and geo.band is not None else geo.grid.verts.shape[0]
            faces = renderer.mesh().faces.shape[0]
            target = TARGETS_MS.get((grid, size)) if band else None
            print(
                f"| {grid}³ | {size}² | {'narrow band' if band else 'whole grid'} | {n_eval:,} | {faces:,} | "
                f"{ms:.1f} | {f'≤ {target:.0f}' if target else '–'} |"
            )


def parts_table(repeats: int) -> None:
    field = make_field()
    print("\n| part | ms fwd+bwd |")
    print("|---|---|")
    for res in (32, 64):
        grid = tet_grid(res, field.bound)
        tets = grid.all_tets()
        verts = grid.verts.clone().requires_grad_(True)
        ms = timed(lambda: marching_tets(verts, field.tau(verts) - 0.1, tets).verts, repeats)
        print(
            f"| naive: τ with gradients on all {grid.verts.shape[0]:,} vertices + marching tets, grid {res}³ "
            f"| {ms:.1f} |"
        )
    verts, faces = _icosphere()
    cams = orbit(1, elevation=20.0, radius=2.5, fovy=45.0)
    rast = TorchRasterizer()
    v = verts.clone().requires_grad_(True)

    def raster_step() -> torch.Tensor:
        clip = to_clip(v, cams.mvp(128, 128))
        r = rast.rasterize(clip, faces, 128, 128)
        xyz = interpolate(v, r, faces)
        return rast.antialias(torch.cat([xyz, r.mask[..., None].float()], -1), r, clip, faces)

    ms = timed(raster_step, repeats)
    print(f"| rasterize + interpolate + antialias, {faces.shape[0]:,} faces, 128² | {ms:.1f} |")


def _icosphere() -> tuple[torch.Tensor, torch.Tensor]:
    """A 20,480-face sphere of radius 0.6."""
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=5, radius=0.6)
    return torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces)


def main() -> None:
    args = setup(__doc__.splitlines()[0])
    renderer_table(args.repeats)
    parts_table(args.repeats)


if __name__ == "__main__":
    main()
