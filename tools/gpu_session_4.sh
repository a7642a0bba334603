#!/usr/bin/env bash
# The GPU session of 2026-12-04 (fourth session; docs/models.md, "On a GPU"): on a machine
# with one GPU and 16 cores, in ~9 minutes, generate the data, then train side by side,
# each run with a deadline and from a checkpoint:
#   * the RGB Mask R-CNN pretrained on the bin piles (few-shot start, bin_picking_maskrcnn),
#     from the bins base of the third session (.gpu/gan_bins_base.safetensors);
#   * the bin model's stage 4 (bicameral F25, from the shipped stage 3);
#   * the line Mask R-CNN's stage 10 (from the shipped stage 9);
#   * the embeddings model, on from the third session's run (.gpu/line_embeddings.safetensors).
# What is small comes back in $OUT/runs.tgz, the models as fp16 files in $OUT.
#   OUT=/tmp/gpu_out bash tools/gpu_session_4.sh           on the GPU machine, repository root
#   SMALL=1 OUT=/tmp/gpu_out bash tools/gpu_session_4.sh   a tiny rehearsal on a CPU (venv .venv)
THREADS=3 . "$(dirname "$0")/gpu_common.sh"
if [ "${SMALL:-0}" = 1 ]; then
  N_SL=40; N_B=16; N_BT=6; W=2; MIN_MR=0.3; MIN_BIC=0.3; MIN_LINE=0.3; MIN_EMB=0.3; DEV=cpu; DEADLINE=900
else
  N_SL=4000; N_B=3000; N_BT=100; W=6; MIN_MR=6.5; MIN_BIC=6.0; MIN_LINE=6.0; MIN_EMB=6.0; DEV=cuda; DEADLINE=530
fi
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee $L/gpu.txt
log "start"

# the device returned only 8 files: the logs' archive first, then one file a model
# (its .yaml is in the archive); in 2026-12-04's run the archive came 9th and was lost
pack() {
  tar czf "$OUT/runs.tgz" --exclude='*.safetensors' runs 2>/dev/null
  for m in bins_maskrcnn bins_stage4 line_stage10 line_embeddings2; do
    cp runs/$m/model.safetensors "$OUT/$m.safetensors" 2>/dev/null
  done
  ls -la "$OUT"
}
( sleep $DEADLINE; log "deadline: packing what exists"; pack ) &
P_DEADLINE=$!

# --- data: 3,000 new piles (seed 23) for both bin models, 4,000 new line frames (seed 14) ---
( $M sim-data bin_picking --out data/gb4_train --count $N_B --seed 23 --split 0.95,0.05,0 --workers $W &&
  $M sim-data bin_picking --out data/bins_test --count $N_BT --seed 97 --split 0,0,1 --workers 2 &&
  touch runs/.bins_data_ok ) > $L/data_bins.log 2>&1 &
$M sim-data sorting_line --out data/sl_big14 --count $N_SL --seed 14 --split 0.95,0.05,0 --workers $W > $L/data_sl.log 2>&1 \
  || log "line data FAILED"
log "line data done; line stage 10 and embeddings start"

(
  $M train config/training/sorting_line_maskrcnn.yaml --set data.train=data/sl_big14/annotations/learning.json \
      --set data.val= --set train.init=config/models/sorting_line_maskrcnn.safetensors --set 'model.dual_energy_ratio={}' \
      --set train.max_steps=100000 --set train.max_minutes=$MIN_LINE --set train.seed=10 --set train.epochs=1000 \
      --set train.lr_schedule=cosine --set train.lr=0.0001 --set train.batch_size=8 --set model.score_threshold=0.05 \
      --set out=runs/line_stage10 > $L/line_stage10.log 2>&1
  log "line stage 10 done ($?)"
) &
P_LINE=$!
(
  $M train config/training/sorting_line_embeddings.yaml --set data.train=data/sl_big14/annotations/learning.json \
      --set data.val= --set train.init=.gpu/line_embeddings.safetensors --set train.max_minutes=$MIN_EMB \
      --set train.epochs=1000 --set train.batch_size=8 --set train.threads=3 --set train.seed=14 \
      --set train.lr_schedule=cosine --set out=runs/line_embeddings2 > $L/embeddings.log 2>&1
  log "embeddings done ($?)"
) &
P_EMB=$!
until [ -e runs/.bins_data_ok ]; do sleep 2; done
log "bins data done; bins Mask R-CNN and bicameral stage 4 start"
(
  $M train config/training/bin_picking_maskrcnn.yaml --set data.train=data/gb4_train/annotations/learning.json \
      --set data.val= --set train.init=.gpu/gan_bins_base.safetensors --set train.max_minutes=$MIN_MR \
      --set train.epochs=1000 --set train.batch_size=8 --set train.lr=0.0005 --set train.lr_schedule=cosine \
      --set train.seed=23 --set model.score_threshold=0.05 --set out=runs/bins_maskrcnn > $L/bins_maskrcnn.log 2>&1
  log "bins Mask R-CNN done ($?)"
  $M eval runs/bins_maskrcnn/model.safetensors --data data/bins_test/annotations/test.json --device $DEV \
      --out runs/bins_maskrcnn/eval_test > $L/bins_maskrcnn_eval.log 2>&1
  log "bins Mask R-CNN eval done ($?)"
) &
P_MR=$!
(
  $M train config/training/bin_picking_bicameral_f25.yaml --set data.train=data/gb4_train/annotations/learning.json \
      --set data.val= --set train.init=config/models/bin_picking_bicameral.safetensors \
      --set train.crop=256 --set train.batch_size=8 --set train.lr=0.0002 --set train.lr_schedule=cosine \
      --set train.seed=5 --set train.epochs=1000 --set train.max_minutes=$MIN_BIC --set out=runs/bins_stage4 \
      > $L/bins_stage4.log 2>&1
  log "bicameral stage 4 done ($?)"
  $M eval runs/bins_stage4/model.safetensors --data data/bins_test/annotations/test.json --set alpha=0.3 --set beta=0.3 \
      --device $DEV --out runs/bins_stage4/eval_test > $L/bins_stage4_eval.log 2>&1
  log "bicameral stage 4 eval done ($?)"
) &
P_BIC=$!
( while sleep 60; do log "$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null) load $(cut -d' ' -f1 /proc/loadavg)"; done ) &
P_MON=$!
wait $P_LINE $P_EMB $P_MR $P_BIC
kill $P_MON 2>/dev/null
log "all done"
kill $P_DEADLINE 2>/dev/null
pack
