#!/usr/bin/env bash
# Runs Sluice's GPU checks and benchmarks on the GPU machine, which has no
# Swift: it uses the static binary built elsewhere and carried in .device/.
#
#   scripts/gpu-run.sh [smoke|full]
#
# 1. machine facts (nvidia-smi -L, driver, kernel, CPU);
# 2. `sluice selftest --backend cuda` (every opcode, CUDA backend vs the CPU backend on fresh random inputs);
# 3. a multi-GiB text file (4 GiB full, 512 MiB smoke), generated with python3;
#    `sluice count --backend cuda`, `--backend cpu` and `wc -c -l` must agree;
# 4. `sluice bench dispatch`, `bench slots`, `bench count FILE` (+ `wc -l` timing);
# 5. scan: 1, 100, 1,000 and 10,000 12-byte literals cut from the file (on a grid, so no two
#    overlap and no line holds two): `sluice scan --count` with the CUDA and the CPU backend on
#    the file, ripgrep (`rg -F -c`, -j1 and -j16, carried in .device/rg) on the file for 1 and 100
#    literals and on its first 256 MiB (smoke: 64 MiB) for 1,000 and 10,000 (with sluice on
#    the same prefix), counts compared; then cold: the GPU scan through the page cache and with
#    --direct, and `dd iflag=direct` as the raw O_DIRECT read rate; `sluice bench scan` for the
#    in-process rates (engine set-up excluded) of scan and hash, CUDA and CPU, beside the raw read;
# 6. hash: `sluice hash` with the CUDA and the CPU backend and a single-threaded reference
#    (python3 with the `crc32c` wheel carried in .device/wheels), warm and cold; values compared.
#
# Logs go to $OUT (default ./gpu-out): run.log (everything), selftest.log,
# dispatch.json, slots.json, count.json, scanbench.json (`sluice bench scan`:
# in-process scan and hash throughput), scan.log, hash.log. Exit
# status: 0 when the self-test passed, every comparison agreed and every
# benchmark ran; 1 otherwise.
#
# Build and carry the binary (and ripgrep, and the wheel) from the development machine:
#   swift build -c release --static-swift-stdlib --scratch-path .build-release
#   mkdir -p .device && cp .build-release/release/sluice .device/sluice
#   apt-get download ripgrep && dpkg -x ripgrep_*.deb /tmp/rg && cp /tmp/rg/usr/bin/rg .device/rg
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux1_x86_64 -d .device/wheels crc32c==2.9.post0
set -u
MODE=${1:-full}
OUT=${OUT:-$PWD/gpu-out}
BIN=${SLUICE_BIN:-$PWD/.device/sluice}
FILE=${SLUICE_BENCH_FILE:-/tmp/sluice-bench.txt}
PREFIX=/tmp/sluice-prefix.txt
RG=${SLUICE_RG:-$PWD/.device/rg}
WHEELS=$PWD/.device/wheels
WORK=/tmp/sluice-work
mkdir -p "$OUT" "$WORK"
LOG="$OUT/run.log"
: > "$LOG"

case "$MODE" in
smoke) SIZE_MIB=512;  PREFIX_MIB=64;  ITERATIONS=20000;  SLOT_SECONDS=0.5; REPEATS=1; SCAN_REPEATS=1; COLD="";       SELFTEST_ARGS="--quick"; LIMIT=100 ;;
full)  SIZE_MIB=4096; PREFIX_MIB=256; ITERATIONS=100000; SLOT_SECONDS=2;   REPEATS=3; SCAN_REPEATS=2; COLD="--cold"; SELFTEST_ARGS="";        LIMIT=240 ;;
*) echo "usage: $0 [smoke|full]" >&2; exit 2 ;;
esac

# Overrides for trying the script elsewhere (sizes in MiB).
SIZE_MIB=${SLUICE_SIZE_MIB:-$SIZE_MIB}
PREFIX_MIB=${SLUICE_PREFIX_MIB:-$PREFIX_MIB}

failures=()
say() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_SECONDS COMMAND...: runs it under a time limit, logs its
# output and how long it took; records a failure on a non-zero exit.
step() {
    local name=$1 limit=$2
    shift 2
    say "=== $name: $*"
    local start end rc
    start=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    end=$(date +%s.%N)
    say "=== $name: exit $rc after $(awk "BEGIN{printf \"%.2f\", $end - $start}") s"
    [ "$rc" -eq 0 ] || failures+=("$name (exit $rc)")
    return "$rc"
}

