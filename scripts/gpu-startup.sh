#!/usr/bin/env bash
# Where a CUDA command's fixed start-up goes, phase by phase (SLUICE_TRACE_PHASES),
# on the GPU machine. About 1 minute. Usage: OUT=$OUT bash scripts/gpu-startup.sh
set -u
B=${B:-.device/sluice}
export SLUICE_TRACE_PHASES=1
date -u; nvidia-smi --query-gpu=name,persistence_mode,driver_version --format=csv
head -c 1073741824 /dev/urandom > /tmp/f1g; cat /tmp/f1g > /dev/null
echo hello world > /tmp/small
t() { echo "== $*"; local s=$(date +%s.%N); "$@" >/tmp/out.txt 2>/tmp/err.txt; local rc=$?; local e=$(date +%s.%N);
      head -c 300 /tmp/out.txt; grep -E "^phase" /tmp/err.txt; grep -v "^phase" /tmp/err.txt | head -5
      echo "   rc=$rc wall $(awk "BEGIN{printf \"%.3f\", $e - $s}") s"; }
t $B hash --backend cuda /tmp/f1g
t $B hash --backend cuda /tmp/f1g
t $B hash --backend cpu /tmp/f1g
t $B hash --backend cuda --slots 8 /tmp/f1g
t $B scan --backend cuda -e hello /tmp/small
t $B scan --backend cuda --slots 4 -e hello /tmp/small
t $B count --backend cuda /tmp/small
t $B doctor
