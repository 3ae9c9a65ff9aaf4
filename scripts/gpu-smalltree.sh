#!/usr/bin/env bash
# Issue 4's small-file benchmark on the GPU machine: a tree of 40,000 files of
# 16 KiB, 100 random 12-byte literals, warm, scanned by sluice and ripgrep -F
# at -j1 and -j16, each timed as a whole command (best of 3). Usage (device tool):
#   OUT=$OUT scripts/gpu-smalltree.sh        (carry .device with sluice and rg)
# Rows: sluice with no --backend (auto: a tree of small files runs on the CPU
# backend), packed (one pool task loads each pack) and unpacked; the CPU
# backend with its built-in matcher, packed; CUDA, packed; and the best row
# of runs 16-17 (four scanner threads, unpacked) for comparison. Hyperscan
# (.device/lib/libhs.so.5, from scripts/build-hsbench.sh) is on the library
# path of every sluice row, as a user's installed libhyperscan5 would be.
# Then one run with SLUICE_TRACE_PHASES=1 (where the time goes), and packed =
# unpacked on CUDA in every output mode. Takes about a minute; exits 1 if any
# command's files or match totals differ from rg's. PAIRS=N (default 0) adds
# N alternating runs of the default sluice command and `rg -j16` (so drift in
# the machine's speed falls on both), with each side's median.
set -uo pipefail
PAIRS=${PAIRS:-0}
SLUICE=${SLUICE:-$PWD/.device/sluice}
RG=${SLUICE_RG:-$PWD/.device/rg}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
TREE=/tmp/sluice-tree
python3 - "$TREE" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(7)
alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 \n"
block = bytes(rnd.choice(alphabet) for _ in range(1 << 20))
for d in range(200):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(200):
        o = rnd.randrange(0, len(block) - 16384)
        with open(f"{root}/d{d:03}/f{f:03}.txt", "wb") as fh:
            fh.write(block[o:o + 16384])
lits = set()
while len(lits) < 100:
    lits.add("".join(rnd.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(12)))
with open("/tmp/sluice-lits.txt", "w") as fh:
    fh.write("\n".join(sorted(lits)) + "\n")
PY
# Plant one literal in every 100th file so there is something to find.
first=$(head -1 /tmp/sluice-lits.txt)
find "$TREE" -name 'f0[0-9]0.txt' | head -400 | while read -r f; do printf '%s\n' "$first" >> "$f"; done
cat "$TREE"/*/* > /dev/null   # warm the page cache
files=$(find "$TREE" -type f | wc -l)
echo "tree: $files files, $(du -sb "$TREE" | cut -f1) bytes" | tee "$OUT/smalltree.txt"
t() {  # label, command... : best of 3 wall times
    local label=$1; shift
    local best=0
    for rep in 1 2 3; do
        local s=$(date +%s%N)
        "$@" > "$OUT/$label.$rep.out" 2>> "$OUT/$label.err"
        local rc=$?
        local dt=$(( $(date +%s%N) - s ))
        if [ "$best" = 0 ] || [ "$dt" -lt "$best" ]; then best=$dt; fi
        echo "$label rep $rep: rc $rc, $dt ns" >> "$OUT/smalltree.txt"
    done
    printf '%-14s best %6d ms  %8d files/s\n' "$label" $((best / 1000000)) $((files * 1000000000 / best)) | tee -a "$OUT/smalltree.txt"
}
L=/tmp/sluice-lits.txt
export LD_LIBRARY_PATH=$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
t sluice-auto-pack    "$SLUICE" scan --quiet --pack --count -f $L "$TREE"
t sluice-auto-nopack  "$SLUICE" scan --quiet --no-pack --count -f $L "$TREE"
t sluice-cpu-builtin  "$SLUICE" scan --backend cpu --cpu-engine builtin --quiet --pack --count -f $L "$TREE"
t sluice-cuda-pack    "$SLUICE" scan --backend cuda --quiet --pack --count -f $L "$TREE"
t sluice-cpu-d4-nopack "$SLUICE" scan --backend cpu --devices 0,1,2,3 --quiet --no-pack --count -f $L "$TREE"
labels="sluice-auto-pack sluice-auto-nopack sluice-cpu-builtin sluice-cuda-pack sluice-cpu-d4-nopack"
t rg-j1       "$RG" -F -c -j1 -f $L "$TREE"
t rg-j16      "$RG" -F -c -j16 -f $L "$TREE"
# Same answers: files with matches and total matches (the planted literal never overlaps itself).
status=0
want=$(sort "$OUT/rg-j16.1.out" | md5sum)
for l in $labels rg-j1 rg-j16; do
    echo "$l: $(wc -l < "$OUT/$l.1.out") files, $(awk -F: '{s+=$NF} END {print s}' "$OUT/$l.1.out") matches" | tee -a "$OUT/smalltree.txt"
    if [ "$(sort "$OUT/$l.1.out" | md5sum)" != "$want" ]; then
        echo "MISMATCH: $l differs from rg -j16" | tee -a "$OUT/smalltree.txt"
        status=1
    fi
done
# Packed vs unpacked on every output mode (the GPU path of packing): byte for byte.
for mode in "" "--json" "-l" "-i"; do
    "$SLUICE" scan --backend cuda --quiet --pack $mode -f $L "$TREE" > "$OUT/mode-pack.out" 2>> "$OUT/smalltree.txt"
    "$SLUICE" scan --backend cuda --quiet --no-pack $mode -f $L "$TREE" > "$OUT/mode-nopack.out" 2>> "$OUT/smalltree.txt"
    if cmp -s "$OUT/mode-pack.out" "$OUT/mode-nopack.out"; then
        echo "cuda packed = unpacked for mode '${mode:-matches}' ($(wc -l < "$OUT/mode-pack.out") lines)" | tee -a "$OUT/smalltree.txt"
    else
        echo "MISMATCH: cuda packed != unpacked for mode '${mode:-matches}'" | tee -a "$OUT/smalltree.txt"
        status=1
    fi
done
if [ "$PAIRS" -gt 0 ]; then
    ns() { local s=$(date +%s%N); "$@" > /dev/null 2>&1; echo $(( ($(date +%s%N) - s) / 1000000 )); }
    a=(); b=()
    for i in $(seq 1 "$PAIRS"); do
        a+=("$(ns "$SLUICE" scan --quiet --count -f $L "$TREE")")
        b+=("$(ns "$RG" -F -c -j16 -f $L "$TREE")")
    done
    median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
    echo "pairs: sluice scan --quiet --count (ms): ${a[*]}; median $(median "${a[@]}")" | tee -a "$OUT/smalltree.txt"
    echo "pairs: rg -F -c -j16 (ms): ${b[*]}; median $(median "${b[@]}")" | tee -a "$OUT/smalltree.txt"
fi
"$SLUICE" scan --quiet --pack --count --verbose --stats -f $L "$TREE" > /dev/null 2>> "$OUT/smalltree.txt"
echo "--- phases of: sluice scan --quiet --pack --count -f $L $TREE" >> "$OUT/smalltree.txt"
SLUICE_TRACE_PHASES=1 "$SLUICE" scan --quiet --pack --count -f $L "$TREE" 2>&1 > /dev/null | grep '^phase' >> "$OUT/smalltree.txt"
tail -48 "$OUT/smalltree.txt"
exit $status
