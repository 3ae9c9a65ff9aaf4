#!/usr/bin/env bash
# Issue 4's and issue 19's cold targets on the GPU machine's current disk: sluice
# count and scan (100 literals) of a 4 GiB file on both backends, with O_DIRECT and
# buffered, with the page cache dropped before each command, side by side with the
# raw read rate of the same file (`dd bs=4M`, O_DIRECT and buffered) in the same run, then one cold count with SLUICE_TRACE_PHASES=1 to
# show how much of the command is the backend's start and how much reading.
# Usage (device tool, .device carried): OUT=$OUT scripts/gpu-cold.sh
# Takes about a minute (REPS=1: half). Needs root (drop_caches).
set -uo pipefail
SLUICE=${SLUICE:-$PWD/.device/sluice}
OUT=${OUT:-/tmp/out}
FILE=${SLUICE_COLD_FILE:-/tmp/sluice-cold.txt}
mkdir -p "$OUT"
LOG=$OUT/cold.txt
export LD_LIBRARY_PATH=$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -f "$FILE" ] || python3 "$(dirname "$0")/gen-text.py" "$FILE" 4096 | tee -a "$LOG"
BYTES=$(stat -c %s "$FILE")
python3 - "$(dirname "$0")/../.device/lits100.txt" <<'PY'
import random, sys
rnd = random.Random(11)
with open(sys.argv[1], "w") as f:
    for _ in range(100): f.write("".join(rnd.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(12)) + "\n")
PY
L=$(dirname "$0")/../.device/lits100.txt
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
echo "$(date -u +%FT%TZ) $(uname -r); file $FILE, $BYTES bytes; sluice $(sha256sum "$SLUICE" | cut -c1-16)" | tee -a "$LOG"
row() {  # label, command...: cold, whole command timed
    local label=$1; shift
    drop
    local s=$(date +%s%N)
    "$@" > "$OUT/$label.out" 2> "$OUT/$label.err"
    local rc=$? ns=$(( $(date +%s%N) - s ))
    awk -v l="$label" -v rc=$rc -v ns=$ns -v b="$BYTES" -v c="$*" \
        'BEGIN { printf "| %-20s | rc %d | %7.3f s | %5.2f GB/s | `%s` |\n", l, rc, ns / 1e9, b / ns, c }' | tee -a "$LOG"
}
for rep in $(seq 1 "${REPS:-2}"); do
    row dd-direct          dd if="$FILE" of=/dev/null bs=4M iflag=direct
    row count-cuda-direct  "$SLUICE" count --backend cuda --quiet --direct "$FILE"
    row count-cuda         "$SLUICE" count --backend cuda --quiet "$FILE"
    row count-cpu-direct   "$SLUICE" count --backend cpu --quiet --direct "$FILE"
    row count-cpu          "$SLUICE" count --backend cpu --quiet "$FILE"
    row scan-cuda-direct   "$SLUICE" scan --backend cuda --quiet --direct --count -f "$L" "$FILE"
    row scan-cuda          "$SLUICE" scan --backend cuda --quiet --count -f "$L" "$FILE"
    row scan-cpu-direct    "$SLUICE" scan --backend cpu --quiet --direct --count -f "$L" "$FILE"
    row scan-cpu           "$SLUICE" scan --backend cpu --quiet --count -f "$L" "$FILE"
    row dd-buffered        dd if="$FILE" of=/dev/null bs=4M
done
wc -c -l < "$FILE" | tee -a "$LOG"
for f in count-cuda-direct count-cuda count-cpu-direct; do echo "$f: $(cat "$OUT/$f.out")" | tee -a "$LOG"; done
drop
echo "--- phases of a cold count --backend cuda --direct --verbose" | tee -a "$LOG"
SLUICE_TRACE_PHASES=1 "$SLUICE" count --backend cuda --quiet --direct --verbose "$FILE" 2>&1 >/dev/null | tee -a "$LOG"
