#!/usr/bin/env bash
# Builds the Examples package (a separate package that depends on this one by
# path, as a user's program would) and checks each example's output against
# the `sluice` command and wc on a generated tree. CPU backend (no GPU here).
# Usage: scripts/check-examples.sh [SLUICE_BINARY]   (default: .build/debug/sluice)
set -euo pipefail
cd "$(dirname "$0")/.."
sluice=${1:-.build/debug/sluice}
[ -x "$sluice" ] || swift build --product sluice
(cd Examples && swift build 2>&1 | tail -3)
bin=Examples/.build/debug

tree=$(mktemp -d /var/tmp/sluice-examples-XXXXXX)
trap 'rm -rf "$tree"' EXIT
python3 - "$tree" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(17)
words = [b"alpha", b"beta", b"gamma", b"delta", b"lorem", b"ipsum", b"\n"]
for i in range(40):
    sub = os.path.join(root, f"d{i % 4}")
    os.makedirs(sub, exist_ok=True)
    n = 0 if i == 0 else rng.choice([10, 4000, 70000, 300000])
    data = b" ".join(rng.choice(words) for _ in range(n // 6))
    with open(os.path.join(sub, f"f{i}.txt"), "wb") as f:
        f.write(data)
PY
fail=0
check() {  # NAME EXPECTED ACTUAL
    if cmp -s "$2" "$3"; then echo "examples: $1: ok ($(wc -l < "$2") lines)"; else
        echo "examples: $1: DIFFERS"; diff "$2" "$3" | head -5; fail=1; fi
}
out=$(mktemp -d)
"$bin/scan-tree" "$tree" alpha gamma lorem > "$out/scan.example"
"$sluice" scan --quiet -e alpha -e gamma -e lorem "$tree" > "$out/scan.cli"
check "scan-tree vs sluice scan" "$out/scan.cli" "$out/scan.example"
[ -s "$out/scan.cli" ] || { echo "examples: the scan found nothing"; fail=1; }

files=$(find "$tree" -type f | sort)
# shellcheck disable=SC2086
"$bin/hash-files" $files > "$out/hash.example"
# shellcheck disable=SC2086
"$sluice" hash --quiet $files | sort -k2 > "$out/hash.cli"
sort -k2 "$out/hash.example" > "$out/hash.example.sorted"
check "hash-files vs sluice hash" "$out/hash.cli" "$out/hash.example.sorted"
if "$bin/hash-files" "$tree/absent" > /dev/null 2> "$out/hash.err"; then
    echo "examples: hash-files exited 0 on a missing file"; fail=1
elif ! grep -q "absent" "$out/hash.err"; then
    echo "examples: hash-files did not name the missing file"; fail=1
fi

: > "$out/wc.example"; : > "$out/wc.cli"
for f in $(echo "$files" | head -8); do
    "$bin/pump-by-hand" "$f" >> "$out/wc.example"
    echo "$(wc -l < "$f") $(wc -c < "$f") $f" >> "$out/wc.cli"
done
check "pump-by-hand vs wc" "$out/wc.cli" "$out/wc.example"
# The user-operation examples against scripts/example-ops-oracle.py (Python),
# on files of 0, 1, chunk-1, chunk, chunk+1 bytes and several chunks (4 MiB chunks).
ops=$(mktemp -d /var/tmp/sluice-ops-XXXXXX)
python3 - "$ops" <<'PY'
import os, random, sys
rng = random.Random(23)
chunk = 4 << 20
for i, n in enumerate([0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk + 4097, 5000]):
    with open(os.path.join(sys.argv[1], f"g{i}"), "wb") as f:
        f.write(rng.randbytes(n) if i % 2 else bytes(rng.choices(b"ab\n\x00\xff", k=n)))
PY
opfiles=$(find "$ops" -type f | sort)
python3 scripts/example-ops-oracle.py vectors
# shellcheck disable=SC2086
python3 scripts/example-ops-oracle.py histogram $opfiles > "$out/histogram.oracle"
# shellcheck disable=SC2086
"$bin/byte-histogram" --backend cpu $opfiles > "$out/histogram.example"
check "byte-histogram vs python" "$out/histogram.oracle" "$out/histogram.example"
# shellcheck disable=SC2086
python3 scripts/example-ops-oracle.py xxh64-blocks $opfiles > "$out/blocks.oracle"
# shellcheck disable=SC2086
"$bin/block-hash" --verify $opfiles > "$out/blocks.example"
grep -q "^verify: .*: equal$" "$out/blocks.example" || { echo "examples: block-hash --verify failed"; fail=1; }
grep -v "^verify: " "$out/blocks.example" > "$out/blocks.example.files"
check "block-hash vs python" "$out/blocks.oracle" "$out/blocks.example.files"
if "$bin/byte-histogram" --backend cpu "$ops/absent" > /dev/null 2> "$out/histogram.err"; then
    echo "examples: byte-histogram exited 0 on a missing file"; fail=1
fi
rm -rf "$ops"
rm -rf "$out"
exit $fail
