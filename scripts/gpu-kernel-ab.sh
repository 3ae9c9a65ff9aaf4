#!/usr/bin/env bash
# A kernel change A/B on the GPU machine, two binaries in the same run (about 3-4 minutes):
#   1. `bench resident` (the scan kernel alone, 512 MiB held in GPU memory), count-only at
#      1,000 / 10,000 / 100,000 literals and the dense set, and with records at 1,000, each
#      with BASE then NEW, at the default ring (128 slots: one worker block per slot) and at 256 slots;
#   2. `bench scan` in the process over a 4 GiB warm word text (raw io_uring read beside it),
#      the same four sets, BASE then NEW;
#   3. whole commands, `scan --count --backend cuda`, alternated, best of 3, at 1,000 / 10,000 /
#      100,000 literals over 4 GiB, counts compared; NEW also with 256 slots of 2 MiB (two worker
#      blocks per SM instead of one, the same 512 MiB data region);
#   4. 1,000,000 literals (scanbench-data.py's lits-1000000.txt) over 1 GiB: `scan --count` on
#      NEW with CUDA and with the CPU backend, outputs compared, and `bench resident` with NEW;
#   5. 10,000 URLs that share "https://www." over 1 GiB (scripts/shared-prefix-data.py):
#      `scan --count` whole commands, BASE (one try, 20 s at most) and NEW on CUDA, NEW on the CPU
#      backend (built-in, auto).
#   BASE=.device/sluice-base NEW=.device/sluice OUT=$OUT scripts/gpu-kernel-ab.sh
# QUICK=1 runs only the count-only resident rows at 1,000 / 100,000 / dense and step 2 (about 2 minutes).
set -u
OUT=${OUT:-$PWD/gpu-out}; BASE=${BASE:-$PWD/.device/sluice-base}; NEW=${NEW:-$PWD/.device/sluice}; W=/tmp/sluice-auto
mkdir -p "$OUT" "$W"; R=/tmp/sluice-ab; mkdir -p "$R"
echo "base $(sha256sum "$BASE" | cut -c1-16); new $(sha256sum "$NEW" | cut -c1-16); $(nvidia-smi -L 2>&1 | head -1)"
[ -e "$W/words.txt" ] || python3 scripts/scanbench-data.py "$W/words.txt" 4096 "$W" > /dev/null
[ -e "$W/words-1024.txt" ] || head -c $((1024 << 20)) "$W/words.txt" > "$W/words-1024.txt"
resident() {  # LABEL SET ARGS...
    local label=$1 set=$2; shift 2
    for name in base new; do
        local b=$BASE; [ $name = new ] && b=$NEW
        timeout 40 "$b" bench resident "$W/words-1024.txt" -f "$W/lits-$set.txt" --backend cuda --seconds 2 "$@" > "$R/res-$name-$label.txt" 2>&1
        echo "$name $label (exit $?): $(grep -E "^(cuda|cpu) " "$R/res-$name-$label.txt" | head -1) $(grep -iE "rror|differ" "$R/res-$name-$label.txt" | head -1)"
    done
}
echo "== bench resident (GB/s in the row)"
if [ "${QUICK:-0}" = 1 ]; then
    for s in 1000 100000 dense; do resident "$s-count-only" $s --count-only; done
else
    for s in 1000 10000 100000 dense; do resident "$s-count-only" $s --count-only; done
    resident "1000-records" 1000
    for s in 1000 100000; do resident "$s-count-only-256-slots" $s --count-only --slots 256; done
fi
echo "== bench scan, 4 GiB warm"
cat "$W/words.txt" > /dev/null
for name in base new; do
    b=$BASE; [ $name = new ] && b=$NEW
    timeout 150 "$b" bench scan "$W/words.txt" -f "$W/lits-1000.txt" -f "$W/lits-10000.txt" -f "$W/lits-100000.txt" \
        -f "$W/lits-dense.txt" --no-cpu --no-hash --repeats 2 > "$R/scan-$name.txt" 2>&1
    echo "-- $name (exit $?)"; grep -E "^(io_uring|sluice|ratio)" "$R/scan-$name.txt" | head -12
