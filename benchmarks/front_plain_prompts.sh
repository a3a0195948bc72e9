#!/bin/bash
# Each prompt with a front feature, its side and back views prompted with the object alone (prompt_side,
# prompt_back), as real3d bench quality cells, one prompt at a time: docs/results.md, fifteenth round.
#   bash benchmarks/front_plain_prompts.sh OUT [CACHE] [SEEDS]   # CACHE: an x̃ cache folder to copy in
#                                                                # (docs/results/fast11/cache); SEEDS: 0 (or 0,1,2)
set -euo pipefail
out=${1:?usage: front_plain_prompts.sh OUT [CACHE] [SEEDS]}
cache=${2:-}
seeds=${3:-0}
while read -r prompt; do
  [[ -z "$prompt" || "$prompt" == \#* ]] && continue
  plain="${prompt% with a *}"
  slug=$(echo "$prompt" | tr ' ' '-')
  mkdir -p "$out/$slug"
  echo "$prompt" > "$out/$slug/prompts.txt"
  [[ -n "$cache" && ! -d "$out/$slug/cache" ]] && cp -r "$cache" "$out/$slug/"
  .venv/bin/real3d bench quality --presets real3d --seeds "$seeds" --prompts "$out/$slug/prompts.txt" --out "$out/$slug" \
    --workers 1 --threads 2 "prompt_side=$plain" "prompt_back=$plain" > "$out/$slug.log" 2>&1
  echo "$prompt (side and back: $plain): done"
done < benchmarks/prompts-front.txt
