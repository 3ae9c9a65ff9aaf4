#!/usr/bin/env bash
# Issue 19's kernel-alone rows: `sluice bench resident` over the first 512 MiB of a word text held in
# GPU memory, count-only at 1,000 / 10,000 / 100,000 literals and the dense set, with records at
# 1,000, and the CPU backend at 1,000 for comparison (its data region holds less).
#   OUT=$OUT scripts/gpu-resident.sh (reports in /tmp/sluice-resident, the rows on stdout)      # after scripts/gpu-copy-engine.sh or gpu-auto.sh made /tmp/sluice-auto
set -u
OUT=${OUT:-$PWD/gpu-out}; B=${SLUICE_BIN:-$PWD/.device/sluice}; W=/tmp/sluice-auto
mkdir -p "$OUT"; R=/tmp/sluice-resident; mkdir -p "$R"
[ -e "$W/words.txt" ] || python3 scripts/scanbench-data.py "$W/words.txt" 4096 "$W" > /dev/null
[ -e "$W/words-1024.txt" ] || head -c $((1024 << 20)) "$W/words.txt" > "$W/words-1024.txt"
for s in 1000 10000 100000 dense; do
    timeout 30 "$B" bench resident "$W/words-1024.txt" -f "$W/lits-$s.txt" --backend cuda --count-only --seconds 2 > "$R/resident-$s.txt" 2>&1
    echo "cuda count-only $s: exit $?"; grep -E "^(cuda|cpu) |^matcher|rror" "$R/resident-$s.txt" | head -4
done
timeout 30 "$B" bench resident "$W/words-1024.txt" -f "$W/lits-1000.txt" --backend cuda --seconds 2 > "$R/resident-1000-records.txt" 2>&1
echo "cuda records 1000: exit $?"; grep -E "^(cuda|cpu) |^records|rror" "$R/resident-1000-records.txt" | head -4
timeout 30 "$B" bench resident "$W/words-1024.txt" -f "$W/lits-1000.txt" --backend cpu --count-only --seconds 2 > "$R/resident-1000-cpu.txt" 2>&1
echo "cpu count-only 1000: exit $?"; grep -E "^(cuda|cpu) |^matcher|rror" "$R/resident-1000-cpu.txt" | head -4
