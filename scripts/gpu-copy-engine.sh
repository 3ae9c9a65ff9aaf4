#!/usr/bin/env bash
# Issue 19's copy-engine ingest on the GPU machine, in one bounded run (about 4-5 minutes):
#   1. correctness: `sluice scan --backend cuda --ingest-copy engine` and `mapped` against
#      `--backend cpu`, byte for byte, in every output mode (plain, -n, --json, -c, -l), on
#      64 MiB of word text with the dense set and on 32 MiB of bytes from {0x00, 0xFF, '\n', 'a'}
#      with NUL/0xFF literals that are prefixes of each other at 64 KiB chunks (matches straddle
#      every chunk boundary), and on a tree of small and large files (packing on);
#   2. the A/B in the process: `bench scan` over a 4 GiB warm word text, 1,000 / 10,000 /
#      100,000 literals and the dense set, each CUDA scan with `--ingest-copy mapped` and then
#      `engine`, beside the raw io_uring read of the same stream;
#   3. the A/B as whole commands: `scan --count --backend cuda` with each path, alternated,
#      best of 3, at 1,000 and 10,000 literals over the 4 GiB file and at 1,000 over 1 GiB.
#   OUT=$OUT scripts/gpu-copy-engine.sh        # from the repository root, .device/sluice present
set -u
OUT=${OUT:-$PWD/gpu-out}; B=${SLUICE_BIN:-$PWD/.device/sluice}; W=/tmp/sluice-auto
mkdir -p "$OUT" "$W"; status=0
echo "binary $(sha256sum "$B" | cut -c1-16); $(nproc) cores; $(nvidia-smi -L 2>&1 | head -1)"
[ -e "$W/words.txt" ] || python3 scripts/scanbench-data.py "$W/words.txt" 4096 "$W" > /dev/null
[ -e "$W/words-1024.txt" ] || head -c $((1024 << 20)) "$W/words.txt" > "$W/words-1024.txt"
head -c $((64 << 20)) "$W/words.txt" > "$W/words-64.txt"
python3 -c "
import random; r=random.Random(16); open('$W/bytes.bin','wb').write(bytes(r.choice(b'\x00\xff\na') for _ in range(32<<20)))"
python3 - "$W" <<'PY'
import os, random, sys
w = sys.argv[1]; r = random.Random(19); text = open(os.path.join(w, "words.txt"), "rb").read(64 << 20)
os.makedirs(os.path.join(w, "mixed"), exist_ok=True)
for i in range(600):  # mostly small files, some of several chunks
    n = r.choice([0, 1, 5, 4095, 4096, 4097, r.randrange(1, 20000), r.randrange(1, 20000), 3 << 20, 9 << 20])
    s = r.randrange(0, len(text) - n) if n else 0
    open(os.path.join(w, "mixed", f"f{i:03}.txt"), "wb").write(text[s:s + n])
PY
compare() {  # NAME ARGS...: cuda with each copy path against cpu, outputs compared
    local name=$1; shift
    "$B" scan --backend cpu --quiet "$@" > "$W/cpu.out" 2> "$W/cpu.err"; local rc=$?
    for path in engine mapped; do
        "$B" scan --backend cuda --ingest-copy $path --quiet "$@" > "$W/cuda.out" 2> "$W/cuda.err"; local rg=$?
        if [ $rg = $rc ] && cmp -s "$W/cuda.out" "$W/cpu.out"; then
            echo "same: $name, $path (exit $rg, $(wc -l < "$W/cuda.out") lines)"
        else
            echo "DIFFERENT: $name, $path (exit cuda $rg, cpu $rc): $(head -c 300 "$W/cuda.err")"; status=1
        fi
    done
}
"$B" scan --backend cuda --ingest-copy engine --verbose --count -e zzz "$W/words-64.txt" 2>&1 | grep -i "ingest" | head -3
for mode in "" -n --json -c -l; do
    compare "words, dense set ${mode:-plain}" $mode -f "$W/lits-dense.txt" "$W/words-64.txt"
    compare "bytes, NUL/0xFF literals, 64K chunks ${mode:-plain}" $mode --chunk-size 64K \
        -e '\x00\xff' -e '\xff\xff\x00' -e '\x00' -e '\xff\x00\xff\x00' -e 'a\n' -e '\x00\x00\x00\x00\x00' "$W/bytes.bin"
done
compare "tree of 600 mixed files, 1,000 literals" -f "$W/lits-1000.txt" "$W/mixed"
compare "tree of 600 mixed files, 1,000 literals, -c" -c -f "$W/lits-1000.txt" "$W/mixed"
echo "correctness status $status"
cat "$W/words.txt" > /dev/null
timeout 300 "$B" bench scan "$W/words.txt" -f "$W/lits-1000.txt" -f "$W/lits-10000.txt" -f "$W/lits-100000.txt" \
    -f "$W/lits-dense.txt" --no-cpu --no-hash --repeats 2 --ingest-copy mapped --ingest-copy engine 2>&1 | tee "$OUT/bench-scan.txt"
python3 - "$B" "$W" <<'PY'
import subprocess, sys, time
b, w = sys.argv[1:]
rows = [("1,000, 4 GiB", "lits-1000.txt", "words.txt"), ("10,000, 4 GiB", "lits-10000.txt", "words.txt"),
        ("1,000, 1 GiB", "lits-1000.txt", "words-1024.txt")]
print("| whole command, scan --count --backend cuda | mapped s | engine s | engine / mapped speed |")
print("| --- | --- | --- | --- |")
for name, lits, f in rows:
    best, out = {}, {}
    for _ in range(3):
        for path in ["mapped", "engine"]:
            t = time.perf_counter()
            r = subprocess.run([b, "scan", "--server", "never", "--backend", "cuda", "--ingest-copy", path, "--count", "-f", f"{w}/{lits}", f"{w}/{f}"], capture_output=True)
            s = time.perf_counter() - t
            best[path] = min(best.get(path, 1e9), s); out[path] = r.stdout
    same = "same counts" if out["mapped"] == out["engine"] else "COUNTS DIFFER"
    print(f"| {name} | {best['mapped']:.3f} | {best['engine']:.3f} | {best['mapped'] / best['engine']:.2f} ({same}) |", flush=True)
PY
echo "status $status"; exit $status
