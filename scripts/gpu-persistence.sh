#!/usr/bin/env bash
# Whether the GPU stays initialized between processes here, and what its start costs a command:
# `count --backend cuda` of a 3-byte file, three times with nothing else holding the GPU, then three
# times while another process (Python, libcuda's cuInit) holds it open.
#   scripts/gpu-persistence.sh          # .device/sluice present
B=${SLUICE_BIN:-$PWD/.device/sluice}; echo hi > /tmp/sluice-t3; TIMEFORMAT=%R
echo "persistence mode: $(nvidia-smi --query-gpu=persistence_mode --format=csv,noheader 2>&1)"
for i in 1 2 3; do echo "alone: $( { time "$B" count --backend cuda --quiet --server never /tmp/sluice-t3 > /dev/null; } 2>&1 ) s"; done
python3 -c "import ctypes, time; c = ctypes.CDLL('libcuda.so.1'); c.cuInit(0); time.sleep(8)" & holder=$!
sleep 1.5
for i in 1 2 3; do echo "another process holds the GPU: $( { time "$B" count --backend cuda --quiet --server never /tmp/sluice-t3 > /dev/null; } 2>&1 ) s"; done
wait $holder
