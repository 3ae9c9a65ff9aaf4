#!/usr/bin/env bash
# Issue #9's scan benchmarks, in one bounded run on the GPU machine: every row
# measures, in the same run and on the same data, Sluice GPU, Sluice CPU with
# the Hyperscan engine and with the built-in one, Hyperscan alone on the data
# held in memory (.device/hsbench, 16 threads) and ripgrep (-j16).
#
#   OUT=$OUT scripts/gpu-scanbench.sh          # from the repository root, with .device/ present
#
# Expected run time about 3-4 minutes on the H100 machine (16 cores); a
# deadline (SLUICE_SCANBENCH_DEADLINE, default 540 s) skips what is left,
# and says so, rather than run past the device tool's 10 minutes.
#
# Needs in .device/: sluice (swift build -c release --static-swift-stdlib
# --scratch-path .build-release), rg (Debian's ripgrep, see gpu-run.sh),
# hsbench and lib/libhs.so.5 (scripts/build-hsbench.sh). python3 is on the
# machine.
#
# Steps:
#  1. machine facts; `sluice doctor` with LD_LIBRARY_PATH=.device/lib (Hyperscan
#     must show as available); `sluice selftest --backend cuda --quick` (its scan
#     check includes a 100,000-literal set);
#  2. data: scripts/scanbench-data.py writes a 4 GiB word text and the literal
#     sets (sparse: 1,000 / 10,000 / 100,000 random 12-byte literals, 10 % of them
#     rare tokens of the text; dense: the 2,000 most common words + 8,000 random
#     literals, about a billion matches); the file is read once to warm the cache;
#  3. per-stage evidence: `dd bs=4M` of the warm file (one reader), and the fixed
#     cost of a CUDA process (`sluice count` and `sluice scan --count` on 5 bytes);
#  4. hsbench -t 16 -r 2 over every set (the file in memory; load and compile not timed);
#  5. per set, whole processes timed from outside, GB/s = file bytes / wall time:
#     `sluice scan --backend cuda --count` (best of 2; the first with --verbose
#     --stats), `sluice scan --backend cpu --cpu-engine hyperscan --count` (best of
#     2, LD_LIBRARY_PATH=.device/lib; --verbose gives its Hyperscan compile time),
#     `sluice scan --backend cpu --cpu-engine builtin --count` (once), and
#     `rg -F -c -j16 --no-config` over 16 line-aligned pieces of a prefix of the
#     file (1 GiB; 256 MiB at 100,000 literals, where ripgrep reads about
#     0.01 GB/s per thread) so that ripgrep has 16 files for its 16 threads; on
#     the same pieces `sluice scan --backend cpu --count` gives the count rg must match;
#  6. `sluice bench scan FILE -f LITS... --no-cpu --no-hash --repeats 2`: the GPU
#     rate in the process (engine set-up and table install excluded), beside the
#     raw io_uring read of the same stream, and with 1 literal;
#  7. the tables (markdown, for benchmarks/RESULTS.md): rates, ratios to
#     hsbench-16, the issue's targets with verdicts, and the stage evidence.
#
# Every run's match count must agree: sluice cuda = cpu hyperscan = cpu builtin
# = hsbench (= bench scan) on the file, and rg's matching lines = sluice on rg's
# pieces for the sparse sets (one rare token per line, so lines = matches; the
# dense set has many matches per line and rg counts lines: shown, not compared).
# Exit 1 on any mismatch, failed or skipped command; 0 otherwise.
#
# Output: $OUT (default ./scanbench-out): run.log (everything, each command
# with its figure), results.md (the tables), bench-scan.json, hsbench.txt.
# Overrides for trying it elsewhere: SLUICE_SIZE_MIB, SLUICE_RG_PREFIX_MIB,
# SLUICE_RG_PREFIX_100K_MIB, SLUICE_THREADS (hsbench threads, default 16),
# SLUICE_SCANBENCH_NO_CUDA=1 (no GPU: CUDA columns empty, bench scan on the CPU).
set -u
START=$(date +%s)
DEADLINE=$((START + ${SLUICE_SCANBENCH_DEADLINE:-540}))
ROOT=$PWD
OUT=${OUT:-$ROOT/scanbench-out}
BIN=${SLUICE_BIN:-$ROOT/.device/sluice}
HSBENCH=${HSBENCH:-$ROOT/.device/hsbench}
HSLIB=${HSLIB:-$ROOT/.device/lib}
RG=${SLUICE_RG:-$ROOT/.device/rg}
FILE=${SLUICE_BENCH_FILE:-/tmp/sluice-scanbench.txt}
WORK=${SLUICE_WORK:-/tmp/sluice-scanbench}
SIZE_MIB=${SLUICE_SIZE_MIB:-4096}
RG_PREFIX_MIB=${SLUICE_RG_PREFIX_MIB:-1024}
RG_PREFIX_100K_MIB=${SLUICE_RG_PREFIX_100K_MIB:-256}
THREADS=${SLUICE_THREADS:-16}
NO_CUDA=${SLUICE_SCANBENCH_NO_CUDA:-0}
SETS="1000 10000 100000 dense"
mkdir -p "$OUT"
rm -rf "$WORK"
mkdir -p "$WORK"
LOG=$OUT/run.log
REC=$WORK/records.txt
: > "$LOG"
: > "$REC"
failures=()

