#!/usr/bin/env bash
# Issue 8 on the GPU machine: NUMA placement of each GPU's pinned memory and
# threads, and large files split into ranges across GPUs, with output
# identical to one GPU. Works on one GPU (nvidia-h100-x1: the CUDA run is
# compared with split CPU runs) and on several (nvidia-h200-x2: --devices all
# with ranges against --devices 0). Bounded: about 2-3 minutes (a 4 GiB file
# is written once, then about 20 runs of 1-10 s each).
#   OUT=$OUT scripts/gpu-multigpu.sh         (carry .device with sluice)
# Prints every figure with its command; exits 1 on any difference, 2 on a run
# that failed.
set -uo pipefail
SLUICE=${SLUICE:-$PWD/.device/sluice}
OUT=${OUT:-/tmp/out}
DATA=${SLUICE_DATA:-/tmp/sluice-multigpu}
MIB=${SLUICE_BIG_MIB:-4096}      # size of the large file (smaller for a trial run elsewhere)
RANGE=${SLUICE_RANGE:-256M}      # --range-size of the split runs
mkdir -p "$OUT" "$DATA"
LOG=$OUT/multigpu.txt
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
fail=0

say "== doctor (NUMA node and mbind trial per GPU)"
"$SLUICE" doctor 2>&1 | tee -a "$LOG" | grep -E "gpu|numa" || true
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
say "gpus: $gpus; numa nodes with memory: $(cat /sys/devices/system/node/has_memory 2>/dev/null || echo unknown)"

# A 4 GiB file: random text with a 12-byte literal planted at 1 MiB - 5 and
# from 5 bytes before to 1 byte after every range boundary (256 MiB, the automatic range
# size's floor), so matches straddle range edges; a small file and an empty one.
big=$DATA/big.bin
if [ ! -s "$big" ] || [ "$(stat -c %s "$big")" != $((MIB << 20)) ]; then
    python3 - "$big" "$MIB" "$RANGE" <<'PY'
import random, sys
mib = int(sys.argv[2])
step = int(sys.argv[3][:-1]) << {"K": 10, "M": 20, "G": 30}[sys.argv[3][-1]]
rnd = random.Random(8)
block = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz \n") for _ in range(1 << 24))
with open(sys.argv[1], "wb") as f:
    for i in range(mib // 16):
        f.write(block[i * 4096:] + block[:i * 4096])
    size = (mib // 16) << 24
    for off in [(1 << 20) - 5] + [k * step - 5 + (k % 7) for k in range(1, size // step)] + [size - 12]:
        f.seek(off)
        f.write(b"QXZJWKVPLMNB")
PY
fi
printf 'a QXZJWKVPLMNB b\n' > "$DATA/small.txt"
: > "$DATA/empty.txt"
cat "$big" > /dev/null   # warm
say "data: $(ls -l "$DATA" | tail -n +2 | awk '{print $5, $9}' | tr '\n' ' ')"

run() {  # label, args... : runs sluice, saves stdout, prints wall time and rc
    local label=$1; shift
    local s=$(date +%s%N)
    "$SLUICE" "$@" > "$OUT/$label.out" 2> "$OUT/$label.err"
    local rc=$?
    local ms=$(( ($(date +%s%N) - s) / 1000000 ))
    say "$label: rc $rc, $ms ms, $(wc -l < "$OUT/$label.out") lines: sluice $*"
    if [ "$rc" -ge 2 ]; then say "  FAILED: $(tail -3 "$OUT/$label.err")"; fail=2; fi
}
same() {  # label-a, label-b
    if cmp -s "$OUT/$1.out" "$OUT/$2.out"; then say "  same output: $1 = $2"
    else say "  DIFFERENT: $1 vs $2"; [ "$fail" = 0 ] && fail=1; fi
}

say "== verbose: NUMA placement of the data region and threads"
"$SLUICE" count --backend cuda --devices all --verbose --quiet "$DATA/small.txt" 2>&1 >/dev/null \
    | sed -nE 's/^sluice: (device [0-9]+): backend .*(NUMA: .*); why: .*/\1 \2/p; s/^sluice: (device [0-9]+: threads .*)/\1/p' \
    | tee -a "$LOG"

lits=(-e QXZJWKVPLMNB -e zzz)
for cmd in scan-plain scan-json scan-count scan-l count hash; do
    case $cmd in
        scan-plain) args=(scan "${lits[@]}") ;;
        scan-json) args=(scan --json "${lits[@]}") ;;
        scan-count) args=(scan -c "${lits[@]}") ;;
        scan-l) args=(scan -l "${lits[@]}") ;;
        count) args=(count) ;;
        hash) args=(hash) ;;
    esac
    say "== $cmd"
    run "$cmd-cuda1" "${args[@]}" --backend cuda --devices 0 --quiet "$DATA"
    run "$cmd-cpu4" "${args[@]}" --backend cpu --devices 0,1,2,3 --range-size "$RANGE" --quiet "$DATA"
    same "$cmd-cuda1" "$cmd-cpu4"
    if [ "$gpus" -ge 2 ]; then
        run "$cmd-cudaall" "${args[@]}" --backend cuda --devices all --range-size "$RANGE" --quiet "$DATA"
        same "$cmd-cuda1" "$cmd-cudaall"
    fi
done

say "== timings: the 4 GiB file, warm, one run each"
run time-cuda1 scan -c "${lits[@]}" --backend cuda --devices 0 --quiet "$big"
if [ "$gpus" -ge 2 ]; then
    run time-cudaall-ranges scan -c "${lits[@]}" --backend cuda --devices all --quiet "$big"
    run time-cudaall-whole scan -c "${lits[@]}" --backend cuda --devices all --range-size 0 --quiet "$big"
    SLUICE_NUMA=off run time-cudaall-nonuma scan -c "${lits[@]}" --backend cuda --devices all --quiet "$big"
    same time-cuda1 time-cudaall-ranges
fi
say "== result: $([ $fail = 0 ] && echo PASS || echo "FAIL ($fail)")"
exit $fail
