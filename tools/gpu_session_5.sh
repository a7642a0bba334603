#!/usr/bin/env bash
# The GPU session of 2026-12-05 (docs/models.md, "On a GPU, fourth time"): on a machine with
# one GPU and 16 cores, in ~9 minutes, 4,000 new bin piles (seed 25), then side by side,
# each with a deadline and from the shipped bin_picking_maskrcnn (stage 2):
#   * bins Mask R-CNN stage 3 at the shipped input size (256 px);
#   * the same at 384 px (inputs upsampled: finer stride-4 features for the masks' edges);
# then each evaluated on the held-out piles, and the line model timed on CUDA (#15).
# What is small comes back in $OUT/runs.tgz (packed first), the models as fp16 files in $OUT.
#   OUT=/tmp/gpu_out bash tools/gpu_session_5.sh           on the GPU machine, repository root
#   SMALL=1 OUT=/tmp/gpu_out bash tools/gpu_session_5.sh   a tiny rehearsal on a CPU (venv .venv)
THREADS=4 . "$(dirname "$0")/gpu_common.sh"
if [ "${SMALL:-0}" = 1 ]; then
  N_B=16; N_BT=6; N_SLT=4; W=2; MIN=0.3; DEV=cpu; DEADLINE=900
else
  N_B=4000; N_BT=100; N_SLT=40; W=12; MIN=5.5; DEV=cuda; DEADLINE=540
fi
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee $L/gpu.txt
$PY -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'ort', o.__version__, o.get_available_providers())" \
  > $L/versions.txt 2>&1
log "start"

pack() {
  tar czf "$OUT/runs.tgz" --exclude='*.safetensors' runs 2>/dev/null
  for m in bins_mr3_256 bins_mr3_384; do cp runs/$m/model.safetensors "$OUT/$m.safetensors" 2>/dev/null; done
  ls -la "$OUT"
}
( sleep $DEADLINE; log "deadline: packing what exists"; pack ) &
P_DEADLINE=$!

# test data in the background; the jobs below wait for its marker (a subshell cannot `wait`
# for a sibling: on 2026-12-05 the evals ran only because the data happened to be done)
( $M sim-data bin_picking --out data/bins_test --count $N_BT --seed 97 --split 0,0,1 --workers 2 &&
  $M sim-data sorting_line --out data/sl_cuda --count $N_SLT --seed 98 --split 0,0,1 --workers 2 &&
  touch runs/.test_data_ok ) > $L/data_test.log 2>&1 &
$M sim-data bin_picking --out data/gb5_train --count $N_B --seed 25 --split 0.95,0.05,0 --workers $W > $L/data_bins.log 2>&1 \
  || log "bins data FAILED"
log "bins data done; two trainings start"

train_bins() {  # name size seed
  $M train config/training/bin_picking_maskrcnn.yaml --set data.train=data/gb5_train/annotations/learning.json \
      --set data.val= --set train.init=config/models/bin_picking_maskrcnn.safetensors --set train.max_minutes=$MIN \
      --set train.epochs=1000 --set train.batch_size=8 --set train.lr=0.0003 --set train.lr_schedule=cosine \
      --set train.seed=$3 --set model.score_threshold=0.05 --set model.min_size=$2 --set model.max_size=$2 \
      --set out=runs/$1 > $L/$1.log 2>&1
  log "$1 trained ($?)"
  until [ -e runs/.test_data_ok ]; do sleep 2; done
  $M eval runs/$1/model.safetensors --data data/bins_test/annotations/test.json --device $DEV \
      --out runs/$1/eval_test > $L/$1_eval.log 2>&1
  log "$1 eval done ($?)"
}
train_bins bins_mr3_256 256 25 &
P_A=$!
train_bins bins_mr3_384 384 26 &
P_B=$!
( while sleep 60; do log "$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null) load $(cut -d' ' -f1 /proc/loadavg)"; done ) &
P_MON=$!
wait $P_A $P_B
# #15 on CUDA: the shipped line model, torch eager, alone on the GPU
until [ -e runs/.test_data_ok ]; do sleep 2; done
$M eval sorting_line_maskrcnn --data data/sl_cuda/annotations/test.json --device $DEV --out runs/line_cuda \
    > $L/line_cuda.log 2>&1
log "line CUDA eval done ($?)"
kill $P_MON 2>/dev/null
log "all done"
kill $P_DEADLINE 2>/dev/null
pack
