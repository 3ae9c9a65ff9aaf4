#!/usr/bin/env bash
# The cuFile ingest path (--ingest gds) against io_uring (--ingest uring) on
# the GPU machine, with the CUDA backend, on one multi-GiB file.
# Expected run time: about 3 minutes for 4 GiB (generation ~20 s, self-test
# ~30 s, 11 timed runs of a few seconds each); every command is under a time limit.
#
#   scripts/gpu-gds.sh
#
# 1. machine facts and `sluice doctor /tmp` (must show the GPU, CUDA, NVRTC and
#    cuFile; here cuFile can only run in compatibility mode, and the doctor must say so);
# 2. `sluice selftest --backend cuda --quick` (the kernel takes a new parameter block);
# 3. a 4 GiB text file (SLUICE_SIZE_MIB overrides), generated like scripts/gpu-run.sh's;
# 4. `count` and `scan` with --ingest gds and --ingest uring, warm (after one
#    reading) and cold (echo 3 > /proc/sys/vm/drop_caches before each), plus cold
#    `count --direct`; gds output must be byte-identical to uring's (count) and
#    have the same sha256 and line count (scan);
# 5. `dd iflag=direct bs=4M` cold: the raw O_DIRECT read rate in the same run;
# 6. a markdown table of every figure with its command.
#
# Exit status 0 only when every command succeeded, every output matched, the
# gds runs said which cuFile mode ran, and the doctor showed what it must.
# Build and carry the binary first:
#   swift build -c release --static-swift-stdlib --scratch-path .build-release
#   mkdir -p .device && cp .build-release/release/sluice .device/sluice
set -u
OUT=${OUT:-$PWD/gpu-out}
BIN=${SLUICE_BIN:-$PWD/.device/sluice}
FILE=${SLUICE_GDS_FILE:-/tmp/sluice-gds.txt}
SIZE_MIB=${SLUICE_SIZE_MIB:-4096}
LIMIT=150
mkdir -p "$OUT"
LOG="$OUT/gds.log"
: > "$LOG"
failures=()
rows=()
say() { echo "$*" | tee -a "$LOG"; }
fail() { say "MISMATCH: $*"; failures+=("$*"); }

[ -x "$BIN" ] || { say "no executable at $BIN; build and carry it first (see the top of this script)"; exit 1; }
say "sluice gpu-gds on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ); binary sha256 $(sha256sum "$BIN" | cut -c1-16)"
{
    nvidia-smi --query-gpu=name,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader
    echo "kernel $(uname -r); $(nproc) cores; nvidia_fs module: $(grep -c '^nvidia_fs ' /proc/modules)"
    echo "nvme devices: $(ls /sys/class/nvme 2>/dev/null | wc -l); /tmp on $(findmnt -no FSTYPE,SOURCE -T /tmp)"
    echo "libcufile: $(ldconfig -p | grep -m1 libcufile.so.0 || echo 'not known to ldconfig')"
    echo "cufile.json allow_compat_mode: $(grep -h allow_compat_mode /etc/cufile.json /usr/local/cuda/gds/cufile.json 2>/dev/null | head -1)"
} 2>&1 | tee -a "$LOG"

# cuFile registers a file only with its block device's udev properties
# (ID_FS_USAGE), and the H100 VM runs no udev (benchmarks/RESULTS.md, runs
# 11-13). SLUICE_GDS_UDEV_SHIM=1 writes the record udevd would have written
# for the device under /tmp (only where /run/udev/data does not exist), so
# that cuFile's compatibility mode can be measured there. A test-machine
# shim, not something Sluice does: without it the doctor and --ingest gds
# say that cuFile needs udev.
if [ "${SLUICE_GDS_UDEV_SHIM:-0}" = 1 ] && [ ! -e /run/udev/data ]; then
    dev=$(mountpoint -d "$(findmnt -no TARGET -T /tmp)")
    mkdir -p /run/udev/data
    printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=%s\n' "$(findmnt -no FSTYPE -T /tmp)" > "/run/udev/data/b$dev"
    say "udev shim: wrote /run/udev/data/b$dev ($(tr '\n' ' ' < "/run/udev/data/b$dev"))"
fi

# --- 1. doctor ---------------------------------------------------------------------
say "=== $BIN doctor /tmp"
doctor=$(timeout 60 "$BIN" doctor /tmp 2>&1)
echo "$doctor" | tee -a "$LOG" "$OUT/gds-doctor.txt"
timeout 60 "$BIN" doctor --json /tmp > "$OUT/gds-doctor.json" 2>&1
echo "$doctor" | grep -q "H100" || fail "doctor does not show the H100"
echo "$doctor" | grep -q "CUDA 13" || fail "doctor does not show CUDA 13"
echo "$doctor" | grep -q "^ok nvrtc" || fail "doctor does not show NVRTC ok"
echo "$doctor" | grep "gpudirect storage" | grep -q "compatibility mode" || fail "doctor does not show cuFile in compatibility mode"

# --- 2. self-test (the kernel's parameter block changed) ---------------------------
say "=== $BIN selftest --backend cuda --quick"
timeout "$LIMIT" "$BIN" selftest --backend cuda --quick > "$OUT/gds-selftest.log" 2>&1
rc=$?
tail -3 "$OUT/gds-selftest.log" | tee -a "$LOG"
[ "$rc" -eq 0 ] || fail "selftest --backend cuda exited $rc"

# --- 3. the file -------------------------------------------------------------------
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_MIB << 20)) ]; then
    say "=== generating $SIZE_MIB MiB of text at $FILE"
    timeout 120 python3 "$(dirname "$0")/gen-text.py" "$FILE" "$SIZE_MIB" 2>&1 | tee -a "$LOG"