say "sluice gpu-run ($MODE) on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
[ -x "$BIN" ] || { say "no executable at $BIN; build and carry it first (see the top of this script)"; exit 1; }
{
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current,memory.total --format=csv
    echo "kernel $(uname -r); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo)"
    free -g | head -2
    echo "io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo '?'); memlock $(ulimit -l)"
    echo "binary: $(ls -l "$BIN" | awk '{print $5}') bytes, sha256 $(sha256sum "$BIN" | cut -c1-16)"
} 2>&1 | tee -a "$LOG"

# --- 1. self-test ---------------------------------------------------------------
step "selftest" "$LIMIT" bash -c "set -o pipefail; '$BIN' selftest --backend cuda $SELFTEST_ARGS | tee '$OUT/selftest.log'"

# --- 2. a multi-GiB text file and count agreement --------------------------------
say "=== generating $SIZE_MIB MiB of text at $FILE"
gen_start=$(date +%s.%N)
python3 "$(dirname "$0")/gen-text.py" "$FILE" "$SIZE_MIB" 2>&1 | tee -a "$LOG"
gen_end=$(date +%s.%N)
say "=== generated in $(awk "BEGIN{printf \"%.2f\", $gen_end - $gen_start}") s"

{
    TIMEFORMAT='%R s'
    echo "--- sluice count --backend cuda -v"
    time cuda_out=$(timeout -k 10 "$LIMIT" "$BIN" count --backend cuda --verbose --quiet "$FILE")
    echo "$cuda_out"
    echo "--- sluice count --backend cpu"
    time cpu_out=$(timeout -k 10 "$LIMIT" "$BIN" count --backend cpu --quiet "$FILE")
    echo "$cpu_out"
    echo "--- wc -c -l"
    time wc_out=$(wc -c -l "$FILE")
    echo "$wc_out"
    echo "--- wc -l (warm)"
    time wc -l "$FILE"
    read -r cuda_lines cuda_bytes _ <<< "$cuda_out"
    read -r cpu_lines cpu_bytes _ <<< "$cpu_out"
    read -r wc_lines wc_bytes _ <<< "$wc_out"
    if [ -n "${cuda_lines:-}" ] && [ "${cuda_lines:-}" = "${cpu_lines:-}" ] && [ "${cpu_lines:-}" = "${wc_lines:-}" ] \
        && [ "${cuda_bytes:-}" = "${cpu_bytes:-}" ] && [ "${cpu_bytes:-}" = "${wc_bytes:-}" ]; then
        echo "COUNT AGREEMENT: ok: $wc_lines lines, $wc_bytes bytes from cuda, cpu and wc"
    else
        echo "COUNT AGREEMENT: FAILED: cuda '${cuda_lines:-?} ${cuda_bytes:-?}', cpu '${cpu_lines:-?} ${cpu_bytes:-?}', wc '${wc_lines:-?} ${wc_bytes:-?}'"
    fi
} 2>&1 | tee "$WORK/count.log" | tee -a "$LOG"
grep -q "COUNT AGREEMENT: ok" "$WORK/count.log" || failures+=("count agreement")

# --- 3. benchmarks -------------------------------------------------------------------
step "bench dispatch" "$LIMIT" bash -c "'$BIN' bench dispatch --iterations $ITERATIONS --json > '$OUT/dispatch.json'"
step "bench slots" "$LIMIT" bash -c "'$BIN' bench slots --seconds $SLOT_SECONDS --json > '$OUT/slots.json'"
step "bench count" "$LIMIT" bash -c "'$BIN' bench count '$FILE' --repeats $REPEATS $COLD --json > '$OUT/count.json'"


