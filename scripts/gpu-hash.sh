#!/usr/bin/env bash
# Issue #6 on the GPU machine: `sluice hash` (CUDA and CPU backends) beside a
# single-threaded reference (python3 + the `crc32c` wheel carried in
# .device/wheels), whole processes, warm on a 4 GiB and a BIG_GIB (default 16)
# GiB file, cold on the 4 GiB file with the raw O_DIRECT rate; every checksum
# compared. The CUDA command's fixed start (about 0.37 s) weighs less as the
# file grows: BIG_GIB=40 shows where the GPU passes 5x the reference (the
# file must fit the disk and the page cache; the script checks the disk).
# About 2 minutes (BIG_GIB=40: 3). Usage: OUT=$OUT bash scripts/gpu-hash.sh   (exit 1 on any disagreement)
# More: CUDA_REPS (CUDA runs per file, default 2); SLOTS="32 64" adds CUDA runs
# with --slots N on each file (how much of the fixed start is pinning 128
# slots of 4 MiB); SKIP_COLD=1 leaves out the cold rows.
set -u
BIN=${BIN:-$PWD/.device/sluice}
WORK=${WORK:-/tmp/sluice-hash}
BIG_GIB=${BIG_GIB:-16}
CUDA_REPS=${CUDA_REPS:-2}
SLOTS=${SLOTS:-}
SKIP_COLD=${SKIP_COLD:-0}
mkdir -p "$WORK"
fail=0
free_gib=$(df --output=avail -BG "$WORK" | tail -1 | tr -dc 0-9)
if [ "$free_gib" -lt $((BIG_GIB + 8)) ]; then
    echo "only $free_gib GiB free on $WORK: BIG_GIB=$BIG_GIB needs $((BIG_GIB + 8))"; exit 1
fi
secs() { awk "BEGIN{printf \"%.3f\", $(date +%s.%N) - $1}"; }
gbps() { awk "BEGIN{printf \"%.2f\", $1 / $2 / 1e9}"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
timed() {  # LABEL BYTES CMD...: prints "| LABEL | s | GB/s | output |", sets $out
    local label=$1 bytes=$2; shift 2
    local s; s=$(date +%s.%N)
    "$@" >"$WORK/out" 2>"$WORK/err"; local rc=$?
    out=$(head -c 200 "$WORK/out" | tr '\n' ' ')
    local t; t=$(secs "$s")
    echo "| $label | $t | $(gbps "$bytes" "$t") | ${out} (exit $rc) |"
    [ "$rc" -eq 0 ] || { echo "  stderr: $(tail -c 400 "$WORK/err")"; fail=1; }
}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" .device/wheels/crc32c-*.whl >/dev/null 2>&1 || { echo "crc32c wheel did not install"; exit 1; }
ref() { PYTHONPATH="$WORK/site" python3 "$(dirname "$0")/crc32c-ref.py" "$1"; }
date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
# 1 GiB of random bytes, repeated: the checksum does not care, and writing is fast.
head -c 1073741824 /dev/urandom > "$WORK/r1g"
for i in 1 2 3 4; do cat "$WORK/r1g"; done > "$WORK/f4g"
for i in $(seq 1 $((BIG_GIB / 4))); do cat "$WORK/f4g"; done > "$WORK/f${BIG_GIB}g"
rm -f "$WORK/r1g"
echo
echo "| run | s | GB/s | output |"
echo "| --- | --- | --- | --- |"
for f in f4g "f${BIG_GIB}g"; do
    F=$WORK/$f; B=$(stat -c %s "$F")
    cat "$F" > /dev/null
    timed "warm $f python crc32c, 1 thread" "$B" ref "$F"; r=${out%% *}
    for rep in $(seq 1 "$CUDA_REPS"); do
        timed "warm $f sluice hash --backend cuda (#$rep)" "$B" "$BIN" hash --backend cuda --quiet "$F"; c=${out%% *}
        [ "$c" = "$r" ] || { echo "MISMATCH cuda $c vs reference $r"; fail=1; }
    done
    for n in $SLOTS; do
        timed "warm $f sluice hash --backend cuda --slots $n" "$B" "$BIN" hash --backend cuda --slots "$n" --quiet "$F"; c=${out%% *}
        [ "$c" = "$r" ] || { echo "MISMATCH cuda --slots $n $c vs reference $r"; fail=1; }
    done
    timed "warm $f sluice hash --backend cpu" "$B" "$BIN" hash --backend cpu --quiet "$F"; c=${out%% *}
    [ "$c" = "$r" ] || { echo "MISMATCH cpu $c vs reference $r"; fail=1; }
done
F=$WORK/f4g; B=$(stat -c %s "$F")
if [ "$SKIP_COLD" != 1 ]; then
drop; s=$(date +%s.%N); dd if="$F" of=/dev/null bs=4M iflag=direct 2>/dev/null; t=$(secs "$s"); echo "| cold f4g dd iflag=direct bs=4M | $t | $(gbps "$B" "$t") | |"
drop; timed "cold f4g python crc32c, 1 thread" "$B" ref "$F"
drop; timed "cold f4g sluice hash --backend cuda" "$B" "$BIN" hash --backend cuda --quiet "$F"
drop; timed "cold f4g sluice hash --backend cuda --direct" "$B" "$BIN" hash --backend cuda --direct --quiet "$F"
drop; timed "cold f4g sluice hash --backend cpu --direct" "$B" "$BIN" hash --backend cpu --direct --quiet "$F"
fi
echo "phases of one warm 4 GiB CUDA hash (SLUICE_TRACE_PHASES=1):"
cat "$F" > /dev/null
SLUICE_TRACE_PHASES=1 "$BIN" hash --backend cuda --quiet "$F" 2>&1 >/dev/null | grep '^phase'
rm -f "$WORK/f${BIG_GIB}g"
[ $fail -eq 0 ] && echo "HASH: all checksums agree" || echo "HASH: FAILURES"
exit $fail
