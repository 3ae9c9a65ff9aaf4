#!/usr/bin/env bash
# Issue 19's `auto` by cost on the GPU machine, in one bounded run (about 5-8 minutes):
#   1. `sluice bench calibrate --mib ${CAL_MIB:-2048}` writes this machine's cost model (~/.cache/sluice);
#      with CALIBRATE=0 the defaults are used instead; with CAL_DATA=matrix it calibrates on the
#      matrix's own kind of data (`--text` the 1 GiB word text, `--sparse` the 1,000 / 10,000 /
#      100,000-literal sets, `--dense` the dense set), as a user calibrates on data like theirs;
#   2. the matrix, whole commands, warm page cache, best of 2 each, `--backend cpu`, `cuda`
#      and `auto`: `scan --count -f LITS` for 1,000 / 10,000 / 100,000 literals and the dense
#      set (scripts/scanbench-data.py) over 64 MiB, 1 GiB and 4 GiB of word text; `count` and
#      `hash` over the same files; `scan --count` of 100 literals over a tree of 40,000 files
#      of 16 KiB. Each row gives auto / the faster backend (issue 19 asks for at most 1.10),
#      what auto ran (from --verbose), and whether the three outputs agree.
#   With HYPERSCAN=1 the commands find Hyperscan in .device/lib (scripts/build-hsbench.sh), so the
#   CPU backend scans with it where `--cpu-engine auto` picks it and `auto` weighs the model's
#   Hyperscan curve; without it (the GPU machine has no libhs) the built-in matcher and its curve.
#   With QUICK=1 only the 64 MiB and 1 GiB files (a 1 GiB text; no 4 GiB rows, no tree): about a minute.
#   OUT=$OUT scripts/gpu-auto.sh          # from the repository root, .device/sluice present
set -u
OUT=${OUT:-$PWD/gpu-out}; B=${SLUICE_BIN:-$PWD/.device/sluice}; W=/tmp/sluice-auto
if [ "${HYPERSCAN:-0}" = 1 ]; then export LD_LIBRARY_PATH=$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
mkdir -p "$OUT" "$W"
echo "binary $(sha256sum "$B" | cut -c1-16); $(nproc) cores; $(nvidia-smi -L 2>&1 | head -1)"
QUICK=${QUICK:-0}
[ -e "$W/words.txt" ] || python3 scripts/scanbench-data.py "$W/words.txt" $([ "$QUICK" = 1 ] && echo 1024 || echo 4096) "$W" > /dev/null
for mib in 64 1024; do [ -e "$W/words-$mib.txt" ] || head -c $((mib << 20)) "$W/words.txt" > "$W/words-$mib.txt"; done
if [ "$QUICK" != 1 ] && [ ! -d "$W/tree" ]; then
    python3 - "$W" <<'PY'
import os, sys
w = sys.argv[1]; text = open(os.path.join(w, "words.txt"), "rb").read(40000 * 16384)
for d in range(40):
    os.makedirs(os.path.join(w, "tree", f"d{d:02}"), exist_ok=True)
    for i in range(1000):
        k = d * 1000 + i
        open(os.path.join(w, "tree", f"d{d:02}", f"f{i:04}.txt"), "wb").write(text[k * 16384:(k + 1) * 16384])
PY
fi
head -100 "$W/lits-1000.txt" > "$W/lits-100.txt"
if [ "${CALIBRATE:-1}" = 1 ]; then
    DATA=()
    [ "${CAL_DATA:-}" = matrix ] && DATA=(--text "$W/words-1024.txt" --sparse "$W/lits-1000.txt" --sparse "$W/lits-10000.txt" \
        --sparse "$W/lits-100000.txt" --dense "$W/lits-dense.txt")
    timeout 300 "$B" bench calibrate --mib "${CAL_MIB:-2048}" --directory /tmp "${DATA[@]}" > "$OUT/cost-model.txt" 2> "$OUT/calibrate.log"
    echo "calibrate exit $?"; cat "$OUT/calibrate.log" | grep -v "written under"; cat "$OUT/cost-model.txt"
fi
"$B" doctor 2>&1 | sed -n '/^Cost model/,/^$/p' | head -24
python3 - "$B" "$W" "$OUT" "$QUICK" <<'PY'
import os, re, subprocess, sys, time, json
b, w, out, quick = sys.argv[1:]
rows = []
files = {"64M": f"{w}/words-64.txt", "1G": f"{w}/words-1024.txt"}
if quick != "1": files["4G"] = f"{w}/words.txt"
for size, f in files.items():
    for lits in ["1000", "10000", "100000", "dense"]:
        rows.append((f"scan {lits} {size}", ["scan", "--count", "-f", f"{w}/lits-{lits}.txt", f]))
    rows.append((f"count {size}", ["count", f]))
    rows.append((f"hash {size}", ["hash", f]))
if quick != "1": rows.append(("scan 100 tree-40000", ["scan", "--count", "-f", f"{w}/lits-100.txt", f"{w}/tree"]))
worst, results = 0.0, []
for name, args in rows:
    best, outputs = {}, {}
    for backend in ["cpu", "cuda", "auto"]:
        cmd = [b] + args[:1] + ["--server", "never", "--backend", backend] + args[1:]
        for _ in range(2):
            t = time.perf_counter(); r = subprocess.run(cmd, capture_output=True); s = time.perf_counter() - t
            if r.returncode not in (0, 1): print(f"{name} {backend}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
            best[backend] = min(best.get(backend, 1e9), s); outputs[backend] = r.stdout
    v = subprocess.run([b] + args[:1] + ["--server", "never", "--backend", "auto", "--verbose"] + args[1:],
                       capture_output=True, text=True).stderr
    m = re.search(r"device 0: backend (\w+)", v)
    chosen = m.group(1) if m else "?"
    ratio = best["auto"] / min(best["cpu"], best["cuda"])
    worst = max(worst, ratio)
    agree = len(set(outputs.values())) == 1
    results.append(dict(row=name, cpu=round(best["cpu"], 3), cuda=round(best["cuda"], 3), auto=round(best["auto"], 3),
                        ratio=round(ratio, 3), auto_ran=chosen, agree=agree))
    print(f"| {name} | {best['cpu']:.3f} | {best['cuda']:.3f} | {best['auto']:.3f} ({chosen}) | {ratio:.2f} | {'yes' if agree else 'NO'} |", flush=True)
json.dump(results, open(f"{out}/auto.json", "w"), indent=1)
print(f"worst auto / faster: {worst:.2f} (issue 19: at most 1.10)")
PY
