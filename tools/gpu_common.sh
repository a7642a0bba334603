# Sourced by the GPU session scripts (tools/gpu_session*.sh): the output folder, the log
# folder and its timeline, the Python to run (on the GPU machine, wheels from .whl/ for
# what it lacks, e.g. pycocotools; with SMALL=1, the venv) and `log`.
# Expects THREADS (OpenMP threads per job).
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
L=runs/gpu_logs; mkdir -p $L
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS TQDM_MININTERVAL=20
if [ -d .whl ] && [ "${SMALL:-0}" = 0 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/msseg_ros
  PY=python3
else
  PY=${PY:-.venv/bin/python}
fi
M="$PY -m msseg_ros.cli.main"
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a $L/timeline.txt; }
