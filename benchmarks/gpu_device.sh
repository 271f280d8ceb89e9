#!/usr/bin/env bash
# The GPU device run of issue 29, from the repository root:
#
#     PYTHONPATH=. bash benchmarks/gpu_device.sh
#
# 1. prints the card, its driver, CUDA and CuPy versions (and Python's, NumPy's, Numba's);
# 2. runs the gpu tests on the card (pytest -m gpu -x, at most 120 s a test, 180 s in all),
#    while the synthetic ML-25M-shaped set is generated on the CPU beside it;
# 3. runs benchmarks/gpu_check.py's timing table (every registered model at batch 64 and at a
#    batch that fills the card, against Numba on this machine's CPU; the ML-25M-shaped lazy
#    epoch), within --budget seconds (default 170; 270 s at most with its last measurement).
# About 6 minutes on one H200. With $OUT set, the logs and the table are written there:
# versions.txt, gpu-tests.log, gpu-tests.xml (JUnit), data.log, gpu_check.log, gpu_check.md
# and gpu_check.json. Needs: python3 with numpy, numba, pandas, scipy, tqdm, pytest, hypothesis
# and CuPy (pytest-timeout used when present); no network, no test extras (nbformat etc.).
#
# Settings (environment): PYTHON (default python3); GPU_TESTS_STOP (default -x: stop at the
# first failure; --maxfail=50 to see them all); GPU_CHECK_BUDGET (default 170 s);
# GPU_CHECK_BIG_RATINGS (default 0: ML-25M's 25,000,095); GPU_CHECK_ARGS (more gpu_check.py
# arguments). A dry run without a card: GPU_CHECK_ARGS=--standin GPU_CHECK_BIG_RATINGS=300000
# (the tests then run on the CPU stand-in, and the "GPU" column times it: no GPU figure).
set -u
PY=${PYTHON:-python3}
export PYTHONPATH=${PYTHONPATH:-.}
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-${TMPDIR:-/tmp}/minirec-numba-cache}
export MINIREC_THREADS=${MINIREC_THREADS:-1}
DATA=${TMPDIR:-/tmp}/minirec-gpu-data
OUT_DIR=${OUT:-}
[ -n "$OUT_DIR" ] && mkdir -p "$OUT_DIR"
to() {  # to FILE: a copy of stdin under $OUT (when set), and on the screen
    if [ -n "$OUT_DIR" ]; then tee -a "$OUT_DIR/$1"; else cat; fi
}
started=$(date +%s)

{
    echo "== versions ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo 'not a git checkout: name the commit carried')"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 \
        || echo "nvidia-smi: not available here"
    "$PY" - <<'EOF'
import platform, sys
import numpy, numba, scipy, pandas, pytest
print(f"Python {platform.python_version()} ({sys.executable}); NumPy {numpy.__version__}; "
      f"Numba {numba.__version__}; SciPy {scipy.__version__}; pandas {pandas.__version__}; "
      f"pytest {pytest.__version__}")
try:
    import cupy
    rt = cupy.cuda.runtime
    name = rt.getDeviceProperties(0)["name"]
    print(f"CuPy {cupy.__version__}; CUDA runtime {rt.runtimeGetVersion()}, driver API "
          f"{rt.driverGetVersion()}; {rt.getDeviceCount()} device(s); device 0: "
          f"{name.decode() if isinstance(name, bytes) else name}")
except Exception as e:  # no CuPy, or no device
    print(f"CuPy: not usable here ({type(e).__name__}: {e})")
import minirec
print(f"minirec {minirec.__version__} from {minirec.__file__}")
EOF
} 2>&1 | to versions.txt

# the big synthetic set, generated on the CPU while the tests use the card
BIG=${GPU_CHECK_BIG_RATINGS:-0}
"$PY" benchmarks/gpu_check.py --make-data "$DATA" --big-ratings "$BIG" > "${OUT_DIR:-${TMPDIR:-/tmp}}/data.log" 2>&1 &
generator=$!

timeout_option=""
"$PY" -c "import pytest_timeout" 2>/dev/null && timeout_option="--timeout 120"
junit=""
[ -n "$OUT_DIR" ] && junit="--junitxml=$OUT_DIR/gpu-tests.xml"
echo "== gpu tests: $PY -m pytest -m gpu -q ${GPU_TESTS_STOP:--x} -p no:cacheprovider $timeout_option" | to gpu-tests.log
timeout 180 "$PY" -m pytest -m gpu -q ${GPU_TESTS_STOP:--x} -p no:cacheprovider $timeout_option \
    -rfEs $junit tests 2>&1 | to gpu-tests.log
tests_rc=${PIPESTATUS[0]}
echo "gpu tests: exit code $tests_rc ($(( $(date +%s) - started )) s since the start)" | to gpu-tests.log

wait "$generator"
echo "data: exit code $? ($(cat "${OUT_DIR:-${TMPDIR:-/tmp}}/data.log" | tr '\n' ' '))" | to gpu_check.log

echo "== gpu_check.py" | to gpu_check.log
timeout 270 "$PY" benchmarks/gpu_check.py --skip-tests --data "$DATA" --big-ratings "$BIG" \
    --budget "${GPU_CHECK_BUDGET:-170}" ${OUT_DIR:+--out "$OUT_DIR"} ${GPU_CHECK_ARGS:-} 2>&1 | to gpu_check.log
check_rc=${PIPESTATUS[0]}
echo "gpu_check: exit code $check_rc; $(( $(date +%s) - started )) s in all" | to gpu_check.log
exit $(( tests_rc != 0 ? tests_rc : check_rc ))
