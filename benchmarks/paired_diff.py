"""Is preset A ahead of preset B, or is it a tie? The paired difference of their bench cells, with its spread.

    .venv/bin/python benchmarks/paired_diff.py docs/results/fast11 [--a real3d] [--b dreamfusion]
        [--b-folder OTHER_BENCH_FOLDER] [--prompts benchmarks/prompts-single.txt] [--resamples 10000]

Only the (prompt, seed) cells that both presets finished count. For each metric (judge score, mesh IoU,
silhouette IoU) it prints A's and B's means, the mean of A − B over the cells, that difference per seed, and
a 95 % interval of the mean difference from a bootstrap that resamples prompts (each drawn prompt brings all
its seeds, so a prompt that one preset always draws better counts once, not once a seed), with the share of
resamples in which A is ahead. An interval that straddles 0 is a tie at this many prompts. With more than one
seed it adds the bench's seed spread (each prompt's standard deviation of the judge over its seeds, averaged
over prompts; lower is ahead), bootstrapped over prompts in the same way.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from compare_cells import cells

from real3d.jobs.bench.quality import read_prompts

METRICS = (("judge", "judge_score"), ("mesh IoU", "mesh_iou"), ("silhouette IoU", "silhouette_iou"))


def bootstrap(per_prompt: torch.Tensor, resamples: int, seed: int = 0) -> tuple[float, float, float]:
    """2.5 % and 97.5 % quantiles of the mean of per_prompt [P] over prompts drawn with replacement, and the
    share of resamples whose mean is above 0."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(per_prompt), (resamples, len(per_prompt)), generator=g)  # [R,P]
    means = per_prompt[idx].mean(dim=1)  # [R]
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=means.dtype)).tolist()
    return lo, hi, float((means > 0).double().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="bench folder (--out of real3d bench quality) holding preset A")
    p.add_argument("--a", default="real3d")
    p.add_argument("--b", default="dreamfusion")
    p.add_argument("--b-folder", type=Path, default=None, help="preset B's bench folder (default: the same)")
    p.add_argument("--prompts", type=Path, default=None, help="a prompt list: only its prompts count")
    p.add_argument("--resamples", type=int, default=10000)
    args = p.parse_args()
    a, b = cells(args.folder, args.a, None), cells(args.b_folder or args.folder, args.b, None)
    common = sorted(set(a) & set(b))
    if args.prompts is not None:
        listed = set(read_prompts(args.prompts))
        common = [key for key in common if key[0] in listed]
    if not common:
        raise SystemExit(f"no cell is finished by both {args.a} and {args.b}")
    prompts, seeds = sorted({k[0] for k in common}), sorted({k[1] for k in common})
    print(
        f"{args.a} − {args.b}: {len(common)} cells ({len(prompts)} prompts × seeds {seeds}), "
        f"bootstrap over prompts, {args.resamples} resamples\n"
    )
    per_seed = " | ".join(f"A − B, seed {s}" for s in seeds)
    print(f"| metric | {args.a} | {args.b} | A − B | {per_seed} | 95 % interval | share A ahead |")
    print(f"|---|---|---|---|{'---|' * len(seeds)}---|---|")
    for label, key in METRICS:
        diff = {k: a[k][key] - b[k][key] for k in common}
        by_prompt = torch.tensor(
            [statistics.fmean(d for k, d in diff.items() if k[0] == q) for q in prompts], dtype=torch.float64
        )
        by_seed = " | ".join(f"{statistics.fmean(d for k, d in diff.items() if k[1] == s):+.3f}" for s in seeds)
        lo, hi, ahead = bootstrap(by_prompt, args.resamples)
        mean_a = statistics.fmean(a[k][key] for k in common)
        mean_b = statistics.fmean(b[k][key] for k in common)
        print(
            f"| {label} | {mean_a:.3f} | {mean_b:.3f} | {statistics.fmean(diff.values()):+.3f} | {by_seed} | "
            f"[{lo:+.3f}, {hi:+.3f}] | {ahead:.2f} |"
        )
    if len(seeds) > 1:
        spread_a, spread_b = seed_spread(a, common, prompts), seed_spread(b, common, prompts)
        lo, hi, above = bootstrap(spread_a - spread_b, args.resamples)
        print(
            f"| judge seed std ↓ | {spread_a.mean():.3f} | {spread_b.mean():.3f} | "
            f"{(spread_a - spread_b).mean():+.3f} | {' | '.join('' for _ in seeds)} | "
            f"[{lo:+.3f}, {hi:+.3f}] | {1 - above:.2f} |"
        )


def seed_spread(preset: dict, common: list[tuple[str, int]], prompts: list[str]) -> torch.Tensor:
    """Each prompt's standard deviation [P] of the judge score over its seeds among the common cells (the
    bench's "seed std" before its mean over prompts)."""
    return torch.tensor(
        [statistics.pstdev(preset[k]["judge_score"] for k in common if k[0] == q) for q in prompts],
        dtype=torch.float64,
    )


if __name__ == "__main__":
    main()