say() { echo "$*" | tee -a "$LOG"; }
fail() { failures+=("$*"); say "FAILED: $*"; }
record() { echo "$*" >> "$REC"; }
seconds_since() { awk "BEGIN{printf \"%.3f\", $(date +%s.%N) - $1}"; }
# rc_of N: the run's exit status, with "nothing matched" (exit 1 and no
# count, as sluice and rg both say it) taken as success.
rc_of() { if [ "$T_RC" -eq 1 ] && [ "$1" = 0 ]; then echo 0; else echo "$T_RC"; fi; }
# count_sum: the sum of the N in `PATH:N` lines on stdin (0 for none).
count_sum() { awk -F: '{ s += $NF } END { printf "%d\n", s }'; }

# timed NAME LIMIT CMD...: runs CMD under min(LIMIT, time to the deadline),
# stdout to $WORK/NAME.out, stderr to $WORK/NAME.err; logs the command,
# seconds, exit status and output; sets T_S and T_RC. Skipped (T_RC=125)
# when the deadline is near.
timed() {
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - $(date +%s)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        T_S=""
        T_RC=125
        fail "$name: skipped, the run's deadline is reached"
        return 0
    fi
    local start
    start=$(date +%s.%N)
    timeout -k 5 "$limit" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
    T_RC=$?
    T_S=$(seconds_since "$start")
    say "\$ $*"
    say "  [$name] $T_S s, exit $T_RC; stdout: $(head -c 400 "$WORK/$name.out" | tr '\n' ' ')"
    if [ -s "$WORK/$name.err" ]; then
        sed 's/^/  stderr: /' "$WORK/$name.err" | tail -n 25 >> "$LOG"
    fi
    return 0
}

say "gpu-scanbench on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ); file $SIZE_MIB MiB; hsbench threads $THREADS"
for f in "$BIN" "$HSBENCH" "$RG" "$HSLIB/libhs.so.5"; do
    [ -e "$f" ] || { say "missing $f: see the top of this script (scripts/build-hsbench.sh, gpu-run.sh)"; exit 1; }
done
{
    nvidia-smi -L 2>&1 || true
    nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv 2>&1 || true
    echo "kernel $(uname -r); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo)"
    echo "cpu flags: $(grep -m1 -o -w 'avx2\|avx512bw\|avx512vbmi' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    free -g | head -2
    echo "sluice: $(ls -l "$BIN" | awk '{print $5}') bytes, sha256 $(sha256sum "$BIN" | cut -c1-16)"
    echo "hsbench: sha256 $(sha256sum "$HSBENCH" | cut -c1-16); libhs.so.5 sha256 $(sha256sum "$HSLIB/libhs.so.5" | cut -c1-16)"
    "$RG" --version | head -1
} 2>&1 | tee -a "$LOG"

