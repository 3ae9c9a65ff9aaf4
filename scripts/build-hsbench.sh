#!/usr/bin/env bash
# Builds what scripts/gpu-scanbench.sh needs on the GPU machine besides the
# sluice binary, into .device/ (git-excluded; carried to that machine):
#
#   .device/hsbench        bench/hsbench/hsbench.c linked with Debian's static
#                          libhs.a (Hyperscan 5.4, fat runtime: SSE4.2/AVX2/AVX-512
#                          chosen at run time), libstdc++ and libgcc linked
#                          statically, so it needs only glibc (and libm);
#   .device/lib/libhs.so.5 Debian's shared Hyperscan, for `sluice scan --backend cpu
#                          --cpu-engine hyperscan` there (the benchmark sets
#                          LD_LIBRARY_PATH=.device/lib for those runs). It needs
#                          libstdc++.so.6, libgcc_s.so.1, libm and libc, which
#                          Ubuntu 24.04 has (its libstdc++ is GCC 14's, newer
#                          than the GLIBCXX versions printed below).
#
# Needs gcc, g++ and libhyperscan-dev (Debian 12 here: glibc 2.36, which is
# not newer than the GPU machine's 2.39; the script checks the symbol
# versions the binary asks for). Run from the repository root:
#
#   scripts/build-hsbench.sh          # build and check (a few seconds)
#   scripts/build-hsbench.sh --test   # also scripts/test-hsbench.sh (about a minute)
#
# Exit status 0 when everything was built and passed its checks.
set -euo pipefail
cd "$(dirname "$0")/.."
LIBDIR=${HS_LIBDIR:-/usr/lib/x86_64-linux-gnu}
TARGET_GLIBC=2.39
BUILD=.build-hsbench
mkdir -p "$BUILD" .device/lib

for f in "$LIBDIR/libhs.a" "$LIBDIR/libhs.so.5" /usr/include/hs/hs.h; do
    [ -e "$f" ] || { echo "build-hsbench: $f is missing; apt-get install libhyperscan-dev" >&2; exit 1; }
done

echo "+ gcc -O2 -c bench/hsbench/hsbench.c; g++ ... libhs.a -static-libstdc++ -static-libgcc"
gcc -O2 -std=gnu11 -Wall -Wextra -Werror -c bench/hsbench/hsbench.c -o "$BUILD/hsbench.o"
g++ -O2 -o "$BUILD/hsbench" "$BUILD/hsbench.o" "$LIBDIR/libhs.a" -static-libstdc++ -static-libgcc -pthread -lm
install -m 755 "$BUILD/hsbench" .device/hsbench
strip .device/hsbench  # .device/ travels under the device tool's 64 MiB carry limit
cp -L "$LIBDIR/libhs.so.5" .device/lib/libhs.so.5
chmod 644 .device/lib/libhs.so.5

# newest_version FILE PREFIX: the highest PREFIX_x.y symbol version FILE asks for.
newest_version() {
    objdump -T "$1" | grep -o "$2_[0-9][0-9.]*" | sed "s/^$2_//" | sort -uV | tail -1
}
fail=0
needed=$(readelf -d .device/hsbench | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "hsbench needs: $needed"
for lib in $needed; do
    case "$lib" in
    libc.so.6 | libm.so.6 | ld-linux-x86-64.so.2 | libpthread.so.0) ;;
    *) echo "build-hsbench: hsbench needs $lib, which is not part of glibc" >&2; fail=1 ;;
    esac
done
for f in .device/hsbench .device/lib/libhs.so.5; do
    g=$(newest_version "$f" GLIBC)
    echo "$f: newest GLIBC symbol version $g; newest GLIBCXX $(newest_version "$f" GLIBCXX || true)"
    if [ "$(printf '%s\n%s\n' "$g" "$TARGET_GLIBC" | sort -V | tail -1)" != "$TARGET_GLIBC" ]; then
        echo "build-hsbench: $f needs glibc $g, newer than the GPU machine's $TARGET_GLIBC" >&2
        fail=1
    fi
done
echo "libhs.so.5 needs: $(readelf -d .device/lib/libhs.so.5 | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

# A smoke run: three overlapping matches of two literals, one duplicate.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'abcabcab\n' > "$tmp/text"
printf 'abc\r\nbca\n\nabc\n' > "$tmp/lits"
line=$(.device/hsbench -t 3 -r 1 -f "$tmp/lits" "$tmp/text")
echo "$line"
case "$line" in
*" literals=3 distinct=2 "*" matches=4 "*) echo "smoke run: ok (4 matches: abc at 0 and 3, bca at 1 and 4)" ;;
*) echo "build-hsbench: the smoke run should find 4 matches of 2 distinct literals" >&2; fail=1 ;;
esac
ls -l .device/hsbench .device/lib/libhs.so.5
[ "$fail" -eq 0 ] || exit 1
if [ "${1:-}" = "--test" ]; then
    scripts/test-hsbench.sh
fi
