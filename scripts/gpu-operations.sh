#!/usr/bin/env bash
# Issue 20 on the GPU machine (about 2 minutes), with .device/sluice and the
# Examples' byte-histogram and block-hash built static and carried in .device/:
#   (cd Examples && swift build -c release --static-swift-stdlib --scratch-path ../.build-examples-release)
#   strip -o .device/byte-histogram .build-examples-release/release/byte-histogram (and block-hash)
# 1. `sluice selftest --backend cuda` (the user-operation checks compare both
#    examples with their Swift references on random chunks) and `--faults --quick`;
# 2. on a 4 GiB warm file of word text, best of 3 whole commands each:
#    `sluice count --backend cuda` and `--backend cpu`, `byte-histogram --backend
#    cuda` and `--backend cpu`, `block-hash --verify` (auto: CUDA here) and
#    `block-hash` alone; the histogram's CUDA output must equal its CPU output and
#    the histogram's newline and byte totals must equal `count`'s.
#   OUT=$OUT scripts/gpu-operations.sh
set -u
OUT=${OUT:-$PWD/gpu-out}; D=$PWD/.device; B=$D/sluice; W=/tmp/sluice-ops
mkdir -p "$OUT" "$W"; status=0
echo "binaries: sluice $(sha256sum "$B" | cut -c1-16), byte-histogram $(sha256sum "$D/byte-histogram" | cut -c1-16), block-hash $(sha256sum "$D/block-hash" | cut -c1-16)"
timeout 240 "$B" selftest --backend cuda > "$OUT/selftest.log" 2>&1; rc=$?
grep -iE "operation|passed" "$OUT/selftest.log" | cut -c1-300; echo "selftest exit $rc"; [ $rc = 0 ] || status=1
timeout 180 "$B" selftest --backend cuda --faults --quick > "$OUT/faults.log" 2>&1; rc=$?
tail -1 "$OUT/faults.log"; echo "faults exit $rc"; [ $rc = 0 ] || status=1
[ -e "$W/words.txt" ] || python3 scripts/scanbench-data.py "$W/words.txt" 4096 "$W" > /dev/null
cat "$W/words.txt" > /dev/null
python3 - "$B" "$D" "$W/words.txt" "$OUT" <<'PY' || status=1
import os, subprocess, sys, time
b, d, f, out = sys.argv[1:]
size = os.path.getsize(f)
rows = {
    "count cuda": [b, "count", "--server", "never", "--backend", "cuda", f],
    "count cpu": [b, "count", "--server", "never", "--backend", "cpu", f],
    "byte-histogram cuda": [d + "/byte-histogram", "--backend", "cuda", f],
    "byte-histogram cpu": [d + "/byte-histogram", "--backend", "cpu", f],
    "block-hash --verify (auto)": [d + "/block-hash", "--verify", f],
    "block-hash (auto)": [d + "/block-hash", f],
}
res = {}
for name, cmd in rows.items():
    best, text = None, None
    for _ in range(3):
        t = time.perf_counter(); r = subprocess.run(cmd, capture_output=True); s = time.perf_counter() - t
        if r.returncode != 0: print(f"{name}: exit {r.returncode}: {r.stderr.decode()[-400:]}"); sys.exit(1)
        # --verify's own line counts random chunks; the files' lines must not change.
        lines = b"".join(l for l in r.stdout.splitlines(True) if not l.startswith(b"verify:"))
        if text is not None and lines != text: print(f"{name}: output differs between runs"); sys.exit(1)
        text = lines; best = s if best is None else min(best, s)
        if r.stdout.startswith(b"verify:"): print(f"{name}: {r.stdout.splitlines()[0].decode()}")
    res[name] = (best, text)
    print(f"{name}: {best:.3f} s = {size / best / 1e9:.2f} GB/s: {text.decode().strip()[:120]}")
ok = res["byte-histogram cuda"][1] == res["byte-histogram cpu"][1]
counts = [int(x) for x in res["byte-histogram cpu"][1].decode().split(":")[-1].split()]
lines, nbytes = (int(x) for x in res["count cpu"][1].decode().split()[:2])
ok = ok and counts[10] == lines and sum(counts) == nbytes == size
ok = ok and res["count cuda"][1] == res["count cpu"][1]
hc, cc = res["byte-histogram cuda"][0], res["count cuda"][0]
ok = ok and res["block-hash (auto)"][1] == res["block-hash --verify (auto)"][1]
print(f"byte-histogram cuda / count cuda (speed): {cc / hc:.2f} (issue 20's target >= 0.8); "
      f"block-hash / count cuda: {cc / res['block-hash (auto)'][0]:.2f}; outputs {'agree' if ok else 'DISAGREE'}")
sys.exit(0 if ok else 1)
PY
echo "status $status"; exit $status