# --- 1. doctor, self-test ------------------------------------------------------------------
timed doctor 60 env LD_LIBRARY_PATH="$HSLIB" "$BIN" doctor
say "  doctor, scan engine: $(grep -i 'hyperscan\|scan engine' "$WORK/doctor.out" | head -3 | tr '\n' ' ')"
grep -q "Hyperscan.*($HSLIB/libhs.so.5)" "$WORK/doctor.out" || fail "doctor with LD_LIBRARY_PATH=$HSLIB does not show Hyperscan from $HSLIB"
if [ "$NO_CUDA" != 1 ]; then
    timed selftest 180 "$BIN" selftest --backend cuda --quick
    cat "$WORK/selftest.out" >> "$LOG"
    [ "$T_RC" -eq 0 ] || fail "sluice selftest --backend cuda --quick (exit $T_RC)"
fi

# --- 2. data ---------------------------------------------------------------------------------
timed generate 120 python3 "$ROOT/scripts/scanbench-data.py" "$FILE" "$SIZE_MIB" "$WORK"
cat "$WORK/generate.out" >> "$LOG"
[ "$T_RC" -eq 0 ] || { fail "data generation"; exit 1; }
FILE_BYTES=$(stat -c %s "$FILE")
record "file bytes=$FILE_BYTES"
# Written back before anything is timed (no writeback beside the runs), then warm.
sync
cat "$FILE" > /dev/null

# --- 3. stage evidence: warm read, fixed cost ---------------------------------------------------
timed dd-warm 60 dd if="$FILE" of=/dev/null bs=4M
record "dd s=$T_S rc=$T_RC"
printf 'tiny\n' > "$WORK/tiny.txt"
if [ "$NO_CUDA" != 1 ]; then
    timed tiny-count 60 "$BIN" count --backend cuda --quiet "$WORK/tiny.txt"
    record "tiny-count s=$T_S rc=$T_RC"
    timed tiny-scan 60 "$BIN" scan --backend cuda --count --quiet -e tiny "$WORK/tiny.txt"
    record "tiny-scan s=$T_S rc=$T_RC"
fi

# --- 4. hsbench: Hyperscan alone, in memory ------------------------------------------------------
hs_args=()
for s in $SETS; do hs_args+=(-f "$WORK/lits-$s.txt"); done
timed hsbench 240 "$HSBENCH" -t "$THREADS" -r 2 "${hs_args[@]}" "$FILE"
cp "$WORK/hsbench.out" "$OUT/hsbench.txt"
[ "$T_RC" -eq 0 ] || fail "hsbench (exit $T_RC)"
for s in $SETS; do
    line=$(grep " set=$WORK/lits-$s.txt " "$WORK/hsbench.out")
    record "hsbench set=$s $(echo "$line" | sed 's/^hsbench set=[^ ]* //')"
done

# --- 5. per set: whole processes ----------------------------------------------------------------------
# make_pieces MIB: 16 line-aligned pieces of the file's first MIB MiB, in $WORK/rg-MIB/.
make_pieces() {
    local dir=$WORK/rg-$1
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        head -c $(($1 << 20)) "$FILE" > "$WORK/prefix"
        split -n l/16 -d "$WORK/prefix" "$dir/piece-"
        rm -f "$WORK/prefix"
        cat "$dir"/piece-* > /dev/null
    fi
    echo "$dir"
}

