#!/usr/bin/env bash
# Runs Sluice's GPU checks and benchmarks on the GPU machine, which has no
# Swift: it uses the static binary built elsewhere and carried in .device/.
#
#   scripts/gpu-run.sh [smoke|full]
#
# 1. machine facts (nvidia-smi -L, driver, kernel, CPU);
# 2. `sluice selftest --backend cuda` (CUDA backend vs the CPU backend on fresh random inputs);
# 3. a multi-GiB text file (4 GiB full, 256 MiB smoke), generated with python3;
#    `sluice count --backend cuda`, `--backend cpu` and `wc -c -l` must agree;
# 4. `sluice bench dispatch`, `bench slots`, `bench count FILE` (+ `wc -l` timing).
#
# Logs go to $OUT (default ./gpu-out): run.log (everything), selftest.log,
# count.log, dispatch.json, slots.json, count.json. Exit status: 0 when the
# self-test passed, the counts agreed and every benchmark ran; 1 otherwise.
#
# Build and carry the binary from the development machine:
#   swift build -c release --static-swift-stdlib --scratch-path .build-release
#   mkdir -p .device && cp .build-release/release/sluice .device/sluice
set -u
MODE=${1:-full}
OUT=${OUT:-$PWD/gpu-out}
BIN=${SLUICE_BIN:-$PWD/.device/sluice}
FILE=${SLUICE_BENCH_FILE:-/tmp/sluice-bench.txt}
mkdir -p "$OUT"
LOG="$OUT/run.log"
: > "$LOG"

case "$MODE" in
smoke) SIZE_MIB=256;  ITERATIONS=20000;  SLOT_SECONDS=0.5; REPEATS=1; COLD="";       SELFTEST_ARGS="--stress-cycles 20000"; LIMIT=100 ;;
full)  SIZE_MIB=4096; ITERATIONS=100000; SLOT_SECONDS=2;   REPEATS=5; COLD="--cold"; SELFTEST_ARGS="";                      LIMIT=300 ;;
*) echo "usage: $0 [smoke|full]" >&2; exit 2 ;;
esac

failures=()
say() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_SECONDS COMMAND...: runs it under a time limit, logs its
# output and how long it took; records a failure on a non-zero exit.
step() {
    local name=$1 limit=$2
    shift 2
    say "=== $name: $*"
    local start end rc
    start=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    end=$(date +%s.%N)
    say "=== $name: exit $rc after $(awk "BEGIN{printf \"%.2f\", $end - $start}") s"
    [ "$rc" -eq 0 ] || failures+=("$name (exit $rc)")
    return "$rc"
}

say "sluice gpu-run ($MODE) on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
[ -x "$BIN" ] || { say "no executable at $BIN; build and carry it first (see the top of this script)"; exit 1; }
{
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current,memory.total --format=csv
    echo "kernel $(uname -r); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo)"
    free -g | head -2
    echo "io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo '?'); memlock $(ulimit -l)"
    echo "binary: $(ls -l "$BIN" | awk '{print $5}') bytes, sha256 $(sha256sum "$BIN" | cut -c1-16)"
} 2>&1 | tee -a "$LOG"

# --- 1. self-test ---------------------------------------------------------------
step "selftest" "$LIMIT" bash -c "set -o pipefail; '$BIN' selftest --backend cuda $SELFTEST_ARGS | tee '$OUT/selftest.log'"

# --- 2. a multi-GiB text file and count agreement --------------------------------
say "=== generating $SIZE_MIB MiB of text at $FILE"
gen_start=$(date +%s.%N)
python3 - "$FILE" "$SIZE_MIB" <<'PY' 2>&1 | tee -a "$LOG"
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
# One random 65 MiB block of letters, digits, spaces and newlines (about 1 in
# 48 bytes is a newline), written as 64 MiB slices at shifting offsets, so
# chunks differ from each other and from chunk boundaries.
base = os.urandom((64 << 20) + (1 << 20))
alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_/()\n"
table = bytes(alphabet[i % len(alphabet)] if i % 48 else 10 for i in range(256))
base = memoryview(base.translate(table))
left = mib << 20
with open(path, "wb") as f:
    k = 0
    while left > 0:
        n = min(64 << 20, left)
        start = (k * 40961) % (1 << 20)
        f.write(base[start:start + n])
        left -= n
        k += 1
print(f"wrote {mib << 20} bytes to {path}")
PY
gen_end=$(date +%s.%N)
say "=== generated in $(awk "BEGIN{printf \"%.2f\", $gen_end - $gen_start}") s"

{
    TIMEFORMAT='%R s'
    echo "--- sluice count --backend cuda -v"
    time cuda_out=$(timeout -k 10 "$LIMIT" "$BIN" count --backend cuda --verbose --quiet "$FILE")
    echo "$cuda_out"
    echo "--- sluice count --backend cpu"
    time cpu_out=$(timeout -k 10 "$LIMIT" "$BIN" count --backend cpu --quiet "$FILE")
    echo "$cpu_out"
    echo "--- wc -c -l"
    time wc_out=$(wc -c -l "$FILE")
    echo "$wc_out"
    echo "--- wc -l (warm)"
    time wc -l "$FILE"
    read -r cuda_lines cuda_bytes _ <<< "$cuda_out"
    read -r cpu_lines cpu_bytes _ <<< "$cpu_out"
    read -r wc_lines wc_bytes _ <<< "$wc_out"
    if [ -n "${cuda_lines:-}" ] && [ "${cuda_lines:-}" = "${cpu_lines:-}" ] && [ "${cpu_lines:-}" = "${wc_lines:-}" ] \
        && [ "${cuda_bytes:-}" = "${cpu_bytes:-}" ] && [ "${cpu_bytes:-}" = "${wc_bytes:-}" ]; then
        echo "COUNT AGREEMENT: ok: $wc_lines lines, $wc_bytes bytes from cuda, cpu and wc"
    else
        echo "COUNT AGREEMENT: FAILED: cuda '${cuda_lines:-?} ${cuda_bytes:-?}', cpu '${cpu_lines:-?} ${cpu_bytes:-?}', wc '${wc_lines:-?} ${wc_bytes:-?}'"
    fi
} 2>&1 | tee "$OUT/count.log" | tee -a "$LOG"
grep -q "COUNT AGREEMENT: ok" "$OUT/count.log" || failures+=("count agreement")

# --- 3. benchmarks -------------------------------------------------------------------
step "bench dispatch" "$LIMIT" bash -c "'$BIN' bench dispatch --iterations $ITERATIONS --json > '$OUT/dispatch.json'"
step "bench slots" "$LIMIT" bash -c "'$BIN' bench slots --seconds $SLOT_SECONDS --json > '$OUT/slots.json'"
step "bench count" "$LIMIT" bash -c "'$BIN' bench count '$FILE' --repeats $REPEATS $COLD --json > '$OUT/count.json'"

rm -f "$FILE"
if [ ${#failures[@]} -eq 0 ]; then
    say "=== gpu-run $MODE: everything passed"
    exit 0
fi
say "=== gpu-run $MODE: FAILED: ${failures[*]}"
exit 1
