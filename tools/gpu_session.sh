#!/usr/bin/env bash
# The GPU session of 2026-12-04 (third session; docs/models.md, "On a GPU"): on a machine
# with one GPU and 16 cores, in ~9 minutes, generate the data, then train side by side,
# each run with a deadline: the line Mask R-CNN's stage 9, the bin model's stage 3, the
# embeddings model, and the plain-vs-adversarial Mask R-CNN comparison on the bin piles.
# What is small comes back in $OUT/runs.tgz, the models as fp16 files in $OUT.
#   OUT=/tmp/gpu_out bash tools/gpu_session.sh           on the GPU machine, repository root
#   SMALL=1 OUT=/tmp/gpu_out bash tools/gpu_session.sh   a tiny rehearsal on a CPU (venv .venv)
# Wheels in .whl/ (packages the GPU machine lacks, e.g. pycocotools) are installed first.
THREADS=2 . "$(dirname "$0")/gpu_common.sh"
if [ "${SMALL:-0}" = 1 ]; then
  N_SL=40; N_SLT=8; N_B=16; N_BT=6; N_GB=16; W=2
  BASE_MIN=0.3; LINE_MIN=0.4; EMB_MIN=0.4; BIC_MIN=0.3; ARM_STEPS=2; DEV=cpu; DEADLINE=900
else
  N_SL=4000; N_SLT=200; N_B=300; N_BT=100; N_GB=3000; W=8
  BASE_MIN=4.0; LINE_MIN=6.0; EMB_MIN=6.0; BIC_MIN=5.0; ARM_STEPS=150; DEV=cuda; DEADLINE=550
fi
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee $L/gpu.txt
log "start"

# --- data (the commands and seeds the cards and docs name) ---
# bins_train/bins_test for the GAN comparison (and bins_test for stage 3's eval)
( $M sim-data bin_picking --out data/bins_train --count $N_B --seed 1 --split 0.9,0.1,0 --workers 2 &&
  $M sim-data bin_picking --out data/bins_test --count $N_BT --seed 97 --split 0,0,1 --workers 2 &&
  touch runs/.bins_data_ok ) > $L/data_bins.log 2>&1 &

# --- #14: plain vs adversarial Mask R-CNN on the bin piles ---
(
  until [ -e runs/.bins_data_ok ]; do sleep 2; done
  log "bins data done; GAN base starts"
  $PY msseg_ros/benchmarks/gan_comparison.py --cells bins --base-steps 100000 --base-minutes $BASE_MIN \
      --base-only > $L/gan_base.log 2>&1
  B=$($PY -c "import json; print(json.load(open('runs/gan_comparison/bins/base/state.json'))['step'])")
  log "GAN base: $B steps"
  for s in 0 1 2; do
    $PY msseg_ros/benchmarks/gan_comparison.py --cells bins --base-steps $B --seeds $s --steps $ARM_STEPS \
        --device $DEV > $L/gan_s$s.log 2>&1 &
  done
  wait
  log "GAN arms done"
  $PY msseg_ros/benchmarks/gan_comparison.py --cells bins --base-steps $B --seeds 0 1 2 --steps $ARM_STEPS \
      --device $DEV > $L/gan_table.log 2>&1
  log "GAN comparison done ($?)"
) &
P_GAN=$!

# --- #13: bin model stage 3, from the shipped stage 2, on 2,700 new piles ---
(
  $M sim-data bin_picking --out data/gb3_train --count $N_GB --seed 22 --split 0.9,0.1,0 --workers 4 > $L/data_gb3.log 2>&1 \
      || { log "gb3 data FAILED"; exit 1; }
  log "gb3 data done; bicameral stage 3 starts"
  $M train config/training/bin_picking_bicameral_f25.yaml --set data.train=data/gb3_train/annotations/learning.json \
      --set data.val=data/gb3_train/annotations/validation.json \
      --set train.init=config/models/bin_picking_bicameral.safetensors \
      --set train.crop=256 --set train.batch_size=8 --set train.lr=0.0003 --set train.lr_schedule=cosine \
      --set train.seed=4 --set train.epochs=1000 --set train.max_minutes=$BIC_MIN --set out=runs/bins_stage3 \
      > $L/bins_stage3.log 2>&1
  log "bicameral stage 3 done ($?)"
  until [ -e runs/.bins_data_ok ]; do sleep 2; done
  $M eval runs/bins_stage3/model.safetensors --data data/bins_test/annotations/test.json --set alpha=0.3 --set beta=0.3 \
      --device $DEV --out runs/bins_stage3/eval_test > $L/bins_stage3_eval.log 2>&1
  log "bicameral stage 3 eval done ($?)"
) &
P_BIC=$!

