#!/usr/bin/env bash
# Runs pinprobe's modes on the GPU machine; prints each phase and the whole process's wall time. ~20 s.
set -u
gcc -O2 -o /tmp/pinprobe bench/startup/pinprobe.c -I/usr/local/cuda/include -L/usr/local/cuda/lib64/stubs -lcuda -lpthread || exit 1
for mode in ${MODES:-hostalloc register thp-register populate-register split-register leak hostalloc register thp-register}; do
    s=$(date +%s%N); /tmp/pinprobe $mode 512 2>/tmp/pp.txt; rc=$?; e=$(date +%s%N)
    echo "== $mode 512 MiB: rc=$rc, process wall $(( (e - s) / 1000000 )) ms"; cat /tmp/pp.txt
done
