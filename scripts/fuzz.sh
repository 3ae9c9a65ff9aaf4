#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (coverage instrumentation and
# AddressSanitizer on every module, the main package's libraries included) and
# runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 s each, all targets
#   scripts/fuzz.sh 0                         # build only
#
# Targets: FuzzPatterns (pattern list -> scan table -> matching), FuzzRing (ring
# image, control block and tenant table decoders), FuzzSlots (slot images
# through SlotExecutor and a CPUBackend ring), FuzzWire (sluice serve's message
# decoder). Seeds are Fuzz/Corpus/<target>/,
# which is only read; inputs the fuzzer finds go to .build-fuzz/corpus/<target>/
# (git-ignored, kept between local runs). Exits non-zero on any crash, leak,
# timeout (-timeout=5 per input), out-of-memory (-rss_limit_mb=2048) or failed
# property check, and prints where the failing input was saved and how to rerun it.
# Extra libFuzzer flags can be given in FUZZ_FLAGS (e.g. FUZZ_FLAGS=-jobs=2).
# FUZZ_CONFIG=debug builds -Onone instead of release (-O keeps Swift's bounds,
# overflow and precondition checks and runs 2-15 times as many inputs a second;
# -enable-testing lets FuzzSlots reach internal installers with @testable import).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzPatterns FuzzRing FuzzSlots FuzzWire)
case "$seconds" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac

scratch=.build-fuzz
log_dir=$scratch/logs
mkdir -p "$log_dir"

# The Swift runtime's own crash backtracer would attach to every crashing
# input (slowly); libFuzzer and AddressSanitizer print the stack themselves.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}

config=${FUZZ_CONFIG:-release}
echo "== fuzz: building ${targets[*]} ($config, -sanitize=fuzzer,address)"
start=$(date +%s)
build_log=$log_dir/build.log
# ld.gold warns about every ASan helper symbol it cannot export; drop that noise.
build=(swift build -c "$config" --package-path Fuzz --scratch-path "$scratch"
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing -Xcc -fsanitize=fuzzer-no-link,address)
if ! "${build[@]}" >"$build_log" 2>&1; then
    grep -v "Cannot export local symbol" "$build_log" | tail -40
    echo "== fuzz: build FAILED (full log: $build_log)" >&2
    exit 2
fi
bin=$("${build[@]}" --show-bin-path)
echo "== fuzz: built in $(( $(date +%s) - start )) s"
[ "$seconds" -gt 0 ] || exit 0

failed=()
for t in "${targets[@]}"; do
    [ -x "$bin/$t" ] || { echo "== fuzz: no target $t" >&2; exit 2; }
    corpus=$scratch/corpus/$t
    artifacts=$scratch/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    log=$log_dir/$t.log
    echo "== fuzz: $t for $seconds s"
    rc=0
    # The first directory receives new inputs; the seeds are only read.
    # shellcheck disable=SC2086
    timeout -k 10 $(( seconds * 2 + 120 )) "$bin/$t" \
        -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" ${FUZZ_FLAGS:-} \
        "$corpus" "Fuzz/Corpus/$t" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [^ ]*' | tail -1 || true)
    echo "   $t: rc=$rc, ${execs:-?} inputs, ${rate:-?} exec/s, ${last:-no coverage line}"
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        echo "---- $t FAILED (exit $rc); end of $log:" >&2
        # Demangle Swift symbols in the stack trace when the tool is there.
        if swift demangle --help >/dev/null 2>&1; then
            tail -80 "$log" | swift demangle --simplified >&2
        else
            tail -80 "$log" >&2
        fi
        for f in "$artifacts"/*; do
            [ -e "$f" ] || continue
            echo "---- failing input: $f" >&2
            echo "     rerun: SWIFT_BACKTRACE=enable=no $bin/$t $f" >&2
        done
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "== fuzz: FAILED: ${failed[*]} (logs in $log_dir, inputs in $scratch/artifacts)" >&2
    exit 1
fi
echo "== fuzz: all ${#targets[@]} targets ran $seconds s each without a failure"
