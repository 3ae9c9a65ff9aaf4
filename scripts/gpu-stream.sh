#!/usr/bin/env bash
# Issue 16 on the GPU machine, in one bounded run (about 5-7 minutes):
#   1. machine facts; `sluice selftest --backend cuda` (full, or --quick with QUICK=1)
#      and `--faults`;
#   2. an oversized ring is refused before anything is allocated:
#      `sluice scan --backend cuda --slots 65536 -e x FILE` must exit 2 at once, naming the bytes;
#   3. scripts/bench-stream.py with the CUDA and the CPU backend: peak RSS of
#      `scan -e a` over 200 MiB of `a`, full-output scans of 256 MiB / 1 GiB / 2 GiB of
#      word text with 1,000 literals at chunk sizes 1, 4 and 64 MiB, time to the first line.
#
#   OUT=$OUT scripts/gpu-stream.sh        # from the repository root, with .device/sluice present
#
# Build and carry the binary from the development machine:
#   swift build -c release --static-swift-stdlib --scratch-path .build-release
#   mkdir -p .device && cp .build-release/release/sluice .device/sluice
set -u
OUT=${OUT:-$PWD/gpu-out}
BIN=${SLUICE_BIN:-$PWD/.device/sluice}
mkdir -p "$OUT"
LOG="$OUT/run.log"
: > "$LOG"
status=0
say() { echo "$*" | tee -a "$LOG"; }
say "== $(date -u +%FT%TZ) $(uname -srm), $(nproc) cores; binary $(sha256sum "$BIN" | cut -c1-16)"
nvidia-smi -L 2>&1 | tee -a "$LOG"
selftest_args=()
[ "${QUICK:-0}" = 1 ] && selftest_args=(--quick)
say "== selftest --backend cuda ${selftest_args[*]}"
timeout 240 "$BIN" selftest --backend cuda "${selftest_args[@]}" > "$OUT/selftest.log" 2>&1
rc=$?; tail -3 "$OUT/selftest.log" | tee -a "$LOG"; say "selftest exit $rc"; [ $rc = 0 ] || status=1
say "== selftest --backend cuda --faults"
timeout 180 "$BIN" selftest --backend cuda --faults --quick > "$OUT/faults.log" 2>&1
rc=$?; tail -3 "$OUT/faults.log" | tee -a "$LOG"; say "faults exit $rc"; [ $rc = 0 ] || status=1
say "== an oversized ring is refused up front"
start=$(date +%s.%N)
"$BIN" scan --backend cuda --slots 65536 -e x /etc/hostname > /dev/null 2> "$OUT/oversized.err"
rc=$?; end=$(date +%s.%N)
say "exit $rc after $(echo "$end - $start" | bc 2>/dev/null || echo ?) s: $(head -c 400 "$OUT/oversized.err")"
[ $rc = 2 ] || status=1
say "== bench-stream (cuda, cpu)"
timeout 420 python3 scripts/bench-stream.py --bin "$BIN" --backend cuda --backend cpu --work /tmp/sluice-stream \
    --out "$OUT" 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
say "== done, status $status"
exit $status