for s in $SETS; do
    lits=$WORK/lits-$s.txt
    say "=== set $s ($(wc -l < "$lits") literals)"
    if [ "$NO_CUDA" != 1 ]; then
        best=""
        for r in 1 2; do
            extra=()
            [ "$r" = 1 ] && extra=(--verbose --stats)
            timed "cuda-$s-$r" 120 "$BIN" scan --backend cuda --count --quiet "${extra[@]}" -f "$lits" "$FILE"
            n=$(count_sum < "$WORK/cuda-$s-$r.out")
            record "run set=$s tool=cuda repeat=$r s=$T_S rc=$(rc_of "$n") matches=$n"
        done
    fi
    for r in 1 2; do
        # No database cache: every repeat compiles, so compile= is Hyperscan's compile each time.
        timed "cpuhs-$s-$r" 150 env LD_LIBRARY_PATH="$HSLIB" SLUICE_HYPERSCAN_CACHE=off "$BIN" scan --backend cpu --cpu-engine hyperscan --count --quiet --verbose --stats -f "$lits" "$FILE"
        n=$(count_sum < "$WORK/cpuhs-$s-$r.out")
        compile=$(sed -n 's/.*literals compiled in \([0-9.]*\) s.*/\1/p' "$WORK/cpuhs-$s-$r.err" | head -1)
        record "run set=$s tool=cpuhs repeat=$r s=$T_S rc=$(rc_of "$n") matches=$n compile=${compile:-}"
    done
    timed "builtin-$s" 150 "$BIN" scan --backend cpu --cpu-engine builtin --count --quiet --stats -f "$lits" "$FILE"
    n=$(count_sum < "$WORK/builtin-$s.out")
    record "run set=$s tool=builtin repeat=1 s=$T_S rc=$(rc_of "$n") matches=$n"

    mib=$RG_PREFIX_MIB
    [ "$s" = 100000 ] && mib=$RG_PREFIX_100K_MIB
    dir=$(make_pieces "$mib")
    pbytes=$(cat "$dir"/piece-* | wc -c)
    timed "rg-$s" 150 "$RG" --no-config -F -c -j16 -f "$lits" "$dir"/piece-00 "$dir"/piece-01 "$dir"/piece-02 "$dir"/piece-03 \
        "$dir"/piece-04 "$dir"/piece-05 "$dir"/piece-06 "$dir"/piece-07 "$dir"/piece-08 "$dir"/piece-09 \
        "$dir"/piece-10 "$dir"/piece-11 "$dir"/piece-12 "$dir"/piece-13 "$dir"/piece-14 "$dir"/piece-15
    n=$(count_sum < "$WORK/rg-$s.out")
    record "run set=$s tool=rg repeat=1 s=$T_S rc=$(rc_of "$n") matches=$n bytes=$pbytes prefix_mib=$mib"
    timed "pieces-$s" 150 "$BIN" scan --backend cpu --cpu-engine builtin --count --quiet -f "$lits" "$dir"/piece-*
    n=$(count_sum < "$WORK/pieces-$s.out")
    record "run set=$s tool=pieces repeat=1 s=$T_S rc=$(rc_of "$n") matches=$n bytes=$pbytes"
done

# --- 6. in the process: sluice bench scan ------------------------------------------------------------
bs_args=(-f "$WORK/lits-1.txt")
for s in $SETS; do bs_args+=(-f "$WORK/lits-$s.txt"); done
if [ "$NO_CUDA" != 1 ]; then
    timed bench-scan 200 "$BIN" bench scan "$FILE" "${bs_args[@]}" --repeats 2 --no-cpu --no-hash --json --quiet
else
    timed bench-scan 200 "$BIN" bench scan "$FILE" "${bs_args[@]}" --repeats 2 --no-hash --json --quiet
fi
cp "$WORK/bench-scan.out" "$OUT/bench-scan.json"
cat "$WORK/bench-scan.err" >> "$LOG"
record "bench-scan rc=$T_RC"

# --- 7. tables, agreement, verdicts ---------------------------------------------------------------------
python3 - "$REC" "$OUT/bench-scan.json" "$SETS" "$NO_CUDA" "$THREADS" > "$OUT/results.md" 2> "$WORK/render.err" <<'PY'
import json, sys
rec_path, bench_path, sets, no_cuda, threads = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4] == "1", sys.argv[5]
recs = []
for line in open(rec_path):
    kind, *fields = line.split()
    d = dict(f.split("=", 1) for f in fields if "=" in f)
    d["kind"] = kind
    recs.append(d)
size = int(next(r["bytes"] for r in recs if r["kind"] == "file"))
problems = []

def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None

def runs(s, tool):
    return [r for r in recs if r["kind"] == "run" and r["set"] == s and r["tool"] == tool]

def best(s, tool):
    ok = [r for r in runs(s, tool) if r["rc"] == "0" and num(r["s"])]
    for r in runs(s, tool):
        if r["rc"] != "0":
            problems.append(f"set {s}: {tool} run {r['repeat']} exited {r['rc']}")
    return min(ok, key=lambda r: float(r["s"])) if ok else None

