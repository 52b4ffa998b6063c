"""procfs_fixtures.py: turns probes/vmflags.c output into the SMAPS_BLOCKS/MAPS_DUMP/STATUS_FULL literals used by tests/test_procfs.py."""
import re
import sys

WANT = [
    "private anon PROT_NONE", "private anon RWX", "private anon RW: 2 pages written, 1 read (zero page)",
    "shared anon RW: 1 written, 1 read", "MAP_GROWSDOWN", "private anon MAP_SYNC", "MAP_DROPPABLE",
    "mlock2(ONFAULT) + 1 page written", "madvise GUARD_INSTALL(1 page) (ret 0)",
    "many: WIPEONFORK DONTFORK HUGEPAGE DONTDUMP RANDOM mlock mseal", "shared file R (O_RDONLY)",
    "shared file RW mlock (populates)", "private file RW offset 0x12345 pages (beyond EOF)",
    "shared file R, path with a newline", "memfd private RW offset 4P: 1 written 1 read",
]


def lit(text, indent=""):
    lines = text.splitlines(keepends=True)
    return "(\n" + "".join("%s    %r\n" % (indent, l) for l in lines) + indent + ")"


def main(path):
    txt = open(path).read()
    blocks = {}
    for b in re.split(r"^=== ", txt, flags=re.M)[1:]:
        label, _, body = b.partition("\n")
        blocks[label] = "".join(l for l in body.splitlines(keepends=True) if not l.startswith("### file"))
    print("SMAPS_BLOCKS = {")
    for k in WANT:
        print("    %r: %s," % (k, lit(blocks[k], "    ")))
    print("}\n")
    print("MAPS_DUMP = %s\n" % lit(blocks["FULL /proc/self/maps"]))
    print("STATUS_FULL = %s" % lit(blocks["FULL /proc/self/status"]))


if __name__ == "__main__":
    main(sys.argv[1])
