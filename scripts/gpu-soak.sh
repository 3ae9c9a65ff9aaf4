#!/usr/bin/env bash
# Issue 7's GPU robustness run on the GPU machine: the self-test with the fault
# checks (a real lost CUDA context recovered, with packed small files in flight
# and with cuFile ingest too, one lost on every attempt, a hung kernel caught by
# the watchdog), then a soak of SOAK_SECONDS (default 480) with random files,
# tenant mixes, hostile slots and context kills, every result checked against
# the host. The context kills run in child processes of sluice (`soak
# --child-kills`, about every 20 s), each a scan on CUDA whose first chunk is
# an illegal address and which must still finish right; the soak's own engine
# keeps running meanwhile. Prints every figure with its command and the date;
# exits non-zero on any failure, mismatch or leak.
#
# Expected run time: selftest --faults about 30-90 s, the soak SOAK_SECONDS +
# about 10 s. Usage (device tool, .device/sluice carried):
#   OUT=$OUT SOAK_SECONDS=60 scripts/gpu-soak.sh              (selftest --faults + a 60 s soak, ~2 min)
# A soak longer than one call (the device tool allows 600 s a call) runs in a
# session of its own, from copies in /tmp (a later call re-sends the tree),
# and a second call collects it:
#   call 1: mkdir -p /tmp/soak && cp scripts/gpu-soak.sh .device/sluice /tmp/soak/ &&
#           SLUICE=/tmp/soak/sluice OUT=/tmp/soak/out SKIP_SELFTEST=1 SOAK_SECONDS=605 \
#           setsid bash /tmp/soak/gpu-soak.sh > /tmp/soak/run.log 2>&1 < /dev/null & sleep 570
#   call 2: while pgrep -f 'bash /tmp/soak/[g]pu-soak.sh' > /dev/null; do sleep 5; done;
#           (the brackets keep the pattern from matching the calling shell's own command line)
#           cp /tmp/soak/out/gpu-soak.txt $OUT/
set -uo pipefail
SLUICE=${SLUICE:-$PWD/.device/sluice}
OUT=${OUT:-/tmp/out}
SOAK_SECONDS=${SOAK_SECONDS:-480}
SEED=${SEED:-$(date +%s)}
SKIP_SELFTEST=${SKIP_SELFTEST:-0}
mkdir -p "$OUT"
status=0

run() {  # label, limit in seconds, command...: prints the command and date, tees the output, records failure
    local label=$1 limit=$2; shift 2
    echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) $label: $*" | tee -a "$OUT/gpu-soak.txt"
    local s=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$label.log" 2>&1
    local rc=$?
    tail -n 12 "$OUT/$label.log" | tee -a "$OUT/gpu-soak.txt"
    echo "== $label: exit $rc after $(( $(date +%s) - s )) s" | tee -a "$OUT/gpu-soak.txt"
    [ $rc -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader | tee -a "$OUT/gpu-soak.txt"
if [ "$SKIP_SELFTEST" != 1 ]; then
    run selftest-faults 590 "$SLUICE" selftest --backend cuda --quick --faults --seed "$SEED"
    grep -E '^(ok|FAIL)  faults:' "$OUT/selftest-faults.log" | tee -a "$OUT/gpu-soak.txt"
    # On CUDA the checks after the first context loss are skipped (the driver
    # refuses new contexts in the process); they run on the CPU twin in swift test.
fi
run soak $((SOAK_SECONDS + 120)) "$SLUICE" soak --backend cuda --duration "$SOAK_SECONDS" --seed "$SEED" \
    --child-kills on --child-kill-interval 20
grep -E '^soak: (start|end):|^soak (PASSED|FAILED)' "$OUT/soak.log" | tee -a "$OUT/gpu-soak.txt"
echo "child kills: $(grep -c ': child kill .*: passed in ' "$OUT/soak.log") passed, $(grep -c ': child kill .*: FAILED' "$OUT/soak.log") failed" \
    | tee -a "$OUT/gpu-soak.txt"
grep -m 2 ': child kill .*: passed in ' "$OUT/soak.log" | cut -c1-400 | tee -a "$OUT/gpu-soak.txt"
nvidia-smi --query-gpu=memory.used --format=csv,noheader | tee -a "$OUT/gpu-soak.txt"
# Xid errors the faults caused (expected: one per context kill; anything else is news).
(dmesg 2>/dev/null | grep -c 'NVRM: Xid' | sed 's/^/dmesg Xid lines: /') | tee -a "$OUT/gpu-soak.txt"
echo "gpu-soak: $([ $status -eq 0 ] && echo PASSED || echo FAILED) (seed $SEED)" | tee -a "$OUT/gpu-soak.txt"
exit $status