fi
BYTES=$(stat -c %s "$FILE")
say "=== $FILE: $BYTES bytes"

# --- 4. runs -----------------------------------------------------------------------
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# timed NAME CACHE OUTFILE COMMAND...: runs it (cold: caches dropped first),
# records seconds and GB/s, keeps stdout in OUTFILE and stderr in OUTFILE.err.
timed() {
    local name=$1 cache=$2 outfile=$3
    shift 3
    [ "$cache" = cold ] && drop
    local start end rc secs rate
    start=$(date +%s.%N)
    timeout -k 10 "$LIMIT" "$@" > "$outfile" 2> "$outfile.err"
    rc=$?
    end=$(date +%s.%N)
    secs=$(awk "BEGIN{printf \"%.3f\", $end - $start}")
    rate=$(awk "BEGIN{printf \"%.2f\", $BYTES / ($end - $start) / 1e9}")
    say "--- $name ($cache): exit $rc, $secs s, $rate GB/s: $*"
    grep -h "sluice: " "$outfile.err" | head -5 | tee -a "$LOG"
    [ "$rc" -eq 0 ] || fail "$name ($cache) exited $rc"
    rows+=("| $name | $cache | \`$*\` | $secs | $rate |")
}

LITS=(-e abc -e Q9z -e "xy z")
for cache in warm cold; do
    [ "$cache" = warm ] && cat "$FILE" > /dev/null
    for ingest in uring gds; do
        timed "count, --ingest $ingest" "$cache" "$OUT/gds-count-$ingest-$cache.txt" \
            "$BIN" count --backend cuda --ingest "$ingest" --verbose --quiet "$FILE"
        timed "scan 3 literals, --ingest $ingest" "$cache" "$OUT/gds-scan-$ingest-$cache.txt" \
            "$BIN" scan --backend cuda --ingest "$ingest" --quiet "${LITS[@]}" "$FILE"
    done
    cmp -s "$OUT/gds-count-uring-$cache.txt" "$OUT/gds-count-gds-$cache.txt" \
        || fail "count output differs ($cache): $(cat "$OUT/gds-count-uring-$cache.txt") vs $(cat "$OUT/gds-count-gds-$cache.txt")"
    su=$(sha256sum < "$OUT/gds-scan-uring-$cache.txt" | cut -c1-16); sg=$(sha256sum < "$OUT/gds-scan-gds-$cache.txt" | cut -c1-16)
    lu=$(wc -l < "$OUT/gds-scan-uring-$cache.txt"); lg=$(wc -l < "$OUT/gds-scan-gds-$cache.txt")
    say "scan ($cache): uring $lu lines sha256 $su; gds $lg lines sha256 $sg"
    [ "$su" = "$sg" ] && [ "$lu" -gt 0 ] || fail "scan output differs or is empty ($cache)"
done
for ingest in uring gds; do
    timed "count --direct, --ingest $ingest" cold "$OUT/gds-count-direct-$ingest.txt" \
        "$BIN" count --backend cuda --ingest "$ingest" --direct --verbose --quiet "$FILE"
done
cmp -s "$OUT/gds-count-direct-uring.txt" "$OUT/gds-count-direct-gds.txt" || fail "count --direct output differs"
cmp -s "$OUT/gds-count-direct-uring.txt" "$OUT/gds-count-uring-warm.txt" || fail "count --direct differs from buffered count"
# wc as the independent count.
read -r wl wb _ <<< "$(wc -l -c "$FILE")"
read -r cl cb _ <<< "$(cat "$OUT/gds-count-gds-warm.txt")"
say "wc: $wl lines $wb bytes; sluice gds: $cl lines $cb bytes"
[ "$wl" = "$cl" ] && [ "$wb" = "$cb" ] || fail "sluice count --ingest gds disagrees with wc"
# The gds runs must name the cuFile mode that ran.
grep -h "ingest cuFile" "$OUT"/gds-count-gds-warm.txt.err | tee -a "$LOG"
grep -q "compatibility mode, NOT direct\|direct GPUDirect Storage" "$OUT"/gds-count-gds-warm.txt.err \
    || fail "--ingest gds --verbose did not say which cuFile mode ran"

# --- 5. raw O_DIRECT rate ------------------------------------------------------------
drop
say "--- dd if=$FILE of=/dev/null bs=4M iflag=direct (cold)"
dd_out=$(timeout "$LIMIT" dd if="$FILE" of=/dev/null bs=4M iflag=direct 2>&1 | tail -1)
say "$dd_out"
dd_secs=$(echo "$dd_out" | sed -n 's/.*copied, \([0-9.]*\) s.*/\1/p')
[ -n "$dd_secs" ] && rows+=("| raw O_DIRECT read | cold | \`dd if=$FILE of=/dev/null bs=4M iflag=direct\` | $dd_secs | $(awk "BEGIN{printf \"%.2f\", $BYTES / $dd_secs / 1e9}") |") \
    || fail "dd did not report a time"

# --- 6. table ------------------------------------------------------------------------
{
    echo
    echo "$(( BYTES >> 20 )) MiB text file, CUDA backend, $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); GB/s = file bytes / wall seconds (process start to exit)"
    echo
    echo "| what | cache | command | seconds | GB/s |"
    echo "| --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
} | tee -a "$LOG" "$OUT/gds-table.md"

if [ "${#failures[@]}" -gt 0 ]; then
    say "FAILED: ${#failures[@]} problem(s):"
    printf '  - %s\n' "${failures[@]}" | tee -a "$LOG"
    exit 1
fi
say "OK: gds and uring agree (count, scan, warm, cold, --direct)"