def gbps(nbytes, seconds):
    return nbytes / seconds / 1e9 if seconds else None

def f(x, d=3):
    return "-" if x is None else f"{x:.{d}f}"

def ratio(a, b):
    return a / b if a is not None and b else None

hs = {r["set"]: r for r in recs if r["kind"] == "hsbench"}
HS = f"hsbench-{threads}"
# Without a GPU (SLUICE_SCANBENCH_NO_CUDA=1, for trying the script) bench scan measures the CPU backend.
INPROC = "cpu backend (no GPU)" if no_cuda else "GPU"
bench = {}
try:
    report = json.load(open(bench_path))
    rows = report["rows"]
    raw = next((r for r in rows if r["method"].startswith("io_uring read only")), None)
    bench["raw"] = raw["best GB/s"] if raw else None
    scan_rows = [r for r in rows if r["method"].startswith("sluice scan") and (no_cuda or "cuda" in r["method"])]
    names = ["1"] + sets
    for name, row in zip(names, scan_rows):
        bench[name] = (row["best GB/s"], int(row["result"].split()[0]))
    bench["facts"] = report.get("facts", {})
except Exception as e:  # noqa: BLE001 - any failure to read it is reported
    problems.append(f"sluice bench scan: no usable JSON ({e})")

rows = {}
for s in sets:
    h = hs.get(s, {})
    row = {"literals": h.get("literals", "?"), "hs": num(h.get("gbps")), "hs_matches": h.get("matches")}
    for tool in ("cuda", "cpuhs", "builtin", "rg", "pieces"):
        b = best(s, tool)
        row[tool] = b
    row["cuda_gbps"] = gbps(size, num(row["cuda"]["s"])) if row["cuda"] else None
    row["cpuhs_gbps"] = gbps(size, num(row["cpuhs"]["s"])) if row["cpuhs"] else None
    c = num(row["cpuhs"].get("compile")) if row["cpuhs"] else None
    row["cpuhs_compile"] = c
    row["cpuhs_nocompile_gbps"] = gbps(size, num(row["cpuhs"]["s"]) - c) if row["cpuhs"] and c is not None else None
    row["builtin_gbps"] = gbps(size, num(row["builtin"]["s"])) if row["builtin"] else None
    row["rg_gbps"] = gbps(int(row["rg"]["bytes"]), num(row["rg"]["s"])) if row["rg"] else None
    row["bench"] = bench.get(s, (None, None))[0] if s in bench else None
    # Agreement on the file.
    counts = {"hsbench": row["hs_matches"]}
    for tool in ("cuda", "cpuhs", "builtin"):
        for r in runs(s, tool):
            if r["rc"] == "0":
                counts[f"{tool}#{r['repeat']}"] = r["matches"]
    if s in bench:
        counts["bench scan"] = str(bench[s][1])
    if no_cuda:
        counts = {k: v for k, v in counts.items() if not k.startswith("cuda")}
    values = set(v for v in counts.values() if v is not None)
    row["matches"] = row["hs_matches"]
    if len(values) != 1 or None in counts.values():
        problems.append(f"set {s}: match counts differ on the file: {counts}")
    # rg on its pieces against sluice on the same pieces (sparse sets only).
    if s != "dense":
        if not row["rg"] or not row["pieces"] or row["rg"]["matches"] != row["pieces"]["matches"]:
            problems.append(f"set {s}: rg found {row['rg'] and row['rg']['matches']} matching lines on its pieces, "
                            f"sluice {row['pieces'] and row['pieces']['matches']} matches")
    rows[s] = row

out = []
p = out.append
mib = lambda b: f"{int(b) / (1 << 20):.0f} MiB"
p(f"File: {size} bytes ({size / (1 << 30):.2f} GiB) of word text (scripts/scanbench-data.py), warm in the page cache. "
  f"GB/s = bytes / wall time of the whole process, except where marked; hsbench = Hyperscan {hs[sets[0]].get('hyperscan', '?').replace('_', ' ') if sets[0] in hs else '?'} "
  f"with {threads} threads on the file held in memory (compile and load not timed)."
  + (" No GPU in this run: the in-process column is the CPU backend's." if no_cuda else ""))
