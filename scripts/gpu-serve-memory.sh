#!/usr/bin/env bash
# Issue 18: does a warm server leak when clients are killed mid-scan? (about 1-2 minutes)
# A `sluice serve --backend B` scans a 4 GiB word file (gpu-serve.sh's, made if missing) with 1,000 literals for three
# clients (full output), then 20 clients are killed (SIGKILL) 20-300 ms into the same
# scan, then three more clients scan it; after each phase the server's VmRSS, VmHWM and
# open descriptors are printed, and every completed client's output must equal the
# first one's. Then 20 more kills and three more scans, to tell a one-off from growth.
#   OUT=$OUT scripts/gpu-serve-memory.sh        (SLUICE_SERVE_BACKEND=cpu for a dry run)
set -u
OUT=${OUT:-$PWD/gpu-out}; B=${SLUICE_BIN:-$PWD/.device/sluice}
BACKEND=${SLUICE_SERVE_BACKEND:-cuda}; MIB=${SLUICE_MEMORY_MIB:-4096}
W=/tmp/sluice-serve; SOCK=$W/memory.sock
mkdir -p "$OUT" "$W"; status=0
[ -e "$W/words.txt" ] || python3 scripts/scanbench-data.py "$W/words.txt" "$MIB" "$W" > /dev/null
rm -f "$W/first.txt"
cat "$W/words.txt" > /dev/null
"$B" serve --socket "$SOCK" --backend "$BACKEND" > /dev/null 2> "$OUT/memory-serve.err" &
SERVER=$!
for i in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "the server did not come up: $(tail -3 "$OUT/memory-serve.err")"; exit 1; }
scan() { "$B" scan --server "$SOCK" -f "$W/lits-1000.txt" "$W/words.txt"; }
state() {
    local rss hwm fds
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$SERVER/status); hwm=$(awk '/^VmHWM/ {print $2}' /proc/$SERVER/status)
    fds=$(ls /proc/$SERVER/fd | wc -l)
    echo "$1: VmRSS $((rss / 1024)) MiB, VmHWM $((hwm / 1024)) MiB, $fds descriptors"
}
complete() {
    for i in 1 2 3; do
        scan > "$W/out.txt" || { echo "a scan failed"; status=1; }
        if [ -e "$W/first.txt" ]; then cmp -s "$W/first.txt" "$W/out.txt" || { echo "output differs"; status=1; }
        else mv "$W/out.txt" "$W/first.txt"; fi
    done
}
kills() {
    for i in $(seq 20); do
        # exec: $! must be the client itself, not a subshell around it.
        (exec "$B" scan --server "$SOCK" -f "$W/lits-1000.txt" "$W/words.txt" > /dev/null) & c=$!
        sleep "0.0$((RANDOM % 9 + 1))"
        kill -KILL $c 2>/dev/null && killed=$((killed + 1)); wait $c 2>/dev/null
    done
    sleep 1
}
killed=0
complete; state "after 3 complete scans ($(wc -l < "$W/first.txt") lines each)"
kills; state "after 20 clients killed mid-scan ($killed of them still running when killed)"
complete; state "after 3 more complete scans"
kills; state "after 20 more killed ($killed of the 40 still running when killed)"
complete; state "after 3 more complete scans"
echo "server log: $(grep -c ', ok,' "$OUT/memory-serve.err") requests ok, $(grep -c 'client gone' "$OUT/memory-serve.err") ended by the client's going"
kill -TERM $SERVER; wait $SERVER; echo "server SIGTERM: exit $?"
echo "status $status"; exit $status
