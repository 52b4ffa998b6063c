#!/bin/sh
# run_all.sh: build every probe in probes/ and run it, writing one output file per probe to $OUT (default /tmp/ptprobes-out).
# Needs root (pagemap PFNs, the uid-drop and MAP_FIXED-at-0 rows), cc, setarch, and Linux >= 6.18.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/ptprobes-out}
BIN=$OUT/bin
mkdir -p "$BIN"
CFLAGS="-O0 -Wall -Wno-unused-function"
for p in errno layout vmflags merge vmpte counters pagemap; do
    cc $CFLAGS -o "$BIN/$p" "$HERE/$p.c"
done
cc $CFLAGS -static -o "$BIN/layout_static" "$HERE/layout.c"
cc $CFLAGS -static-pie -o "$BIN/layout_static_pie" "$HERE/layout.c" 2>/dev/null || true
cc $CFLAGS -no-pie -o "$BIN/layout_nopie" "$HERE/layout.c"

"$BIN/errno" > "$OUT/errno.md" 2>&1                     # section 1 (takes ~10 s: fills max_map_count)
setarch -R "$BIN/layout" > "$OUT/layout.md"              # section 2
for b in layout_static layout_static_pie layout_nopie; do
    [ -x "$BIN/$b" ] && setarch -R "$BIN/$b" --brk-only >> "$OUT/layout.md"
done
for s in 8192 65536 262144 1048576; do                   # mmap_base vs RLIMIT_STACK
    (ulimit -s $s; printf 'stack %s kB: ' $s; setarch -R "$BIN/layout_static" --brk-only | grep -m1 'maps: `7ff' || true) >> "$OUT/layout.md"
done
setarch -R "$BIN/vmflags" > "$OUT/vmflags.txt"           # section 3 (+ procfs test fixtures)
"$BIN/merge" > "$OUT/merge.md"                           # section 4
"$BIN/vmpte" > "$OUT/vmpte.md"                           # section 5
"$BIN/counters" > "$OUT/counters.md"                     # section 6
"$BIN/pagemap" > "$OUT/pagemap.md"                       # section 7
python3 "$HERE/procfs_fixtures.py" "$OUT/vmflags.txt" > "$OUT/procfs_fixtures.py"
echo "outputs in $OUT"
