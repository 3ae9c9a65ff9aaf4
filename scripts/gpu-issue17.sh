#!/usr/bin/env bash
# Issue 17 on the GPU machine, in about 6 minutes, with two static binaries:
# .device/sluice-before (the last commit before the library split) and
# .device/sluice-after (the split: Session, SluiceDiagnostics, ChunkScheduler,
# ExecutionPlan).
#  1. `selftest --backend cuda` (after; its session check runs two concurrent
#     scans on a CUDA Session against a CPU Session) and `--faults --quick`;
#  2. `sluice bench scan` (in the process, --no-cpu --no-hash) on 2 GiB of word
#     text with 1,000 and 10,000 literals and the dense set: before and after
#     alternated, 3 rounds each, same file, same run;
#  3. the whole `sluice scan --backend cuda --count -f LITS FILE` command,
#     before and after alternated (best of 3), and both binaries' outputs
#     compared with the CPU backend's.
#   OUT=$OUT scripts/gpu-issue17.sh
set -u
OUT=${OUT:-$PWD/gpu-out}; W=/tmp/sluice-i17; A=$PWD/.device/sluice-after; P=$PWD/.device/sluice-before
mkdir -p "$OUT" "$W"; status=0
echo "after $(sha256sum "$A" | cut -c1-16), before $(sha256sum "$P" | cut -c1-16); $(nvidia-smi -L 2>&1 | head -1)"
timeout 240 "$A" selftest --backend cuda > "$OUT/selftest.log" 2>&1; rc=$?
echo "selftest exit $rc: $(grep -E '^(ok|FAIL)  session' "$OUT/selftest.log" | cut -c1-300)"
echo "selftest: $(tail -1 "$OUT/selftest.log")"; [ $rc = 0 ] || status=1
timeout 150 "$A" selftest --backend cuda --faults --quick > "$OUT/faults.log" 2>&1; rc=$?
echo "faults exit $rc: $(tail -1 "$OUT/faults.log")"; [ $rc = 0 ] || status=1

python3 scripts/scanbench-data.py "$W/words.txt" 2048 "$W" > /dev/null
cat "$W/words.txt" > /dev/null
for round in 1 2 3; do
    for which in before after; do
        B=$P; [ $which = after ] && B=$A
        timeout 200 "$B" bench scan "$W/words.txt" -f "$W/lits-1000.txt" -f "$W/lits-10000.txt" -f "$W/lits-dense.txt" \
            --repeats 2 --no-cpu --no-hash --json --quiet > "$OUT/bench-$which-$round.json" 2> "$OUT/bench-$which-$round.err"
        echo "bench scan $which round $round: exit $? $(python3 -c "
import json,sys
d=json.load(open(sys.argv[1]))
print('; '.join('%s [%s] %.2f GB/s' % (r['method'][:40], r['literals'], r['best GB/s']) for r in d['rows']))" "$OUT/bench-$which-$round.json" 2>&1 | cut -c1-600)"
    done
done
for which in before after; do
    B=$P; [ $which = after ] && B=$A
    for lits in 1000 dense; do
        best=999
        for i in 1 2 3; do
            s=$(date +%s.%N); "$B" scan --backend cuda --count --quiet -f "$W/lits-$lits.txt" "$W/words.txt" > "$W/$which-$lits.out"; e=$(date +%s.%N)
            best=$(python3 -c "print(min($best, $e - $s))")
        done
        "$A" scan --backend cpu --count --quiet -f "$W/lits-$lits.txt" "$W/words.txt" > "$W/cpu-$lits.out"
        same=DIFFERENT; cmp -s "$W/$which-$lits.out" "$W/cpu-$lits.out" && same=same
        [ $same = same ] || status=1
        echo "scan --count command $which lits-$lits: best of 3 $(printf %.3f "$best") s, $(python3 -c "print('%.2f' % ((2048<<20)/$best/1e9))") GB/s; output $same as the CPU backend's"
    done
done
echo "status $status"; exit $status