# --- the back-packing: at the deadline whatever exists, else when all is done ---
pack() {
  for m in line_stage9 bins_stage3 line_embeddings; do cp runs/$m/model.safetensors "$OUT/$m.safetensors" 2>/dev/null; done
  cp runs/gan_comparison/bins/base/model.safetensors "$OUT/gan_bins_base.safetensors" 2>/dev/null
  tar czf "$OUT/runs.tgz" --exclude='*.safetensors' runs 2>/dev/null
  ls -la "$OUT"
}
( sleep $DEADLINE; log "deadline: packing what exists"; pack ) &
P_DEADLINE=$!

# line data in the foreground: stage 9 and the embeddings need it
$M sim-data sorting_line --out data/sl_big --count $N_SL --seed 12 --split 0.95,0.05,0 --workers $W > $L/data_sl.log 2>&1 &&
  $M sim-data sorting_line --out data/sl_test --count $N_SLT --seed 97 --split 0,0,1 --workers $W >> $L/data_sl.log 2>&1 \
  || log "line data FAILED"

# --- #13: line Mask R-CNN stage 9 and the embeddings model, on 3,800 new frames ---
log "line data done; line stage 9 and embeddings start"
(
  $M train config/training/sorting_line_maskrcnn.yaml --set data.train=data/sl_big/annotations/learning.json \
      --set data.val= --set train.init=config/models/sorting_line_maskrcnn.safetensors --set 'model.dual_energy_ratio={}' \
      --set train.max_steps=100000 --set train.max_minutes=$LINE_MIN --set train.seed=9 --set train.epochs=1000 \
      --set train.lr_schedule=cosine --set train.lr=0.0002 --set train.batch_size=8 --set model.score_threshold=0.05 \
      --set out=runs/line_stage9 > $L/line_stage9.log 2>&1
  log "line stage 9 done ($?)"
  $PY -c "from msseg_ros.core.segmentation.checkpoint import set_config_keys as s; s('runs/line_stage9/model.safetensors', {'rpn_post_nms_top_n_test': 300, 'merge_touching_px': 8, 'merge_gap_px': 0, 'min_visible_fraction': 0.6})"
  $M eval runs/line_stage9/model.safetensors --data data/sl_big/annotations/validation.json \
      --set score_threshold=0.05 --calibrate --write --device $DEV --out runs/line_stage9/eval_val > $L/line_stage9_cal.log 2>&1
  $PY -c "from msseg_ros.core.segmentation.checkpoint import set_config_keys as s; s('runs/line_stage9/model.safetensors', {'score_threshold': 0.3})"
  $M eval runs/line_stage9/model.safetensors --data data/sl_test/annotations/test.json --set score_threshold=0.05 \
      --score-threshold operating --device $DEV --out runs/line_stage9/eval_test > $L/line_stage9_eval.log 2>&1
  log "line stage 9 eval done ($?)"
) &
P_LINE=$!
(
  $M train config/training/sorting_line_embeddings.yaml --set data.train=data/sl_big/annotations/learning.json \
      --set data.val= --set train.max_minutes=$EMB_MIN --set train.epochs=1000 --set train.batch_size=8 \
      --set train.threads=2 --set train.seed=12 --set out=runs/line_embeddings > $L/embeddings.log 2>&1
  log "embeddings done ($?)"
  $M eval runs/line_embeddings/model.safetensors --data data/sl_big/annotations/validation.json \
      --set score_threshold=0.05 --calibrate --write --device $DEV --out runs/line_embeddings/eval_val > $L/embeddings_cal.log 2>&1
  $M eval runs/line_embeddings/model.safetensors --data data/sl_test/annotations/test.json --set score_threshold=0.05 \
      --score-threshold operating --device $DEV --out runs/line_embeddings/eval_test > $L/embeddings_eval.log 2>&1
  log "embeddings eval done ($?)"
) &
P_EMB=$!
( while sleep 60; do log "$(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null) load $(cut -d' ' -f1 /proc/loadavg)"; done ) &
P_MON=$!
wait $P_GAN $P_BIC $P_LINE $P_EMB
kill $P_MON 2>/dev/null
log "all done"
kill $P_DEADLINE 2>/dev/null
pack