done
cp "$R/scan-new.txt" "$OUT/bench-scan-new.txt"
[ "${QUICK:-0}" = 1 ] && exit 0
echo "== whole commands"
python3 - "$BASE" "$NEW" "$W" <<'PY'
import subprocess, sys, time
base, new, w = sys.argv[1:]
print("| scan --count --backend cuda, 4 GiB | base s | new s | new / base speed | new, 256 x 2 MiB slots, s | its speed / new |")
print("| --- | --- | --- | --- | --- | --- |")
wide = ["--slots", "256", "--chunk-size", "2M"]
for lits in ["1000", "10000", "100000"]:
    best, out = {}, {}
    for _ in range(3):
        for name, b, extra in [("base", base, []), ("new", new, []), ("wide", new, wide)]:
            t = time.perf_counter()
            r = subprocess.run([b, "scan", "--server", "never", "--backend", "cuda", "--count", *extra, "-f", f"{w}/lits-{lits}.txt", f"{w}/words.txt"], capture_output=True)
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t); out[name] = r.stdout
    same = "same counts" if out["base"] == out["new"] == out["wide"] else "COUNTS DIFFER"
    print(f"| {lits} | {best['base']:.3f} | {best['new']:.3f} | {best['base'] / best['new']:.2f} ({same}) | {best['wide']:.3f} | {best['new'] / best['wide']:.2f} |", flush=True)
PY
echo "== 1,000,000 literals, 1 GiB"
for be in cuda cpu; do
    s=$(date +%s%N); timeout 120 "$NEW" scan --server never --backend $be --count -f "$W/lits-1000000.txt" "$W/words-1024.txt" > "$R/m-$be.out" 2> "$R/m-$be.err"
    echo "$be: exit $?, $(( ($(date +%s%N) - s) / 1000000 )) ms: $(cat "$R/m-$be.out") $(head -c 200 "$R/m-$be.err")"
done
cmp -s "$R/m-cuda.out" "$R/m-cpu.out" && echo "1,000,000 literals: same counts" || echo "1,000,000 literals: COUNTS DIFFER"
timeout 60 "$NEW" bench resident "$W/words-1024.txt" -f "$W/lits-1000000.txt" --backend cuda --count-only --seconds 2 > "$R/res-new-1m.txt" 2>&1
echo "new 1000000-count-only (exit $?): $(grep -E "^(cuda|cpu) " "$R/res-new-1m.txt" | head -1) $(grep -iE "rror|differ" "$R/res-new-1m.txt" | head -1)"
echo "== 10,000 URLs sharing \"https://www.\" (scripts/shared-prefix-data.py), 1 GiB, scan --count, best of 2"
[ -e "$W/url-text.txt" ] || python3 scripts/shared-prefix-data.py "$W" 1024
cat "$W/url-text.txt" > /dev/null
for run in base-cuda new-cuda new-cpu-builtin new-cpu; do
    b=$NEW; [ "${run%%-*}" = base ] && b=$BASE
    extra="--backend cuda"; [ "${run#new-}" = cpu-builtin ] && extra="--backend cpu --cpu-engine builtin"; [ "${run#new-}" = cpu ] && extra="--backend cpu"
    best=""
    # The base table puts every URL in one bucket: one try, cut short.
    limit=60; tries="1 2"; [ "${run%%-*}" = base ] && limit=20 && tries=1
    for _ in $tries; do
        s=$(date +%s%N); timeout $limit "$b" scan --server never $extra --count -f "$W/lits-url.txt" "$W/url-text.txt" > "$R/url-$run.out" 2>&1; rc=$?
        ms=$(( ($(date +%s%N) - s) / 1000000 )); { [ -z "$best" ] || [ $ms -lt $best ]; } && best=$ms
    done
    echo "$run: exit $rc, best $best ms: $(head -c 120 "$R/url-$run.out")"
done
