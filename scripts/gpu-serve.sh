#!/usr/bin/env bash
# Issue 18's benchmarks on the GPU machine (about 6 minutes), with .device/sluice
# (static) and .device/hsbench (scripts/build-hsbench.sh):
#  1. a 4 GiB warm file of word text (scripts/scanbench-data.py) with 1,000 and
#     10,000 literals: `sluice bench scan` in the process, hsbench with 16 threads
#     (the file in memory), the whole `sluice scan --count` command locally
#     (`--server never --backend cuda`) and through a warm `sluice serve --backend
#     cuda` (best of 3 each);
#  2. a one-line file: 40 whole client commands through the warm server and 10
#     local ones, median wall time;
#  3. 16 clients at once, each scanning its own 256 MiB file (the 4 GiB file cut
#     into 16), against one client scanning all 16: aggregate GB/s and the
#     slowest client over the fastest;
#  4. SIGTERM to the server: its exit status, and its socket gone.
#   OUT=$OUT scripts/gpu-serve.sh
set -u
OUT=${OUT:-$PWD/gpu-out}; B=${SLUICE_BIN:-$PWD/.device/sluice}; HS=$PWD/.device/hsbench
W=/tmp/sluice-serve; SOCK=$W/serve.sock
# For a dry run elsewhere: SLUICE_SERVE_BACKEND=cpu SLUICE_SERVE_MIB=256.
# SLUICE_SERVE_ARGS: more options for the server (an A/B of --request-slots).
BACKEND=${SLUICE_SERVE_BACKEND:-cuda}; MIB=${SLUICE_SERVE_MIB:-4096}; SERVE_ARGS=${SLUICE_SERVE_ARGS:-}
mkdir -p "$OUT" "$W"; status=0
echo "binary $(sha256sum "$B" | cut -c1-16); $(nvidia-smi -L 2>&1 | head -1)"
rm -f "$W"/part.*
python3 scripts/scanbench-data.py "$W/words.txt" "$MIB" "$W" > /dev/null
( cd "$W" && split -n 16 -d -a 2 words.txt part. )
cat "$W/words.txt" "$W"/part.* > /dev/null
printf 'hello sluice\n' > "$W/one-line.txt"
BYTES=$(stat -c %s "$W/words.txt")

echo "server: serve --backend $BACKEND $SERVE_ARGS"
# shellcheck disable=SC2086 # the extra options are words
"$B" serve --socket "$SOCK" --backend "$BACKEND" $SERVE_ARGS > "$OUT/serve.out" 2> "$OUT/serve.err" &
SERVER=$!
for i in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "the server did not come up: $(tail -3 "$OUT/serve.err")"; exit 1; }
# Warm the server (CUDA start, first table) before anything is timed.
"$B" scan --server "$SOCK" --count -e warm "$W/one-line.txt" > /dev/null

best() {  # NAME COMMAND...: best of 3 wall times, seconds
    python3 - "$@" <<'PY'
import subprocess, sys, time
name, cmd = sys.argv[1], sys.argv[2:]
times, out = [], None
for _ in range(3):
    t = time.perf_counter(); r = subprocess.run(cmd, capture_output=True); times.append(time.perf_counter() - t)
    if out is None: out = r.stdout
    elif r.stdout != out: print(f"{name}: outputs differ between runs"); sys.exit(1)
open(f"/tmp/sluice-serve/{name}.out", "wb").write(out)
print(f"{min(times):.4f}")
PY
}
for n in 1000 10000; do
    L=$W/lits-$n.txt
    timeout 200 "$B" bench scan "$W/words.txt" -f "$L" --repeats 2 $([ "$BACKEND" = cuda ] && echo --no-cpu) --no-hash --json --quiet > "$OUT/bench-$n.json" 2> "$OUT/bench-$n.err"
    inproc=$(python3 -c "import json,sys; print(max(r['best GB/s'] for r in json.load(open(sys.argv[1]))['rows'] if r['literals'] != '-'))" "$OUT/bench-$n.json")
    hs=$("$HS" -t 16 -r 2 -f "$L" "$W/words.txt" 2>&1 | tail -1)
    hsg=$(echo "$hs" | sed -n 's/.* gbps=\([0-9.]*\).*/\1/p')
    served=$(best served-$n "$B" scan --server "$SOCK" --count --quiet -f "$L" "$W/words.txt")
    local_t=$(best local-$n "$B" scan --server never --backend "$BACKEND" --count --quiet -f "$L" "$W/words.txt")
    same=DIFFERENT; cmp -s "$W/served-$n.out" "$W/local-$n.out" && same=same; [ $same = same ] || status=1
    python3 - "$n" "$BYTES" "$inproc" "$hsg" "$served" "$local_t" "$same" <<'PY'
