#!/usr/bin/env bash
# The final binary on the GPU machine, in about 3 minutes: `selftest --backend cuda` (full) and
# `--faults --quick`, then `sluice scan` with the CUDA and the CPU backend compared byte for byte
# in every output mode (plain, -n, --json, -c, -l) on 64 MiB of word text with the dense literal
# set (millions of matches) and on 32 MiB of bytes from {0x00, 0xFF, '\n', 'a'} with literals
# of NUL and 0xFF bytes that are prefixes of each other, at a 64 KiB chunk (matches straddle
# chunk boundaries everywhere). Last, a `count --backend cuda` whose kernel is cached must not
# load NVRTC.
#   OUT=$OUT scripts/gpu-final-check.sh      # with .device/sluice present
set -u
OUT=${OUT:-$PWD/gpu-out}; B=${SLUICE_BIN:-$PWD/.device/sluice}; W=/tmp/sluice-final
mkdir -p "$OUT" "$W"; status=0
echo "binary $(sha256sum "$B" | cut -c1-16); $(nvidia-smi -L 2>&1 | head -1)"
timeout 240 "$B" selftest --backend cuda > "$OUT/selftest.log" 2>&1; rc=$?
echo "selftest exit $rc: $(tail -1 "$OUT/selftest.log")"; [ $rc = 0 ] || status=1
timeout 120 "$B" selftest --backend cuda --faults --quick > "$OUT/faults.log" 2>&1; rc=$?
echo "faults exit $rc: $(tail -1 "$OUT/faults.log")"; [ $rc = 0 ] || status=1
python3 scripts/scanbench-data.py "$W/words.txt" 64 "$W" > /dev/null
python3 -c "
import random; r=random.Random(16); open('$W/bytes.bin','wb').write(bytes(r.choice(b'\x00\xff\na') for _ in range(32<<20)))"
compare() {  # NAME ARGS...: the scan on both backends, outputs compared
    local name=$1; shift
    "$B" scan --backend cuda --quiet "$@" > "$W/cuda.out" 2> "$W/cuda.err"; local rg=$?
    "$B" scan --backend cpu --quiet "$@" > "$W/cpu.out" 2> "$W/cpu.err"; local rc=$?
    if [ $rg = $rc ] && cmp -s "$W/cuda.out" "$W/cpu.out"; then
        echo "same: $name (exit $rg, $(wc -l < "$W/cuda.out") lines)"
    else
        echo "DIFFERENT: $name (exit cuda $rg, cpu $rc): $(head -c 300 "$W/cuda.err")"; status=1
    fi
}
for mode in "" -n --json -c -l; do
    compare "words, dense set ${mode:-plain}" $mode -f "$W/lits-dense.txt" "$W/words.txt"
    compare "bytes, NUL/0xFF literals, 64K chunks ${mode:-plain}" $mode --chunk-size 64K \
        -e '\x00\xff' -e '\xff\xff\x00' -e '\x00' -e '\xff\x00\xff\x00' -e 'a\n' -e '\x00\x00\x00\x00\x00' "$W/bytes.bin"
done
# A start that finds its kernel in the CUBIN cache (the selftest just filled it) loads no NVRTC
# (commit 2693ea5): ld.so names every library dlopen maps.
LD_DEBUG=files "$B" count --backend cuda "$W/words.txt" > /dev/null 2> "$W/ld.log"
if grep -q "libnvrtc" "$W/ld.log"; then echo "NVRTC LOADED on a cached start"; status=1
else echo "no NVRTC on a cached start ($(grep -c 'file=' "$W/ld.log") libraries mapped)"; fi
echo "status $status"; exit $status
