#!/usr/bin/env bash
# Train the bundled model on one CUDA GPU in a single call that ends on time, then export it.
#
#   bash models/bundled/train_gpu.sh CORPUS_DIR OUT_DIR [MINUTES] [DEVICE]
#
# CORPUS_DIR holds the training *.txt (shared/corpus, never its heldout/); OUT_DIR receives
# run-log.jsonl, recipe.json, train.log, the vocabulary and the fp16 weights, cut into pieces of
# at most PIECE_MB megabytes (join them with `cat NAME.safetensors.part* > NAME.safetensors`).
# The learning rate runs its cosine over MINUTES of training (--steps 0), so the run ends at the
# final rate whatever the GPU's speed. Shape and rates come from the environment:
# LAYERS (8), EMBD (320), BATCH (32), CTX (512), LR (1e-3), LR_FINAL (5e-5), SEED (0), PIECE_MB (15);
# PYTHON (python3) is the interpreter that has torch.
# Dry run on a CPU: PYTHON=.venv/bin/python LAYERS=1 EMBD=64 BATCH=2 bash models/bundled/train_gpu.sh DIR OUT 0.2 cpu
set -euo pipefail
corpus=${1:?usage: train_gpu.sh CORPUS_DIR OUT_DIR [MINUTES] [DEVICE]}
out=${2:?usage: train_gpu.sh CORPUS_DIR OUT_DIR [MINUTES] [DEVICE]}
minutes=${3:-5}
device=${4:-cuda}
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
mkdir -p "$out"
run=$(mktemp -d)/run
"$py" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
"$py" -m ai_writer.models.train --data "$corpus"/*.txt --out "$run" --device "$device" \
    --layers "${LAYERS:-8}" --embd "${EMBD:-320}" --batch "${BATCH:-32}" --ctx "${CTX:-512}" \
    --lr "${LR:-1e-3}" --lr-final "${LR_FINAL:-5e-5}" --seed "${SEED:-0}" \
    --steps 0 --minutes "$minutes" --save-every 200 2>&1 | tee "$out/train.log"
"$py" -m ai_writer.models.train --out "$run" --export "$run/zh-novel-rwkv7.safetensors"
cp "$run/log.jsonl" "$out/run-log.jsonl"
cp "$run/recipe.json" "$run/zh-novel-rwkv7.json" "$out/"
split -b "${PIECE_MB:-15}m" -d "$run/zh-novel-rwkv7.safetensors" "$out/zh-novel-rwkv7.safetensors.part"
ls -l "$out"