# seconds_of START: wall seconds since START (date +%s.%N).
seconds_of() { awk "BEGIN{printf \"%.3f\", $(date +%s.%N) - $1}"; }
# rate BYTES SECONDS: GB/s.
rate() { awk "BEGIN{ if ($2 > 0) printf \"%.3f\", $1 / $2 / 1e9; else print \"-\" }"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(could not drop the page cache)"; }
# run_timed LABEL BYTES LIMIT CMD...: runs CMD (stdout kept in $WORK/out), prints
# "LABEL: S s, R GB/s, output: ..." and sets $last_out and $last_s.
run_timed() {
    local label=$1 bytes=$2 limit=$3
    shift 3
    local start rc
    start=$(date +%s.%N)
    timeout -k 5 "$limit" "$@" > "$WORK/out" 2> "$WORK/err"
    rc=$?
    last_s=$(seconds_of "$start")
    last_out=$(tr '\n' ' ' < "$WORK/out" | cut -c1-200)
    echo "$label: $last_s s, $(rate "$bytes" "$last_s") GB/s, exit $rc, output: $last_out"
    if [ "$rc" -ne 0 ]; then
        echo "  stderr: $(tail -c 600 "$WORK/err")"
        timed_failures="$timed_failures $label"
    fi
    return 0
}
count_of() { echo "${1##*:}" | tr -d ' '; }

FILE_BYTES=$(stat -c %s "$FILE")
head -c $((PREFIX_MIB << 20)) "$FILE" > "$PREFIX"
PREFIX_BYTES=$(stat -c %s "$PREFIX")

# --- 4. scan ---------------------------------------------------------------------------------
{
    echo "=== scan: literals cut from $FILE ($FILE_BYTES bytes); prefix $PREFIX ($PREFIX_BYTES bytes)"
    "$RG" --version | head -1
    python3 - "$FILE" "$WORK" <<'PY'
import random, sys
path, work = sys.argv[1], sys.argv[2]
# Literals of 12 bytes from the file's first 64 MiB, one per 1024-byte cell
# (at its first 268 bytes, so two literals are at least 756 bytes apart;
# distinct cells, no newline inside), so no two literals overlap anywhere
# in the file and no line holds two matches: then every count agrees
# (sluice counts every occurrence, rg -c counts matching lines).
with open(path, "rb") as f:
    block = f.read(64 << 20)
rng = random.Random(20261124)
cells = list(range(len(block) // 1024 - 1))
rng.shuffle(cells)
chosen, seen = [], set()
for c in cells:
    start = c * 1024 + rng.randrange(0, 256)
    lit = block[start:start + 12]
    if len(lit) < 12 or b"\n" in lit or b"\r" in lit or lit in seen:
        continue
    seen.add(lit)
    chosen.append(lit)
    if len(chosen) == 10000:
        break
for n in (1, 100, 1000, 10000):
    with open(f"{work}/lits-{n}.txt", "wb") as out:
        out.write(b"".join(l + b"\n" for l in chosen[:n]))
print(f"wrote literal files of 1, 100, 1000, 10000 literals ({len(chosen)} sampled)")
PY
    timed_failures=""
    printf 'tiny\n' > "$WORK/tiny.txt"
    run_timed "fixed cost: sluice count --backend cuda on a 5-byte file" 5 60 "$BIN" count --backend cuda --quiet "$WORK/tiny.txt"
    run_timed "fixed cost: sluice count --backend cpu on a 5-byte file" 5 60 "$BIN" count --backend cpu --quiet "$WORK/tiny.txt"
    for n in 1 100 1000 10000; do
        lits="$WORK/lits-$n.txt"
        echo "--- $n literals"
        if [ "$n" -le 100 ]; then target=$FILE; tbytes=$FILE_BYTES; else target=$PREFIX; tbytes=$PREFIX_BYTES; fi
        run_timed "scan-warm n=$n sluice-cuda file" "$FILE_BYTES" 120 "$BIN" scan --backend cuda --count --quiet -f "$lits" "$FILE"
        cuda_n=$(count_of "$last_out")
        run_timed "scan-warm n=$n sluice-cpu file" "$FILE_BYTES" 150 "$BIN" scan --backend cpu --count --quiet -f "$lits" "$FILE"
        cpu_n=$(count_of "$last_out")
        if [ "$target" = "$PREFIX" ]; then
            run_timed "scan-warm n=$n sluice-cuda prefix" "$tbytes" 60 "$BIN" scan --backend cuda --count --quiet -f "$lits" "$PREFIX"
            sluice_t=$(count_of "$last_out")
        else
            sluice_t=$cuda_n
        fi
        run_timed "scan-warm n=$n rg-j1 $( [ "$target" = "$FILE" ] && echo file || echo prefix )" "$tbytes" 120 "$RG" -F -c -j1 -f "$lits" "$target"
        rg1=$(count_of "$last_out")
        run_timed "scan-warm n=$n rg-j16 $( [ "$target" = "$FILE" ] && echo file || echo prefix )" "$tbytes" 120 "$RG" -F -c -j16 -f "$lits" "$target"
        rg16=$(count_of "$last_out")
        if [ -n "$cuda_n" ] && [ "$cuda_n" = "$cpu_n" ] && [ -n "$sluice_t" ] && [ "$sluice_t" = "$rg1" ] && [ "$rg1" = "$rg16" ]; then
            echo "SCAN AGREEMENT n=$n: ok: cuda $cuda_n = cpu $cpu_n on the file; sluice $sluice_t = rg $rg1 = rg -j16 $rg16 on $( [ "$target" = "$FILE" ] && echo the file || echo the prefix )"
        else
            echo "SCAN AGREEMENT n=$n: FAILED: cuda '$cuda_n' cpu '$cpu_n' sluice(target) '$sluice_t' rg '$rg1' rg-j16 '$rg16'"
        fi
    done
    echo "--- in-process throughput (sluice bench scan: engine set-up excluded), scan and hash"
    timeout -k 5 "$LIMIT" "$BIN" bench scan "$FILE" -f "$WORK/lits-1.txt" -f "$WORK/lits-100.txt" -f "$WORK/lits-1000.txt" \
        -f "$WORK/lits-10000.txt" --repeats "$SCAN_REPEATS" --json > "$OUT/scanbench.json" || echo "BENCH SCAN FAILED (exit $?)"
    echo "--- cold (page cache dropped before each)"
    drop_caches
    run_timed "scan-cold n=1000 sluice-cuda file" "$FILE_BYTES" 120 "$BIN" scan --backend cuda --count --quiet -f "$WORK/lits-1000.txt" "$FILE"
    drop_caches
    run_timed "scan-cold n=1000 sluice-cuda --direct file" "$FILE_BYTES" 120 "$BIN" scan --backend cuda --direct --count --quiet -f "$WORK/lits-1000.txt" "$FILE"
    drop_caches
    run_timed "read-cold dd iflag=direct bs=4M file" "$FILE_BYTES" 120 dd if="$FILE" of=/dev/null iflag=direct bs=4M
    drop_caches
    run_timed "read-cold dd (page cache) bs=4M file" "$FILE_BYTES" 120 dd if="$FILE" of=/dev/null bs=4M
    [ -z "$timed_failures" ] || echo "SCAN COMMANDS FAILED:$timed_failures"
} 2>&1 | tee "$OUT/scan.log" | tee -a "$LOG"
grep -q "FAILED" "$OUT/scan.log" && failures+=("scan")

# --- 5. hash ------------------------------------------------------------------------------------
{
    timed_failures=""
    echo "=== hash: $FILE ($FILE_BYTES bytes)"
    if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$WHEELS"/crc32c-*.whl >/dev/null 2>&1; then
        ref=(env PYTHONPATH="$WORK/site" python3 "$(dirname "$0")/crc32c-ref.py" "$FILE")
        echo "reference: python3 crc32c $(PYTHONPATH="$WORK/site" python3 -c 'import crc32c; print(crc32c.__version__ if hasattr(crc32c, "__version__") else "", "hardware_based =", crc32c.hardware_based)' 2>&1), single thread, 4 MiB reads"
    else
        ref=()
        echo "reference: the crc32c wheel did not install; skipped"
    fi
    for temp in warm cold; do
        [ "$temp" = warm ] && "$BIN" hash --backend cpu --quiet "$FILE" > /dev/null
        [ "$temp" = cold ] && drop_caches
        run_timed "hash-$temp sluice-cuda" "$FILE_BYTES" 120 "$BIN" hash --backend cuda --quiet "$FILE"
        h_cuda=${last_out%% *}
        [ "$temp" = cold ] && drop_caches
        run_timed "hash-$temp sluice-cpu" "$FILE_BYTES" 120 "$BIN" hash --backend cpu --quiet "$FILE"
        h_cpu=${last_out%% *}
        h_ref=$h_cpu
        if [ ${#ref[@]} -gt 0 ]; then
            [ "$temp" = cold ] && drop_caches
            run_timed "hash-$temp python-crc32c-1-thread" "$FILE_BYTES" 120 "${ref[@]}"
            h_ref=${last_out%% *}
        fi
        if [ "$temp" = cold ]; then
            drop_caches
            run_timed "hash-cold sluice-cuda --direct" "$FILE_BYTES" 120 "$BIN" hash --backend cuda --direct --quiet "$FILE"
            [ "${last_out%% *}" = "$h_cuda" ] || h_cuda="direct:${last_out%% *}"
        fi
        if [ -n "$h_cuda" ] && [ "$h_cuda" = "$h_cpu" ] && [ "$h_cpu" = "$h_ref" ]; then
            echo "HASH AGREEMENT $temp: ok: $h_cuda from cuda, cpu$( [ ${#ref[@]} -gt 0 ] && echo ' and python crc32c')"
        else
            echo "HASH AGREEMENT $temp: FAILED: cuda '$h_cuda' cpu '$h_cpu' reference '$h_ref'"
        fi
    done
    [ -z "$timed_failures" ] || echo "HASH COMMANDS FAILED:$timed_failures"
} 2>&1 | tee "$OUT/hash.log" | tee -a "$LOG"
grep -q "FAILED" "$OUT/hash.log" && failures+=("hash")

rm -f "$PREFIX"
rm -rf "$WORK"
rm -f "$FILE"
if [ ${#failures[@]} -eq 0 ]; then
    say "=== gpu-run $MODE: everything passed"
    exit 0
fi
say "=== gpu-run $MODE: FAILED: ${failures[*]}"
exit 1
