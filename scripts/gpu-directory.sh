#!/usr/bin/env bash
# Protocol version 2 (the scan-table directory; requests of a Session share
# the ring as tenants) on the GPU machine, in about 5 minutes, with two static
# binaries: .device/sluice-v1 (the last commit with one installed scan table)
# and .device/sluice-v2 (the directory).
#  1. scripts/gpu-final-check.sh on v2: `selftest --backend cuda` (its session
#     check runs two concurrent scans with different literal sets on one CUDA
#     Session, now two tenants with two tables in flight, against a CPU
#     Session), `--faults --quick`, and `sluice scan` CUDA vs CPU byte for
#     byte in every output mode;
#  2. `sluice bench scan` (in the process, --no-cpu --no-hash) on 2 GiB of
#     word text with 1,000 and 10,000 literals and the dense set: v1 and v2
#     alternated, 2 rounds each, same file, same run (the dispatcher now reads
#     a directory entry from device memory for every scan slot it claims).
#   OUT=$OUT scripts/gpu-directory.sh
set -u
OUT=${OUT:-$PWD/gpu-out}; W=/tmp/sluice-dir; V2=$PWD/.device/sluice-v2; V1=$PWD/.device/sluice-v1
mkdir -p "$OUT" "$W"; status=0
echo "v2 $(sha256sum "$V2" | cut -c1-16), v1 $(sha256sum "$V1" | cut -c1-16)"
OUT=$OUT SLUICE_BIN=$V2 bash scripts/gpu-final-check.sh || status=1
grep -E '^(ok|FAIL)  session' "$OUT/selftest.log" | cut -c1-400
python3 scripts/scanbench-data.py "$W/words.txt" 2048 "$W" > /dev/null
cat "$W/words.txt" > /dev/null
for round in 1 2; do
    for which in v1 v2; do
        B=$V1; [ $which = v2 ] && B=$V2
        timeout 200 "$B" bench scan "$W/words.txt" -f "$W/lits-1000.txt" -f "$W/lits-10000.txt" -f "$W/lits-dense.txt" \
            --repeats 2 --no-cpu --no-hash --json --quiet > "$OUT/bench-$which-$round.json" 2> "$OUT/bench-$which-$round.err"
        echo "bench scan $which round $round: exit $? $(python3 -c "
import json,sys
d=json.load(open(sys.argv[1]))
print('; '.join('%s [%s] %.2f GB/s' % (r['method'][:40], r['literals'], r['best GB/s']) for r in d['rows']))" "$OUT/bench-$which-$round.json" 2>&1 | cut -c1-600)"
    done
done
echo "status $status"; exit $status
