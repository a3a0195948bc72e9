"""The field MLP when every call has a new number of rows, as the renderers make it, with and without
`field.bucket_rows` (rows padded to one of 8 sizes an octave).

    .venv/bin/python benchmarks/bench_field_rows.py [--threads 2] [--repeats 10]

Each timed call is the MLP's forward + backward on N points of the field's input width. "new every call":
N is drawn anew for every call from 4k–50k (the range of a real3d step's calls), 8 × `--repeats` calls
timed after as many untimed ones; "fixed": one N throughout, the best case. One row per precision this CPU runs
natively (bf16 only where `precision auto` picks it). oneDNN builds a kernel for each matrix shape it has
not seen: with exact rows that build comes with nearly every call, with bucketed rows only in the warm-up.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timing import setup  # benchmarks/timing.py (scripts run from benchmarks/ on sys.path)

from real3d import precision
from real3d.field import TriplaneField, bucket_rows
from real3d.jobs.bench.speed import median_ms

WIDTH = 3 * TriplaneField.Config().channels  # the MLP's input: three planes' features


def mlp_call(
    net: torch.nn.Sequential, dtype: torch.dtype, rows: Callable[[], int], bucketed: bool
) -> Callable[[], None]:
    """One forward + backward of the MLP on rows() points, padded to `bucket_rows` if `bucketed`."""

    def call() -> None:
        n = rows()
        feats = torch.randn(n, WIDTH, requires_grad=True)  # [N,3C]
        padded = bucket_rows(n) if bucketed else n
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = net(F.pad(feats, (0, 0, 0, padded - n)))[:n].float()  # [N,4]
        out.square().mean().backward()

    return call


def main() -> None:
    args = setup(__doc__.splitlines()[0])
    print(
        f"{precision.cpu_name()}, capability {torch.backends.cpu.get_cpu_capability()}, flags "
        f"{' '.join(precision.flags_that_matter())}; precision auto: {precision.name(precision.resolve('auto'))}\n"
    )
    torch.manual_seed(0)
    net = TriplaneField(TriplaneField.Config()).net
    gen = torch.Generator().manual_seed(0)
    sizes: dict[str, Callable[[], int]] = {
        "fixed 20,000": lambda: 20000,
        "new every call, 4k–50k": lambda: int(torch.randint(4000, 50000, (1,), generator=gen)),
    }
    dtypes = [torch.float32] + ([torch.bfloat16] if precision.resolve("auto") == torch.bfloat16 else [])
    repeats = 8 * args.repeats  # many sizes: the median needs more calls than one kernel's
    print("| precision | rows per call | exact rows: ms fwd+bwd | bucketed rows: ms fwd+bwd |")
    print("|---|---|---:|---:|")
    for dtype in dtypes:
        for label, rows in sizes.items():
            exact, bucketed = (median_ms(mlp_call(net, dtype, rows, b), repeats, repeats) for b in (False, True))
            print(f"| {precision.name(dtype)} | {label} | {exact:.1f} | {bucketed:.1f} |")


if __name__ == "__main__":
    main()
