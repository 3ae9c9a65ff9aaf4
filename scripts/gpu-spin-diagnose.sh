#!/usr/bin/env bash
# Where the spinning user operation of `selftest --faults` hangs on CUDA: runs its
# child check alone and samples, at 8, 15, 30 and 60 s, every thread's name, kernel
# wait channel and system call, and the child's output so far; then kills it.
#   OUT=$OUT scripts/gpu-spin-diagnose.sh
set -u; OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"; B=${SLUICE_BIN:-$PWD/.device/sluice}
$B selftest --backend cuda --seed 5 --fault-child user-spin > $OUT/spin.out 2> $OUT/spin.err & P=$!
for t in 8 15 30 60; do
  sleep $(( t - ${last:-0} )); last=$t
  echo "== t=$t s"
  for task in /proc/$P/task/*; do
    echo "$(cat $task/comm 2>/dev/null) | $(cat $task/wchan 2>/dev/null) | $(cut -d' ' -f1 $task/syscall 2>/dev/null)"
  done | sort | uniq -c
  tail -c 400 $OUT/spin.out; echo; tail -c 400 $OUT/spin.err; echo
done
kill -9 $P; wait
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
