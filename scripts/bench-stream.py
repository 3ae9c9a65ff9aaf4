#!/usr/bin/env python3
"""Issue 16's benchmarks: streaming scan output, peak memory, linear time, time to the first line.

    scripts/bench-stream.py --bin PATH [--backend cpu|cuda|served-cuda|served-cpu]... [--work DIR]
                            [--out DIR] [--sizes 256,1024,2048] [--chunks 1M,4M,64M] [--dense-mib 200]
                            [--repeats N]

A backend `served-B` runs every scan as a client of a warm `sluice serve --backend B
--chunk-size C` (one server per chunk size, warmed by one scan first), so that the
fixed start of the backend is paid once per server, not per command; its peak RSS
row is the client's, with the server's own peak (VmHWM) beside it. Each timed scan
is the best of --repeats runs (default 1).

For each backend given (default: cpu), in one run on one machine:
  1. peak RSS: `sluice scan --backend B -e a` over DENSE_MIB MiB of the byte `a`
     (one match per byte), output piped into a line count that must equal the
     file's size; the peak RSS of the sluice process (getrusage of the waited-for
     children) is reported beside the ring's data region (slots x chunk bytes, from
     `--verbose`) plus 64 MiB, the bound the issue sets;
  2. full-output scans of word text (scripts/scanbench-data.py) of each size in
     --sizes, with 1,000 literals (20 words of middling frequency, so the output
     runs to hundreds of thousands of lines per GiB, and 980 random 12-letter
     strings), for each chunk size in --chunks: wall time, ns per byte, output
     lines; the report gives the largest ratio of ns/byte across sizes (per chunk
     size) and across chunk sizes (per file size); the issue asks for at most 1.3.
     The same scan over a 64 KiB prefix of the text gives the command's fixed cost
     (start-up, walk, table), and the ratios are given again on the net time
     (seconds less that fixed cost), which is what grows with the input;
  3. time to the first line of `sluice scan -f LITS BIGFILE` (the largest size),
     read from a pipe that is closed right after it, as `| head -1` would.
With a CUDA backend, a bare CUDA process is measured as a peer of the peak RSS: the
resident memory a Python process gains from loading libcuda and making a context
(cuInit, the primary context, one 1 MiB allocation), and from loading libnvrtc.
Writes OUT/stream.json and prints a table. Every scan's line count is compared
across chunk sizes: a difference fails the run (exit 1).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


def peak_children_rss_kib():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def timed_lines(argv):
    """Runs argv, counts its output lines; returns (seconds, lines, exit status, stderr)."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = 0
    while True:
        block = p.stdout.read(1 << 20)
        if not block:
            break
        lines += block.count(b"\n")
    err = p.stderr.read().decode(errors="replace")
    status = p.wait()
    return time.monotonic() - start, lines, status, err


