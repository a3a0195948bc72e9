"""The embedded prior's UNet: the shipped frozen TorchScript graph against torch.compile (Inductor), per call.

    .venv/bin/python benchmarks/bench_unet_compile.py [--batch 4] [--repeats 30] [--threads 2]

Batch 4 is one SDS call of the Eq. 11 step (two renders × CFG's two halves); x̃ sampling calls it with larger
batches (`--batch 64`). The UNet runs in the precision `precision: auto` picks on this CPU. Prints the median
ms of each form, the compile time and the largest difference of the outputs. Not used by the project: this is
the measurement of a lever, kept so that its figures in README can be reproduced.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch
from torch import nn

from real3d import precision
from real3d.jobs.bench.speed import median_ms
from real3d.priors.embedded import EmbeddedPrior, _UNetCall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # weights as constants, as torch.jit.freeze does for the graph
    prior = EmbeddedPrior.from_pretrained()
    dtype = precision.resolve()
    unet = prior.unet.eval().requires_grad_(False)
    unet = nn.Module.to(copy.deepcopy(unet), dtype) if dtype != torch.float32 else unet
    call = _UNetCall(unet).eval()
    b, r = args.batch, prior.resolution
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, 3, r, r, generator=gen).to(dtype)
    t = torch.randint(20, 980, (b,), generator=gen)
    context = torch.randn(b, prior.cfg.text_max_length, unet.config.cross_attention_dim, generator=gen).to(dtype)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(call, (x, t, context))))
        start = time.perf_counter()
        compiled = torch.compile(call, dynamic=False)
        compiled(x, t, context)
        compile_s = time.perf_counter() - start
        diff = (graph(x, t, context).float() - compiled(x, t, context).float()).abs().max().item()
    with torch.no_grad():
        rows = {
            "frozen TorchScript graph (shipped)": median_ms(lambda: graph(x, t, context), args.repeats, 3),
            "torch.compile (Inductor, freezing)": median_ms(lambda: compiled(x, t, context), args.repeats, 3),
        }
        rows["frozen TorchScript graph, again"] = median_ms(lambda: graph(x, t, context), args.repeats, 3)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {precision.cpu_name()}, capability "
        f"{torch.backends.cpu.get_cpu_capability()}, flags {' '.join(precision.flags_that_matter())}; "
        f"UNet in {precision.name(dtype)}, batch {b}, {r}²\n"
    )
    print("| UNet call | ms |\n|---|---:|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} |")
    print(f"\ncompile (first call): {compile_s:.0f} s; largest |output difference|: {diff:.2g}")


if __name__ == "__main__":
    main()
