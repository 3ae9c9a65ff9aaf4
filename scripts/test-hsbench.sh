#!/usr/bin/env bash
# Checks .device/hsbench (scripts/build-hsbench.sh) against two independent
# counts on generated data: a Python oracle (every window of every literal
# length looked up in a set of the distinct literals) and
# `sluice scan --count --backend cpu --cpu-engine builtin` (every input).
# Cases: overlapping literals of 1-9 bytes on a 4-letter text (dense), -i on
# mixed case, duplicate and CRLF lines, bytes 0x00/0x80-0xff, 100,000 12-byte
# literals with planted matches (8 MiB); each with 1, 3 and 16 threads and with small
# -b blocks, so matches straddle slice and block edges (and slices shorter
# than the longest literal).
#
#   scripts/test-hsbench.sh        # about a minute on 2 cores; exit 1 on any difference
#
# SLUICE_BIN (default .build/debug/sluice, built with `swift build`) and
# HSBENCH (default .device/hsbench) pick the binaries.
set -uo pipefail
cd "$(dirname "$0")/.."
SLUICE=${SLUICE_BIN:-.build/debug/sluice}
HSBENCH=${HSBENCH:-.device/hsbench}
[ -x "$HSBENCH" ] || { echo "test-hsbench: no $HSBENCH; run scripts/build-hsbench.sh" >&2; exit 1; }
[ -x "$SLUICE" ] || { echo "test-hsbench: no $SLUICE; run swift build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import os, random, sys
work = sys.argv[1]
rng = random.Random(909)

def write(name, data):
    with open(os.path.join(work, name), "wb") as f:
        f.write(data)

def oracle(text, lits, fold):
    """Overlapping occurrences of the distinct literals (folded under -i):
    every window of every literal length looked up in a set."""
    low = lambda b: b.lower() if fold else b  # bytes.lower folds ASCII only
    t = low(text)
    by_length = {}
    for l in lits:
        by_length.setdefault(len(l), set()).add(low(l))
    return sum(1 for n, group in by_length.items() for p in range(len(t) - n + 1) if t[p:p + n] in group)

def literal_file(lits, crlf_every=0):
    out = b""
    for k, l in enumerate(lits):
        out += l + (b"\r\n" if crlf_every and k % crlf_every == 0 else b"\n")
        if k % 17 == 0:
            out += b"\n"  # empty lines are skipped
    return out

cases = []
# 1. dense: 4-letter text, literals of 1-9 bytes (prefixes of each other, duplicates).
text = bytes(rng.choice(b"abcd\n") for _ in range(300_000))
lits = [bytes(rng.choice(b"abcd") for _ in range(rng.randint(1, 9))) for _ in range(60)]
lits += [lits[3], lits[7]]
cases.append(("dense", text, lits, False))
# 2. -i on mixed case, CRLF lines.
text = bytes(rng.choice(b"aAbBcC .\n") for _ in range(300_000))
lits = [bytes(rng.choice(b"aAbBcC .") for _ in range(rng.randint(2, 6))) for _ in range(40)]
lits += [lits[0].swapcase()]
cases.append(("caseless", text, lits, True))
# 3. binary bytes, literals with NUL and high bytes, some cut from the text.
text = bytes(rng.choice([0, 1, 0x80, 0xff, 0x41, 0x61, 13]) for _ in range(200_000))
lits = [bytes(rng.choice([0, 1, 0x80, 0xff, 0x41, 0x61]) for _ in range(rng.randint(2, 7))) for _ in range(30)]
lits += [text[1000:1040].replace(b"\r", b"\x01")]
cases.append(("binary", text, lits, False))
# 4. 100,000 random 12-byte literals, 300 planted, a 2-byte one among them; 8 MiB.
alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 "
lits = [bytes(rng.choice(alphabet) for _ in range(12)) for _ in range(100_000)]
lits.append(b"zq")
text = bytearray(os.urandom(8 << 20).translate(bytes(alphabet[i % len(alphabet)] if i % 40 else 10 for i in range(256))))
for k in range(300):
    p = rng.randrange(0, len(text) - 12)
    text[p:p + 12] = lits[rng.randrange(100_000)]
cases.append(("lits100k", bytes(text), lits, False))

for name, text, lits, fold in cases:
    write(f"{name}.txt", text)
    write(f"{name}.lits", literal_file(lits, crlf_every=3 if fold else 0))
    expected = oracle(text, lits, fold)
    with open(os.path.join(work, f"{name}.case"), "w") as f:
        f.write(f"{'-i' if fold else ''} {expected}\n")
print("generated", ", ".join(c[0] for c in cases))
PY

fail=0
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< "$2"; }
for case in dense caseless binary lits100k; do
    read -r a b < "$work/$case.case"
    if [ "$a" = "-i" ]; then flag=-i; expected=$b; else flag=""; expected=$a; fi
    sluice_out=$("$SLUICE" scan --backend cpu --cpu-engine builtin --count --quiet $flag -f "$work/$case.lits" "$work/$case.txt")
    sluice_n=${sluice_out##*:}
    sluice_n=${sluice_n:-0}
    line="$case: sluice builtin $sluice_n, oracle $expected"
    [ "$expected" = "$sluice_n" ] || { line="$line MISMATCH"; fail=1; }
    for t in 1 3 16; do
        for b in 1073741824 4099 13; do
            [ "$case" = lits100k ] && [ "$b" = 13 ] && continue
            out=$("$HSBENCH" -t "$t" -r 2 -b "$b" $flag -f "$work/$case.lits" "$work/$case.txt") || { echo "$case: hsbench -t $t -b $b failed"; fail=1; continue; }
            n=$(field matches "$out")
            if [ "$n" != "$sluice_n" ]; then
                echo "$case: hsbench -t $t -b $b found $n, sluice $sluice_n: MISMATCH ($out)"
                fail=1
            fi
        done
    done
    echo "$line; hsbench -t 1/3/16 x -b 1G/4099/13: $n"
done
if [ "$fail" -ne 0 ]; then
    echo "test-hsbench: FAILED"
    exit 1
fi
echo "test-hsbench: ok: hsbench = sluice builtin = python oracle on every case, thread count and block size"
