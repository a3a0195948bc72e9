"""Points drawn on a triangle surface: shared by the export (OffsetField's distances) and the toy world's
metrics (Chamfer), neither of which may depend on the other."""

from __future__ import annotations

import torch


def sample_surface(verts: torch.Tensor, faces: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n points [n,3] drawn uniformly on the mesh verts [V,3], faces [F,3] (triangles picked by area)."""
    tri = verts.detach().float()[faces]  # [F,3,3]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    pick = torch.multinomial(area, n, replacement=True, generator=generator)
    u, v = torch.rand(n, 1, generator=generator), torch.rand(n, 1, generator=generator)
    flip = (u + v) > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    t = tri[pick]
    return t[:, 0] + u * (t[:, 1] - t[:, 0]) + v * (t[:, 2] - t[:, 0])
