"""real3d: text-to-3D with score distillation, a discriminator and dual implicit/explicit renderers (Real3D).

from real3d import generate
generate("a red cube on top of a blue sphere", out="outputs/cube")
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # the API loads torch only when it is used
    if name == "generate":
        from .jobs.generate import generate

        return generate
    raise AttributeError(f"module 'real3d' has no attribute {name!r}")
