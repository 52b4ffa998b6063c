"""The [vsyscall] gate page (issue 11, item 5), on both backends.

An x86-64 process built by exec shows the vsyscall page after its last VMA, in maps and in
smaps (show_map()/show_smap() walk on to get_gate_vma()), but it is no VMA of the mm:
map_count leaves it out. The kernel half is the live server process (a program exec'd
like any other); the simulator half a process of spawn(exec_layout=True) and one of
system.execve().
"""
import shutil

import pytest

import ptengine
from ptengine.proc import text as procfs


def make_system(backend):
    """The host kernel's backend; its absence is a skip, a server that does not build an
    error (as tests/address_space has it)."""
    from ptengine import live
    if not live.available():
        live.server_binary()
        pytest.skip("the host kernel has no guard regions (MADV_GUARD_INSTALL)")
    return live.LiveSystem()

# CONFIG_LEGACY_VSYSCALL_XONLY: execute-only, no page behind it; the name is padded to
# column 73 as on every maps line.
GATE_LINE = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0".ljust(72) + " [vsyscall]"


def smaps_entries(text):
    """{first line: the whole entry} of smaps text."""
    entries, cur = [], None
    for line in text.splitlines(True):
        if procfs._MAPS_RE.match(line.rstrip("\n")):
            cur = [line]
            entries.append(cur)
        else:
            cur.append(line)
    return ["".join(e) for e in entries]


@pytest.fixture(params=["kernel", "exec_layout", "execve"])
def process(request):
    if request.param == "kernel":
        system = make_system("kernel")
        try:
            yield system.spawn()
        finally:
            system.close()
    elif request.param == "exec_layout":
        yield ptengine.System().spawn(exec_layout=True)
    else:
        yield ptengine.System().execve(shutil.which("true"))


def test_gate_is_the_last_line_and_no_vma(process):
    lines = process.maps().splitlines()
    assert lines[-1] == GATE_LINE
    assert sum(1 for line in lines if line.endswith("[vsyscall]")) == 1
    assert process.map_count == len(lines) - 1
    gate = smaps_entries(process.smaps())[-1]
    entry = procfs.parse_smaps(gate)[0]
    assert gate.splitlines()[0] == GATE_LINE
    assert entry.vmflags == ["ex"]
    assert entry.fields["Size"] == 4 and entry.thp_eligible == 0
    assert all(v == 0 for k, v in entry.fields.items()
               if k not in ("Size", "KernelPageSize", "MMUPageSize"))


def test_gate_smaps_text_equals_the_kernels():
    """Byte for byte, the simulator's smaps entry for the gate is the kernel's."""
    system = make_system("kernel")
    try:
        kernel = smaps_entries(system.spawn().smaps())[-1]
    finally:
        system.close()
    assert smaps_entries(ptengine.System().spawn(exec_layout=True).smaps())[-1] == kernel


def test_plain_spawn_has_no_gate():
    """An empty address space (spawn() without exec_layout) is no exec'd process."""
    mm = ptengine.System().spawn()
    assert mm.maps() == "" and mm.smaps() == ""