import sys
n, size, inproc, hs, served, local, same = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4] or 0), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
sg, lg = size / served / 1e9, size / local / 1e9
print(f"{n} literals: served {served:.3f} s = {sg:.2f} GB/s ({sg / inproc:.2f}x bench scan {inproc:.2f}; {sg / hs if hs else 0:.2f}x hsbench-16 {hs:.2f}); "
      f"local {local:.3f} s = {lg:.2f} GB/s (served/local {sg / lg:.2f}); output {same}")
PY
done

python3 - "$B" "$SOCK" "$W/one-line.txt" "$BACKEND" <<'PY'
import statistics, subprocess, sys, time
b, sock, f, backend = sys.argv[1:]
def runs(args, n):
    t = []
    for _ in range(n):
        s = time.perf_counter(); r = subprocess.run([b, "scan"] + args + ["-e", "sluice", f], capture_output=True); t.append(time.perf_counter() - s)
        assert r.stdout.endswith(b":6:sluice\n"), r
    return t
served, local = runs(["--server", sock], 40), runs(["--server", "never", "--backend", backend], 10)
print(f"one-line file: served median {statistics.median(served) * 1e3:.1f} ms (min {min(served) * 1e3:.1f}, max {max(served) * 1e3:.1f}, 40 runs); "
      f"local --backend {backend} median {statistics.median(local) * 1e3:.1f} ms (10 runs)")
PY

python3 - "$B" "$SOCK" "$W" <<'PY'
import glob, os, subprocess, sys, time, threading
b, sock, w = sys.argv[1:]
parts = sorted(glob.glob(w + "/part.*")); size = sum(os.path.getsize(p) for p in parts)
cmd = [b, "scan", "--server", sock, "--count", "--quiet", "-f", w + "/lits-1000.txt"]
one = []
for _ in range(3):
    t = time.perf_counter(); subprocess.run(cmd + parts, capture_output=True); one.append(time.perf_counter() - t)
best_one = min(one)
gate = w + "/gate"
for rep in range(3):
    # Every client waits at a FIFO; one write opens it for all 16 at once,
    # so they start together rather than one spawn after another.
    if os.path.exists(gate): os.unlink(gate)
    os.mkfifo(gate)
    procs = [subprocess.Popen(["sh", "-c", 'read x; exec "$@"', "client"] + cmd + [p], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL) for p in parts]
    each = [0.0] * len(procs)
    def wait(i):
        procs[i].wait(); each[i] = time.perf_counter() - start
    start = time.perf_counter()
    for p in procs: p.stdin.write(b"go\n"); p.stdin.flush()
    threads = [threading.Thread(target=wait, args=(i,)) for i in range(len(procs))]
    for t in threads: t.start()
    for t in threads: t.join()
    total = max(each)
    print(f"16 clients x {size // 16 >> 20} MiB at once (round {rep + 1}): {total:.3f} s = {size / total / 1e9:.2f} GB/s aggregate; "
          f"one client over all 16 files {best_one:.3f} s = {size / best_one / 1e9:.2f} GB/s; ratio {best_one / total:.2f}; "
          f"slowest/fastest client {max(each) / min(each):.2f} (fastest {min(each) * 1e3:.0f} ms, slowest {max(each) * 1e3:.0f} ms)")
PY

for n in 1000 10000; do
    timeout 200 "$B" bench scan "$W/words.txt" -f "$W/lits-$n.txt" --repeats 2 $([ "$BACKEND" = cuda ] && echo --no-cpu) --no-hash --json --quiet > "$OUT/bench-again-$n.json" 2>/dev/null
    echo "bench scan again, $n literals: $(python3 -c "import json,sys; print(max(r['best GB/s'] for r in json.load(open(sys.argv[1]))['rows'] if r['literals'] != '-'))" "$OUT/bench-again-$n.json") GB/s (the server still holds its ring and GPU)"
done
grep -E "scan: 1 file, [0-9]+ bytes" "$OUT/serve.err" | tail -16 | sed 's/.* ok, //' | tr '\n' ' ' | sed 's/^/server-side times of the last 16 one-file requests: /'; echo
kill -TERM $SERVER; wait $SERVER; rc=$?
gone=present; [ -e "$SOCK" ] || gone=gone
echo "server SIGTERM: exit $rc, socket $gone; its log: $(wc -l < "$OUT/serve.err") lines, last: $(tail -1 "$OUT/serve.err" | cut -c1-200)"
[ $rc = 0 ] && [ $gone = gone ] || status=1
echo "status $status"; exit $status