p("")
p(f"| set | literals | matches (file) | sluice cuda | sluice cuda, in process (bench scan) | sluice cpu hyperscan | same, less compile | sluice cpu builtin | {HS}, memory | rg -j16 (bytes read) |")
p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for s in sets:
    r = rows[s]
    rgcell = "-"
    if r["rg"]:
        rgcell = f"{f(r['rg_gbps'])} ({mib(r['rg']['bytes'])} prefix, 16 pieces" + (
            f"; {int(r['rg']['matches']):,} matching lines, not comparable)" if s == "dense" else ")")
    name = "dense (2,000 words + 8,000 random)" if s == "dense" else f"sparse {int(s):,}"
    m = f"{int(r['matches']):,}" if r["matches"] else "?"
    comp = f" (compile {r['cpuhs_compile']:.2f} s)" if r["cpuhs_compile"] is not None else ""
    p(f"| {name} | {r['literals']} | {m} | {f(r['cuda_gbps'])} | {f(r['bench'])} | {f(r['cpuhs_gbps'])} | {f(r['cpuhs_nocompile_gbps'])}{comp} | "
      f"{f(r['builtin_gbps'])} | {f(r['hs'])} | {rgcell} |")
p("")
p(f"Ratios to {HS} (same run, same file):")
p("")
p(f"| set | cuda / {HS} | cuda in process / {HS} | cpu hyperscan / {HS} | cpu hyperscan less compile / {HS} | cpu builtin / {HS} | rg -j16 / {HS} |")
p("| --- | --- | --- | --- | --- | --- | --- |")
for s in sets:
    r = rows[s]
    cells = [ratio(r[k], r["hs"]) for k in ("cuda_gbps", "bench", "cpuhs_gbps", "cpuhs_nocompile_gbps", "builtin_gbps", "rg_gbps")]
    p(f"| {s} | " + " | ".join(f(c, 2) + ("x" if c is not None else "") for c in cells) + " |")
p("")
p("Targets (issue #9):")
p("")
p("| target | figure | verdict |")
p("| --- | --- | --- |")
goals = {"1000": 1.0, "10000": 2.5, "100000": 5.0, "dense": 20.0}
for s, goal in goals.items():
    if s not in rows:
        continue
    r = rows[s]
    a, b = ratio(r["cuda_gbps"], r["hs"]), ratio(r["bench"], r["hs"])
    verdict = "-" if a is None else ("**met**" if a >= goal else "**missed**") + (
        "" if b is None else f" (in process: {'met' if b >= goal else 'missed'})")
    p(f"| GPU end to end >= {goal:g}x {HS}, {s} | {f(r['cuda_gbps'])} vs {f(r['hs'])} GB/s = {f(a, 2)}x (in process {f(b, 2)}x) | {verdict} |")
for s in sets:
    r = rows[s]
    a, b = ratio(r["cpuhs_gbps"], r["hs"]), ratio(r["cpuhs_nocompile_gbps"], r["hs"])
    verdict = "-" if a is None else ("**met**" if a >= 0.9 else "**missed**") + (
        "" if b is None else f" (less compile: {'met' if b >= 0.9 else 'missed'})")
    p(f"| CPU hyperscan within 10% of {HS}, {s} | {f(r['cpuhs_gbps'])} vs {f(r['hs'])} GB/s = {f(a, 2)}x (less compile {f(b, 2)}x) | {verdict} |")
p("")
p("Stage evidence (same run):")
p("")
dd = next((r for r in recs if r["kind"] == "dd"), None)
p(f"- reading: `dd if=FILE of=/dev/null bs=4M`, warm, one reader: {f(gbps(size, num(dd['s'])) if dd and dd['rc'] == '0' else None)} GB/s; "
  f"`bench scan` io_uring read only (same stream as the scans, no work): {f(bench.get('raw'))} GB/s")
if "1" in bench:
    p(f"- read + PCIe + the cheapest matching: {INPROC} scan with 1 literal in the process: {f(bench['1'][0])} GB/s "
      f"({f(ratio(bench['1'][0], bench.get('raw')), 2)}x of the raw read)")