class Server:
    """A warm `sluice serve --backend B --chunk-size C` on a socket of its own."""

    def __init__(self, binary, backend, chunk, work):
        self.socket = os.path.join(work, f"serve-{backend}-{chunk}.sock")
        self.log = open(os.path.join(work, f"serve-{backend}-{chunk}.log"), "wb")
        self.process = subprocess.Popen([binary, "serve", "--socket", self.socket, "--backend", backend,
                                         "--chunk-size", chunk, "--verbose"], stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(300):
            if os.path.exists(self.socket):
                break
            time.sleep(0.1)
        subprocess.run([binary, "scan", "--server", self.socket, "--quiet", "-c", "-e", "warm", "/etc/hostname"],
                       capture_output=True)

    def peak_rss_bytes(self):
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None

    def stop(self):
        self.process.terminate()
        self.process.wait()
        self.log.close()


def engine_args(backend, chunk, servers):
    """How a scan names its engine: local options, or the socket of the served backend's server."""
    if backend.startswith("served-"):
        return ["--server", servers[chunk].socket]
    args = ["--server", "never", "--backend", backend]
    return args + (["--chunk-size", chunk] if chunk else [])


def data_region_bytes(binary, backend, path, extra):
    """slots x chunk bytes as `--verbose` reports the ring."""
    r = subprocess.run([binary, "scan", "--backend", backend, "--verbose", "--quiet", "-c", "-e", "zzzzzzzz", path] + extra,
                       capture_output=True, text=True)
    m = re.search(r"(\d+) registered buffers of (\d+) (KiB|MiB)", r.stderr)
    if m:
        unit = 1024 if m.group(3) == "KiB" else 1 << 20
        return int(m.group(1)) * int(m.group(2)) * unit, r.stderr.strip()
    return None, r.stderr.strip()


def peak_rss(binary, engine, path, size):
    """Peak RSS of one `scan -e a` whose output is counted in this process."""
    # A fresh python child, so that RUSAGE_CHILDREN holds only this sluice process.
    code = (
        "import resource,subprocess,sys,time\n"
        "t=time.monotonic()\n"
        f"p=subprocess.Popen([{binary!r},'scan']+{engine!r}+['--quiet','-e','a',{path!r}],stdout=subprocess.PIPE)\n"
        "n=0\n"
        "while True:\n"
        "    b=p.stdout.read(1<<20)\n"
        "    if not b: break\n"
        "    n+=b.count(b'\\n')\n"
        "s=p.wait()\n"
        "print(n, s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.monotonic()-t)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    lines, status, rss_kib, seconds = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    return {"lines": lines, "expected_lines": size, "status": status, "peak_rss_bytes": rss_kib * 1024,
            "seconds": round(seconds, 3)}


CONTEXT_PEER = r"""
import ctypes, json
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
cuda = ctypes.CDLL("libcuda.so.1")
loaded = rss()
ctx, dev, ptr = ctypes.c_void_p(), ctypes.c_int(), ctypes.c_uint64()
assert cuda.cuInit(0) == 0 and cuda.cuDeviceGet(ctypes.byref(dev), 0) == 0
assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0 and cuda.cuCtxSetCurrent(ctx) == 0
assert cuda.cuMemAlloc_v2(ctypes.byref(ptr), 1 << 20) == 0
context = rss()
try:
    ctypes.CDLL("libnvrtc.so.13")
    nvrtc = rss() - context
except OSError:
    nvrtc = None
print(json.dumps({"libcuda_bytes": loaded - before, "context_bytes": context - loaded, "nvrtc_bytes": nvrtc}))
"""


def cuda_context_peer():
    """What a bare CUDA process gains in resident memory (see CONTEXT_PEER)."""
    r = subprocess.run([sys.executable, "-c", CONTEXT_PEER], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr.strip()[-300:]}


def first_line_seconds(binary, engine, lits, path):
    start = time.monotonic()
    p = subprocess.Popen([binary, "scan"] + engine + ["--quiet", "-f", lits, path],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    seconds = time.monotonic() - start
    p.stdout.close()
    status = p.wait()
    return {"seconds": round(seconds, 3), "first_line": line.decode(errors="replace").strip(), "status": status,
            "exit_seconds": round(time.monotonic() - start, 3)}


def make_data(work, sizes, dense_mib):
    os.makedirs(work, exist_ok=True)
    biggest = max(sizes)
    text = os.path.join(work, f"words-{biggest}.txt")
    if not os.path.exists(text):
        subprocess.run([sys.executable, os.path.join(HERE, "scanbench-data.py"), text, str(biggest), work], check=True)
    files = {}
    for mib in sizes:
        path = os.path.join(work, f"words-{mib}.txt")
        if not os.path.exists(path):
            with open(text, "rb") as src, open(path, "wb") as dst:
                left = mib << 20
                while left > 0:
                    block = src.read(min(left, 1 << 24))
                    if not block:
                        break
                    dst.write(block)
                    left -= len(block)
        files[mib] = path
    tiny = os.path.join(work, "words-64k.txt")
    with open(text, "rb") as src, open(tiny, "wb") as dst:
        dst.write(src.read(64 << 10))
    files["fixed"] = tiny
    # 1,000 literals: 20 words of middling frequency, 980 random ones (from the dense set).
    dense = open(os.path.join(work, "lits-dense.txt"), "rb").read().split(b"\n")
    words = sorted((w for w in dense if w and len(w) < 12), key=lambda w: (len(w), w))
    middling = [w for w in words if len(w) >= 6][:20]
    randoms = [w for w in dense if len(w) == 12][:980]
    lits = os.path.join(work, "lits-stream-1000.txt")
    with open(lits, "wb") as f:
        f.write(b"".join(w + b"\n" for w in middling + randoms))
    dense_path = os.path.join(work, f"a-{dense_mib}.bin")
    if not os.path.exists(dense_path):
        with open(dense_path, "wb") as f:
            for _ in range(dense_mib):
                f.write(b"a" * (1 << 20))
    return files, lits, dense_path


def measure(a, backend, servers, sizes, chunks, files, lits, dense):
    """One backend's rows: peak RSS, the scans, the worst ratios, the first line. Returns (row, failed)."""
    row, failed = {}, False
    # The ring of the dense run itself (slots are fitted to the input's size).
    served = backend.startswith("served-")
    default_chunk = "4M" if "4M" in chunks else chunks[0]
    if served:
        region, verbose = None, open(servers[default_chunk].log.name, errors="replace").read()[-2000:]
    else:
        region, verbose = data_region_bytes(a.bin, backend, dense, [])
    rss = peak_rss(a.bin, engine_args(backend, default_chunk if served else None, servers), dense, a.dense_mib << 20)
    if served:
        rss["server_peak_rss_bytes"] = servers[default_chunk].peak_rss_bytes()
    rss["data_region_bytes"] = region
    rss["bound_bytes"] = region + (64 << 20) if region else None
    rss["verbose"] = verbose
    if rss["lines"] != rss["expected_lines"] or rss["status"] != 0:
        failed = True
    if backend in ("cuda", "auto"):
        rss["cuda_context_peer"] = cuda_context_peer()
    row["peak_rss"] = rss
    fixed = {}
    for chunk in chunks:
        runs = [timed_lines([a.bin, "scan"] + engine_args(backend, chunk, servers) + ["--quiet", "-f", lits, files["fixed"]])
                for _ in range(max(2, a.repeats))]
        fixed[chunk] = round(min(r[0] for r in runs), 3)
        print(f"{backend} 64 KiB (fixed cost) chunk {chunk}: {fixed[chunk]:.3f} s", flush=True)
    row["fixed_seconds"] = fixed
    scans = []
    for mib in sizes:
        size = os.path.getsize(files[mib])
        for chunk in chunks:
            runs = [timed_lines([a.bin, "scan"] + engine_args(backend, chunk, servers) + ["--quiet", "-f", lits, files[mib]])
                    for _ in range(max(1, a.repeats))]
            seconds, lines, status, err = min(runs, key=lambda r: r[0])
            if len({r[1] for r in runs}) != 1:
                failed = True
            scans.append({"mib": mib, "bytes": size, "chunk": chunk, "seconds": round(seconds, 3), "lines": lines,
                          "status": status, "ns_per_byte": round(seconds * 1e9 / size, 3),
                          "net_ns_per_byte": round(max(seconds - fixed[chunk], 1e-6) * 1e9 / size, 3),
                          "stderr": err.strip()[-300:]})
            print(f"{backend} {mib} MiB chunk {chunk}: {seconds:.3f} s, {lines} lines, status {status}", flush=True)
    for mib in sizes:
        counts = {s["lines"] for s in scans if s["mib"] == mib}
        if len(counts) != 1 or any(s["status"] != 0 for s in scans if s["mib"] == mib):
            failed = True
    row["scans"] = scans
    for field, suffix in (("ns_per_byte", ""), ("net_ns_per_byte", "_net")):
        per = lambda key, value: [s[field] for s in scans if s[key] == value]
        row["worst_ratio_across_sizes" + suffix] = {c: round(max(per("chunk", c)) / min(per("chunk", c)), 3) for c in chunks}
        row["worst_ratio_across_chunks" + suffix] = {m: round(max(per("mib", m)) / min(per("mib", m)), 3) for m in sizes}
    row["first_line"] = first_line_seconds(a.bin, engine_args(backend, default_chunk if served else None, servers),
                                           lits, files[max(sizes)])
    return row, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--backend", action="append")
    ap.add_argument("--work", default="/var/tmp/sluice-stream")
    ap.add_argument("--out", default=".")
    ap.add_argument("--sizes", default="256,1024,2048")
    ap.add_argument("--chunks", default="1M,4M,64M")
    ap.add_argument("--dense-mib", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    backends = a.backend or ["cpu"]
    sizes = [int(s) for s in a.sizes.split(",")]
    chunks = a.chunks.split(",")
    files, lits, dense = make_data(a.work, sizes, a.dense_mib)
    report = {"machine": sh("uname -srm").strip(), "cores": os.cpu_count(), "binary": a.bin,
              "binary_sha256": sh(f"sha256sum {a.bin}").split()[0][:16], "backends": {}}
    failed = False
    for backend in backends:
        servers = {c: Server(a.bin, backend[len("served-"):], c, a.work) for c in chunks} if backend.startswith("served-") else {}
        try:
            row, bad = measure(a, backend, servers, sizes, chunks, files, lits, dense)
        finally:
            for server in servers.values():
                server.stop()
        failed = failed or bad
        report["backends"][backend] = row
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "stream.json"), "w") as f:
        json.dump(report, f, indent=1)
    for backend, row in report["backends"].items():
        r = row["peak_rss"]
        mb = lambda b: f"{b / (1 << 20):.1f} MiB" if b else "?"
        server = f", the server's own peak {mb(r['server_peak_rss_bytes'])}" if "server_peak_rss_bytes" in r else ""
        print(f"\n[{backend}] peak RSS of scan -e a over {a.dense_mib} MiB of a: {mb(r['peak_rss_bytes'])} "
              f"(data region {mb(r['data_region_bytes'])}, bound {mb(r['bound_bytes'])}{server}), {r['lines']} lines in {r['seconds']} s")
        if "cuda_context_peer" in r:
            print(f"a bare CUDA process (peer): {r['cuda_context_peer']}")
        print(f"fixed cost (the same scan over 64 KiB), per chunk size: {row['fixed_seconds']}")
        print("| MiB | chunk | s | ns/byte | net ns/byte | lines |")
        print("| --- | --- | --- | --- | --- | --- |")
        for s in row["scans"]:
            print(f"| {s['mib']} | {s['chunk']} | {s['seconds']} | {s['ns_per_byte']} | {s['net_ns_per_byte']} | {s['lines']} |")
        print(f"worst ns/byte ratio across sizes, per chunk size: {row['worst_ratio_across_sizes']}; "
              f"net of the fixed cost: {row['worst_ratio_across_sizes_net']}")
        print(f"worst ns/byte ratio across chunk sizes, per file size: {row['worst_ratio_across_chunks']}; "
              f"net: {row['worst_ratio_across_chunks_net']}")
        print(f"time to the first line: {row['first_line']}")
    print("FAILED" if failed else "ok")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
