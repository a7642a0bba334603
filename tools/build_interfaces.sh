#!/usr/bin/env bash
# Build msseg_interfaces (ament_cmake + rosidl) from the ros-* wheels and install it into
# the virtual environment's prefix, beside the wheels' own packages, so that
# `import msseg_interfaces.msg` works in that venv (the wheels' bootstrap puts
# $VENV/lib on LD_LIBRARY_PATH). Recipe: shared/design/ENVIRONMENT.md.
#   tools/build_interfaces.sh [VENV]      (default .venv)
# On a ROS machine use `colcon build` instead (README).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${1:-.venv}" && pwd)
PY="$VENV/bin/python"
BUILD=build/msseg_interfaces
mkdir -p "$BUILD"
touch build/COLCON_IGNORE  # colcon crawling the repository skips this build
# the wheels' exported CMake files name the wheel builder's Python paths; point them at
# this venv (idempotent: nothing matches once done)
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
{ grep -rl --include='*.cmake' /opt/python/cp311-cp311 "$VENV/share" 2>/dev/null || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
cmake -S msseg_interfaces -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_BUILD_TYPE=Release \
      -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF > "$BUILD.log" 2>&1 \
    || { tail -40 "$BUILD.log"; echo "msseg_interfaces: cmake configure failed (log: $BUILD.log)"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" >> "$BUILD.log" 2>&1 \
    || { tail -40 "$BUILD.log"; echo "msseg_interfaces: build failed (log: $BUILD.log)"; exit 1; }
cmake --install "$BUILD" >> "$BUILD.log" 2>&1 \
    || { tail -20 "$BUILD.log"; echo "msseg_interfaces: install failed (log: $BUILD.log)"; exit 1; }
"$PY" -c "from msseg_interfaces.msg import InstanceArray, PickCandidateArray, PickResultArray" \
    || { echo "msseg_interfaces: installed but not importable from $PY"; exit 1; }
echo "msseg_interfaces: built and installed into $VENV"