for s in sets:
    if s in bench and "1" in bench:
        p(f"- matching, {s}: in process {f(bench[s][0])} GB/s = {f(ratio(bench[s][0], bench['1'][0]), 2)}x of the 1-literal rate")
if "dense" in bench and "10000" in bench:
    p(f"- match output (--count: one counter per slot): dense set (10,000 literals, {int(bench['dense'][1]):,} matches) "
      f"{f(bench['dense'][0])} GB/s vs sparse 10,000 ({int(bench['10000'][1]):,} matches) {f(bench['10000'][0])} GB/s in the process")
tiny = {r["kind"]: r for r in recs if r["kind"].startswith("tiny")}
if tiny:
    p(f"- fixed cost of a CUDA process: `sluice count --backend cuda` on 5 bytes {tiny.get('tiny-count', {}).get('s', '-')} s, "
      f"`sluice scan --backend cuda --count -e tiny` on 5 bytes {tiny.get('tiny-scan', {}).get('s', '-')} s")
for s in sets:
    r = rows[s]
    if r["cuda"] and r["bench"]:
        whole = float(r["cuda"]["s"])
        p(f"- {s}: sluice cuda process {whole:.3f} s, of which scanning in the process would take {size / r['bench'] / 1e9:.3f} s")
for s in sets:
    h = hs.get(s, {})
    r = rows[s]
    if h:
        p(f"- hyperscan compile, {s}: hsbench {h.get('compile_s')} s, sluice cpu {r['cpuhs_compile'] if r['cpuhs_compile'] is not None else '-'} s; "
          f"hsbench threads of the best run {h.get('thread_s_min')}-{h.get('thread_s_max')} s")
p("")
p("Commands (LITS = lits-1000.txt, lits-10000.txt, lits-100000.txt, lits-dense.txt from scripts/scanbench-data.py; "
  "each timed from outside, GB/s = bytes / wall time):")
p("")
p("```sh")
p("sluice scan --backend cuda --count --quiet -f LITS FILE                     # best of 2 (the first with --verbose --stats)")
p("LD_LIBRARY_PATH=.device/lib sluice scan --backend cpu --cpu-engine hyperscan --count --quiet --verbose --stats -f LITS FILE   # best of 2")
p("sluice scan --backend cpu --cpu-engine builtin --count --quiet --stats -f LITS FILE")
p(f"hsbench -t {threads} -r 2 -f LITS... FILE                                    # in memory; best of 2")
p("rg --no-config -F -c -j16 -f LITS PIECES     # 16 pieces (split -n l/16) of the first 1 GiB (100,000: 256 MiB)")
p("sluice scan --backend cpu --cpu-engine builtin --count -f LITS PIECES    # the count rg must match (sparse sets)")
p("sluice bench scan FILE -f lits-1.txt -f LITS... --repeats 2 --no-cpu --no-hash --json")
p("dd if=FILE of=/dev/null bs=4M ; sluice count|scan --backend cuda on a 5-byte file")
p("```")
p("")
p("Agreement: " + ("every count agreed (sluice cuda = cpu hyperscan = cpu builtin = hsbench = bench scan on the file; "
                    "rg's matching lines = sluice's matches on rg's pieces for the sparse sets)." if not problems else "FAILED"))
for x in problems:
    p(f"- {x}")
print("\n".join(out))
sys.exit(1 if problems else 0)
PY
render=$?
cat "$OUT/results.md" | tee -a "$LOG"
[ -s "$WORK/render.err" ] && cat "$WORK/render.err" | tee -a "$LOG"
[ "$render" -eq 0 ] || fail "results: counts disagree or runs failed (see above)"
[ -s "$OUT/results.md" ] || fail "results: no table was written"

rm -rf "$WORK"
rm -f "$FILE"
say "=== elapsed $(( $(date +%s) - START )) s"
if [ ${#failures[@]} -eq 0 ]; then
    say "=== gpu-scanbench: everything ran and every count agreed"
    exit 0
fi
say "=== gpu-scanbench: FAILED: ${failures[*]}"
exit 1
