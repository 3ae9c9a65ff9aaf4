#!/usr/bin/env bash
# CI: the Slurm recipe of docs/cluster.md run for real. As root: starts a
# one-host Slurm (deploy/slurm/local-slurm.sh), submits the very job script the
# doc shows (deploy/slurm/sluice-array.sbatch) as a 4-task array over a tree of
# 3,000 files for `scan --json`, `count` and `hash`, and checks the shares'
# outputs, merged, against one local run: nothing missing, duplicated or
# different. Then one file is made unreadable to the job's user, and the job
# must fail and name it. Also checks that the doc's job script is that file and
# that its Kubernetes manifest parses. Usage: scripts/check-slurm.sh [SLUICE]
#   (default: builds the release binary).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
if [ $# -ge 1 ]; then built=$1; else
    swift build -c release --product sluice 2>&1 | tail -1
    built=$(swift build -c release --show-bin-path)/sluice
fi
work=$(mktemp -d /var/tmp/sluice-slurm-check-XXXXXX)
chmod 755 "$work"
cleanup() { deploy/slurm/local-slurm.sh stop > /dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# The job's user must reach the binary: a copy beside the data.
install -m 755 "$built" "$work/sluice"
deploy/slurm/local-slurm.sh start

python3 - "$work/tree" "$work/patterns" <<'PY'
import os, random, sys
root, patterns = sys.argv[1], sys.argv[2]
rng = random.Random(21)
words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"kilo", b"lima", b"\n"]
for i in range(3000):
    folder = os.path.join(root, f"d{i % 37}", f"e{i % 5}")
    os.makedirs(folder, exist_ok=True)
    n = rng.choice([0, 1, 50, 700, 4000, 20000]) if i % 500 else 300000
    with open(os.path.join(folder, f"f{i}.txt"), "wb") as f:
        f.write(b" ".join(rng.choice(words) for _ in range(n // 6))[:n])
with open(patterns, "wb") as f:
    f.write(b"kilo lima\ncharlie\necho\n")
PY
chmod -R a+rX "$work/tree" "$work/patterns"

failures=0
# run_array NAME USER ARGS: the job script as a 4-task array; prints sbatch's status.
run_array() {
    local name=$1 user=$2; shift 2
    mkdir -p "$work/$name"; chmod 777 "$work/$name"
    local status=0
    runuser -u "$user" -- env SLUICE="$work/sluice" SLUICE_ARGS="$*" SLUICE_PATHS="$work/tree" \
        SLUICE_RESULTS="$work/$name" sbatch --wait --quiet --array=0-3 --cpus-per-task=1 \
        --chdir="$work/$name" --output="$work/$name/task-%a.err" "$repo/deploy/slurm/sluice-array.sbatch" || status=$?
    echo "$status"
}

for mode in scan count hash; do
    case $mode in
        scan) args="scan --json -f $work/patterns" ;;
        count) args="count" ;;
        hash) args="hash" ;;
    esac
    status=$(run_array "$mode" root "$args")
    # shellcheck disable=SC2086
    "$work/sluice" $args --quiet "$work/tree" > "$work/$mode.local" || [ $? -le 1 ]
    if python3 scripts/slurm-merge-check.py "$mode" "$work/$mode.local" "$work/$mode" 4 && [ "$status" = 0 ]; then
        echo "slurm: $mode: 4 shares merged equal one local run"
    else
        echo "slurm: $mode: FAILED (sbatch status $status)"; cat "$work/$mode"/task-*.err 2> /dev/null | head -5
        failures=$((failures + 1))
    fi
done

# A file the job's user cannot read: its share's task fails and names it, the job fails.
victim=$(find "$work/tree" -name 'f1234.txt')
chmod 000 "$victim"
status=$(run_array unreadable nobody hash)
named=$(grep -l "f1234.txt" "$work/unreadable"/task-*.err 2> /dev/null | wc -l)
if [ "$status" != 0 ] && [ "$named" = 1 ]; then
    echo "slurm: an unreadable file: the job failed (sbatch status $status) and one task named it"
else
    echo "slurm: an unreadable file: FAILED (sbatch status $status, $named task logs name it)"
    failures=$((failures + 1))
fi

python3 scripts/slurm-merge-check.py --doc docs/cluster.md deploy/slurm/sluice-array.sbatch || failures=$((failures + 1))
echo "slurm: $failures failures"
[ "$failures" = 0 ]
