#!/usr/bin/env python3
"""Issue 16's linear-time figures, alternated: time per byte across file sizes and chunk sizes.

    scripts/bench-linear-ab.py --bin PATH [--bin PATH]... [--backend cpu] [--work DIR]
                               [--sizes 256,1024,2048] [--chunks 1M,4M,64M] [--rounds 9]

The full-output `sluice scan -f LITS` of scripts/bench-stream.py (1,000 literals over word
text, output read from a pipe and counted), but each round runs every binary on every size
and chunk size once, in turn, so that a machine whose speed drifts (a shared 2-core
development VM drifts by 15% between minutes) slows every configuration alike. Reports the
median seconds of each configuration over the rounds, its ns per byte, and per binary the
largest ratio of ns/byte across sizes (per chunk size) and across chunk sizes (per file
size); issue 16 asks for at most 1.3. A 64 KiB prefix of the text gives the fixed cost,
and the ratios are given again net of it. Every configuration's line count must agree
across chunk sizes and binaries, or the run fails (exit 1). Data as bench-stream.py makes it.
"""
import argparse
import importlib.util
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench_stream", os.path.join(HERE, "bench-stream.py"))
bench_stream = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_stream)


def worst_ratio(values):
    return round(max(values) / min(values), 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--work", default="/var/tmp/sluice-stream")
    ap.add_argument("--sizes", default="256,1024,2048")
    ap.add_argument("--chunks", default="1M,4M,64M")
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    chunks = a.chunks.split(",")
    files, lits, _ = bench_stream.make_data(a.work, sizes, 1)
    seconds, lines = {}, {}
    for _ in range(a.rounds):
        for binary in a.bin:
            for size in ["fixed"] + sizes:
                for chunk in chunks:
                    argv = [binary, "scan", "--backend", a.backend, "--chunk-size", chunk, "--quiet", "-f", lits, files[size]]
                    took, count, status, err = bench_stream.timed_lines(argv)
                    if status not in (0, 1):
                        sys.exit(f"{' '.join(argv)}: exit {status}: {err}")
                    seconds.setdefault((binary, size, chunk), []).append(took)
                    lines.setdefault(size, set()).add(count)
    failed = [size for size, counts in lines.items() if len(counts) != 1]
    print("| binary | MiB | chunk | median s | ns/byte | net ns/byte |\n| --- | --- | --- | --- | --- | --- |")
    for binary in a.bin:
        median = {key[1:]: statistics.median(v) for key, v in seconds.items() if key[0] == binary}
        fixed = {chunk: median[("fixed", chunk)] for chunk in chunks}
        per_byte = {(s, c): median[(s, c)] * 1e9 / (s << 20) for s in sizes for c in chunks}
        net = {(s, c): (median[(s, c)] - fixed[c]) * 1e9 / (s << 20) for s in sizes for c in chunks}
        for s in sizes:
            for c in chunks:
                print(f"| {os.path.basename(binary)} | {s} | {c} | {median[(s, c)]:.3f} | {per_byte[(s, c)]:.3f} | {net[(s, c)]:.3f} |")
        print(f"{binary}: fixed cost {', '.join(f'{c} {fixed[c]:.3f} s' for c in chunks)}")
        print(f"  worst ratio across sizes, per chunk size: {{{', '.join(f'{c}: {worst_ratio([per_byte[(s, c)] for s in sizes])}' for c in chunks)}}}"
              f"; net {{{', '.join(f'{c}: {worst_ratio([net[(s, c)] for s in sizes])}' for c in chunks)}}}")
        print(f"  worst ratio across chunk sizes, per file size: {{{', '.join(f'{s}: {worst_ratio([per_byte[(s, c)] for c in chunks])}' for s in sizes)}}}"
              f"; net {{{', '.join(f'{s}: {worst_ratio([net[(s, c)] for c in chunks])}' for s in sizes)}}}")
    if failed:
        sys.exit(f"line counts differ for sizes {failed}: {lines}")


if __name__ == "__main__":
    main()
