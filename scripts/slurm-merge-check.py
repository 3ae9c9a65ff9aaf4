#!/usr/bin/env python3
"""Checks for scripts/check-slurm.sh.

  slurm-merge-check.py MODE LOCAL SHARE_DIR N
      The shares SHARE_DIR/share-0.out .. share-(N-1).out, concatenated, hold
      exactly the lines of LOCAL (one local run), each once: for `scan --json`
      and `hash` line for line (sorted); for `count` the per-file rows (the
      column widths differ per share), and the shares' totals add up to LOCAL's.
  slurm-merge-check.py --doc CLUSTER_MD JOB_SCRIPT
      The doc's Slurm block is the job script, byte for byte, and its
      Kubernetes manifest parses as YAML with a consistent Indexed Job.
"""
import os
import re
import subprocess
import sys
from collections import Counter


def shares(folder, n):
    out = []
    for i in range(n):
        path = os.path.join(folder, f"share-{i}.out")
        if not os.path.exists(path):
            sys.exit(f"slurm-merge-check: share {i} is missing ({path})")
        out.append(open(path, "rb").read().splitlines())
    return out


def count_rows(lines):
    rows, total = Counter(), None
    for line in lines:
        fields = line.split(None, 2)
        if len(fields) == 3 and fields[2] == b"total":
            total = (int(fields[0]), int(fields[1]))
        elif len(fields) == 3:
            rows[(int(fields[0]), int(fields[1]), fields[2])] += 1
    return rows, total


def check_merge(mode, local_path, folder, n):
    local = open(local_path, "rb").read().splitlines()
    parts = shares(folder, n)
    if mode == "count":
        want, want_total = count_rows(local)
        got, totals = Counter(), [0, 0]
        for part in parts:
            rows, total = count_rows(part)
            got += rows
            if total:
                totals[0] += total[0]
                totals[1] += total[1]
        if got != want:
            extra, lost = got - want, want - got
            sys.exit(f"slurm-merge-check: count rows differ: {len(lost)} missing, {len(extra)} extra or duplicated")
        if want_total and tuple(totals) != want_total:
            sys.exit(f"slurm-merge-check: the shares' totals {tuple(totals)} are not the local {want_total}")
        print(f"slurm-merge-check: count: {sum(want.values())} files, totals {want_total}")
        return
    got = Counter(line for part in parts for line in part)
    want = Counter(local)
    if got != want:
        extra, lost = got - want, want - got
        sys.exit(f"slurm-merge-check: {mode}: {sum(lost.values())} lines missing, {sum(extra.values())} extra or "
                 f"duplicated; first missing {next(iter(lost), b'')!r}, first extra {next(iter(extra), b'')!r}")
    if not want:
        sys.exit(f"slurm-merge-check: {mode}: the local run printed nothing; the check would prove nothing")
    sizes = [len(p) for p in parts]
    print(f"slurm-merge-check: {mode}: {len(local)} lines, shares {sizes}")


def yaml_module():
    try:
        import yaml
        return yaml
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "pyyaml"],
                       check=True)
        import yaml
        return yaml


def check_doc(doc_path, script_path):
    doc = open(doc_path, encoding="utf-8").read()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, flags=re.S)
    script = open(script_path, encoding="utf-8").read()
    if ("sh", script) not in blocks and ("bash", script) not in blocks:
        sys.exit(f"slurm-merge-check: {doc_path} does not show {script_path} byte for byte")
    manifests = [text for kind, text in blocks if kind == "yaml"]
    if len(manifests) != 1:
        sys.exit(f"slurm-merge-check: expected one YAML manifest in {doc_path}, found {len(manifests)}")
    job = yaml_module().safe_load(manifests[0])
    spec = job["spec"]
    container = spec["template"]["spec"]["containers"][0]
    command = " ".join(container["args"])
    shard = re.search(r'--shard "\$\{JOB_COMPLETION_INDEX\}/(\d+)"', command)
    problems = []
    if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        problems.append("not a batch/v1 Job")
    if spec.get("completionMode") != "Indexed":
        problems.append("completionMode is not Indexed")
    if not shard or int(shard.group(1)) != spec.get("completions"):
        problems.append("the --shard count differs from completions")
    mounts = {m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"] for v in spec["template"]["spec"].get("volumes", [])}
    if mounts - volumes:
        problems.append(f"mounts without a volume: {sorted(mounts - volumes)}")
    if problems:
        sys.exit("slurm-merge-check: the Kubernetes manifest: " + "; ".join(problems))
    print(f"slurm-merge-check: {doc_path} shows {script_path}; its Kubernetes manifest parses "
          f"({spec['completions']} indexed completions)")


if __name__ == "__main__":
    if sys.argv[1] == "--doc":
        check_doc(sys.argv[2], sys.argv[3])
    else:
        check_merge(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
