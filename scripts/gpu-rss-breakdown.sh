#!/usr/bin/env bash
# Issue 16: where a CUDA process's resident memory goes (about 20 s). Runs
# `sluice scan --backend cuda -e a` over 200 MiB of `a` (full output into `wc -l`),
# samples /proc/PID/smaps 3 s in, and prints the total, the ring's data region (from
# --verbose), and the resident kB of the largest mappings grouped by what they map;
# then the same for `--backend cpu`. The process is killed after the sample.
#   OUT=$OUT scripts/gpu-rss-breakdown.sh
set -u
OUT=${OUT:-$PWD/gpu-out}; B=${SLUICE_BIN:-$PWD/.device/sluice}; W=/tmp/sluice-rss
mkdir -p "$OUT" "$W"
[ -e "$W/a-200.bin" ] || head -c $((200 << 20)) /dev/zero | tr '\0' a > "$W/a-200.bin"
for backend in cuda cpu; do
    "$B" scan --backend "$backend" --server never --verbose -e a "$W/a-200.bin" 2> "$OUT/rss-$backend.err" | wc -l > /dev/null &
    sleep 3
    pid=$(pgrep -n -f "scan --backend $backend --server never --verbose -e a")
    cp "/proc/$pid/smaps" "$OUT/smaps-$backend.txt"
    grep -E "^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem)" "/proc/$pid/status" | tr -s ' ' | tr '\n' ';'; echo
    kill "$pid"; wait
    echo "[$backend] $(grep -E 'slots:|ring|registered' "$OUT/rss-$backend.err" | cut -c1-200 | tr '\n' ' ')"
    python3 - "$OUT/smaps-$backend.txt" <<'PY'
import collections, re, sys
groups = collections.Counter(); name = None
for line in open(sys.argv[1]):
    head = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
    if head:
        name = head.group(1) or "[anonymous]"
        name = re.sub(r".*/", "", name)
    elif line.startswith("Rss:"):
        groups[name] += int(line.split()[1])
total = sum(groups.values())
print(f"total Rss {total // 1024} MiB; largest:")
for n, kb in groups.most_common(12):
    print(f"  {kb // 1024:6d} MiB  {n}")
PY
done
