"""system.execve() against the kernel: real programs of this host, stopped at their first
instruction with ASLR off, and their /proc/PID/maps, smaps and status compared line for
line (inode and device columns included) with the simulator's.

launcher.c (built here) forks, turns randomisation off (personality ADDR_NO_RANDOMIZE),
PTRACE_TRACEMEs and execs the program with the environment it was given; at the exec stop
it prints what the kernel shows. Both sides get the same path, argv, environment and
RLIMIT_STACK, the inputs the layout depends on. The C programs are built here too: a PIE,
a non-PIE, a static and a static-PIE one (the static ones need libc.a; without it they
skip and say so). python3, /bin/true, node and java run where installed.
"""
import errno
import re
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ptengine
from ptengine.proc import text as procfs
from ptengine.constants import PAGE_SIZE

HERE = Path(__file__).parent
P = PAGE_SIZE
MiB = 1 << 20
ENV = {"LC_ALL": "C", "PTENGINE_EXEC_TEST": "1"}
# A program with a bss far past its file pages (a separate anonymous VMA) that reads it,
# so the compiler keeps it.
PROGRAM_C = r"""
#include <stdio.h>
static volatile char bss[300000];
int main(int argc, char **argv) { bss[argc * 4096] = 1; printf("%d\n", bss[4096]); return 0; }
"""
# Segments 2 MiB apart (max-page-size): the image is reserved whole and the holes between
# segments given back (elf_map()), and a PIE's base is aligned down to 2 MiB.
BIG_ALIGN = ["-Wl,-z,max-page-size=0x200000", "-Wl,-z,separate-code"]
C_BUILDS = {"pie": ["-fPIE", "-pie"], "nopie": ["-no-pie"], "static": ["-static"],
            "static-pie": ["-static-pie"], "pie-2M": ["-fPIE", "-pie", *BIG_ALIGN],
            "static-pie-2M": ["-static-pie", *BIG_ALIGN],
            "execstack": ["-fPIE", "-pie", "-Wl,-z,execstack"]}    # PT_GNU_STACK RWE


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """{name: path} of the launcher and the C programs that could be built here."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler: the launcher cannot be built")
    out = tmp_path_factory.mktemp("exec")
    src = out / "program.c"
    src.write_text(PROGRAM_C)
    paths = {}
    subprocess.run([cc, "-O2", "-o", str(out / "launcher"), str(HERE / "launcher.c")],
                   check=True)
    paths["launcher"] = str(out / "launcher")
    for name, flags in C_BUILDS.items():
        exe = out / f"program-{name}"
        if subprocess.run([cc, "-O2", *flags, "-o", str(exe), str(src)],
                          capture_output=True).returncode == 0:
            paths[name] = str(exe)
    return paths


def host_programs():
    """(id, path) of the installed programs to check: the interpreter running the tests
    (its real file: a wrapper script would be run by binfmt_script), /bin/true (a
    symlinked directory on merged-/usr systems), the dynamic loader run as the program
    (ET_DYN without interpreter: top-down, its break at ELF_ET_DYN_BASE),
    /usr/bin/python3, node and java (symlinks to their real files on Debian)."""
    progs = [("python3", os.path.realpath(sys.executable)), ("true", "/bin/true"),
             ("ld.so", "/lib64/ld-linux-x86-64.so.2" if os.path.exists(
                 "/lib64/ld-linux-x86-64.so.2") else None)]
    for name in ("/usr/bin/python3", "node", "java"):
        path = shutil.which(name)
        progs.append((name.lstrip("/").replace("/", "-"), path))
    return progs


def kernel_exec(built, path, argv, env=ENV, syscalls=(), stack_rlimit=None):
    """(results, maps, smaps, status) of `path` at its exec stop, after it made
    `syscalls` ("NR,ARG,..." in hex, launcher.c -s) there. The environment and the stack
    limit are the program's alone (launcher.c -E, -l); an exec that fails raises its
    OSError."""
    args = [built["launcher"], "-E"]
    if stack_rlimit is not None:
        args += ["-l", "unlimited" if stack_rlimit == resource.RLIM_INFINITY
                 else str(stack_rlimit)]
    for call in syscalls:
        args += ["-s", call]
    env_block = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())
    r = subprocess.run([*args, "--", path, *argv[1:]], input=env_block,
                       capture_output=True)
    out = r.stdout.decode()
    if r.returncode == 3:
        code = int(out.split()[1])
        raise OSError(code, os.strerror(code))
    assert r.returncode == 0, r.stderr
    parts = out.split("----\n")
    results = [int(x, 16) for x in parts.pop(0).split()] if syscalls else []
    maps, smaps, status = parts
    return results, maps, smaps, procfs.parse_status(status)


def assert_same(kernel_text, sim_text):
    assert sim_text.splitlines() == kernel_text.splitlines()


def check_program(built, path, argv=None, env=ENV, stack_rlimit=None):
    argv = argv or [path, "x"]
    _, maps, smaps, status = kernel_exec(built, path, argv, env, stack_rlimit=stack_rlimit)
    options = {} if stack_rlimit is None else {
        "stack_rlimit": resource.RLIM_INFINITY if stack_rlimit == resource.RLIM_INFINITY
        else stack_rlimit}
    mm = ptengine.System().execve(path, argv, envp=env, **options)
    assert_same(maps, mm.maps())
    assert_same(smaps, mm.smaps())
    sim = mm.status()
    for key in ("VmSize", "VmRSS", "RssAnon", "RssFile", "VmData", "VmStk", "VmPTE"):
        assert sim[key] == status[key], key
    # The gate is in maps but no VMA of the mm.
    assert mm.map_count == len(maps.splitlines()) - 1
    # The initial break, as brk(0) made by the stopped program tells it (a second run:
    # the call leaves a private copy of the entry page, which smaps would count).
    (start_brk,), _, _, _ = kernel_exec(built, path, argv, env, syscalls=["c,0"],
                                        stack_rlimit=stack_rlimit)
    assert mm.start_brk == mm.brk(0) == start_brk
    mm.check()
    return mm, maps


@pytest.mark.parametrize("name", list(C_BUILDS))
def test_c_program(built, name):
    """A PIE at 0x555555554000, a non-PIE at its link address, a static program without
    interpreter and a static PIE (placed top-down, its break at ELF_ET_DYN_BASE), and
    both kinds of PIE with 2 MiB segment alignment, and a PIE asking for an executable
    stack: each segment, the holes between them, the bss past the file (its own anonymous
    VMA), ld.so, the vDSO, [stack] (rwx for the last) and [vsyscall] as the kernel has
    them."""
    if name not in built:
        pytest.skip(f"cc cannot link a {name} program here"
                    + (" (no libc.a: install libc6-dev's static library)"
                       if "static" in name else ""))
    mm, maps = check_program(built, built[name])
    entries = procfs.parse_maps(maps)
    bss = [e for e in entries if e.file is None and not e.name]
    assert bss, "the 300 kB bss is an anonymous VMA of its own"
    if name.endswith("-2M"):
        own = [e for e in entries if e.file is not None and e.file.path == built[name]]
        assert all(b.start > a.end for a, b in zip(own, own[1:])), "holes stay unmapped"
    if name == "execstack":
        assert [e.perms for e in entries if e.name == "[stack]"] == ["rwxp"]
    if not name.startswith("static-pie"):
        assert mm.start_brk == bss[-1].end      # a static PIE's break is elsewhere


@pytest.mark.parametrize("name,path", host_programs(), ids=[n for n, _ in host_programs()])
def test_host_program(built, name, path):
    if path is None:
        pytest.skip(f"{name} is not installed")
    check_program(built, path)


@pytest.mark.parametrize("env_bytes", [3900, 5000, 100_000])
def test_stack_grows_with_the_environment(built, env_bytes):
    """The strings decide where [stack] starts: one page of them and 128 KiB below, then
    more pages as the environment grows (one variable may hold up to 128 KiB)."""
    env = dict(ENV, BIG="x" * env_bytes)
    _, maps = check_program(built, built["pie"] if "pie" in built else "/bin/true", env=env)
    stack = [e for e in procfs.parse_maps(maps) if e.name == "[stack]"][0]
    assert stack.size > 32 * P + env_bytes


@pytest.mark.parametrize("limit", [16 * MiB, 512 * MiB, resource.RLIM_INFINITY],
                         ids=["16M", "512M", "unlimited"])
def test_stack_rlimit_moves_mmap_base(built, limit):
    """mmap_base() keeps the stack limit plus the guard gap free below the stack (at least
    128 MiB, at most 5/6 of the address space): ld.so and the vDSO move with it."""
    check_program(built, "/bin/true", stack_rlimit=limit)


def outcome(call):
    """The maps text a successful exec leaves, or the errno it failed with."""
    try:
        return call()
    except OSError as e:
        return errno.errorcode[e.errno]


@pytest.mark.parametrize("limit_kib,env_bytes", [(64, 10), (64, 60_000), (64, 100_000),
                                                 (100, 100_000), (129, 126_000),
                                                 (256, 126_000)])
def test_small_stack_limits(built, limit_kib, env_bytes):
    """Under a small RLIMIT_STACK the strings may still take 128 KiB (ARG_MAX), but the
    stack VMA holding them may not pass the limit (E2BIG), and [stack] is no bigger than
    the limit unless the strings already made it so."""
    limit, env = limit_kib << 10, dict(ENV, BIG="x" * env_bytes)
    path = built.get("pie", "/bin/true")
    kernel = outcome(lambda: kernel_exec(built, path, [path], env, stack_rlimit=limit)[1])
    sim = outcome(lambda: ptengine.System().execve(path, [path], envp=env,
                                                   stack_rlimit=limit).maps())
    assert sim == kernel


def test_errors_match_the_kernel(built, tmp_path):
    """What exec refuses: a missing file, a directory, a file without execute permission,
    something that is no ELF and no script (with the execute bit), and one string longer
    than MAX_ARG_STRLEN (32 pages)."""
    text = tmp_path / "text"
    text.write_text("hello\n")
    noexec = tmp_path / "noexec"
    noexec.write_bytes(Path("/bin/true").read_bytes())
    os.chmod(text, 0o755)
    os.chmod(noexec, 0o644)
    cases = [(str(tmp_path / "missing"), ENV), (str(tmp_path), ENV), (str(text), ENV),
             ("/bin/true", dict(ENV, BIG="x" * (32 * P)))]
    if os.geteuid() != 0:            # root may execute anything with an x bit, none here
        cases.append((str(noexec), ENV))
    for path, env in cases:
        kernel = outcome(lambda: kernel_exec(built, path, [path], env)[1])
        sim = outcome(lambda: ptengine.System().execve(path, [path], envp=env).maps())
        assert sim == kernel and kernel in ("ENOENT", "EACCES", "ENOEXEC", "E2BIG"), path


def test_open_gives_the_host_files_identity(tmp_path):
    """system.open(): one inode per real path (symlinks resolved), with the host file's
    size, device and inode; an unknown path is an empty file of its own."""
    system = ptengine.System()
    f = system.open("/bin/true")
    st = os.stat("/bin/true")
    assert f.path == os.path.realpath("/bin/true")
    assert (f.size, f.ino, f.dev) == (st.st_size, st.st_ino,
                                      (os.major(st.st_dev), os.minor(st.st_dev)))
    assert system.open(os.path.realpath("/bin/true")).inode is f.inode
    other = system.open("/nonexistent/lib/libfoo.so")
    assert other.path == "/nonexistent/lib/libfoo.so" and other.size == 0
    other.truncate(5 * P)
    assert system.open("/nonexistent/lib/libfoo.so").size == 5 * P
    with pytest.raises(TypeError):
        system.open(3)


def test_fork_keeps_the_gate(built):
    """A child of an exec'd process shows [vsyscall] too (it is the architecture's)."""
    mm = ptengine.System().execve("/bin/true")
    child = mm.fork()
    assert child.maps() == mm.maps()
    assert child.maps().splitlines()[-1].endswith("[vsyscall]")
    child.exit()


def test_readme_example_runs():
    """The README's exec example: python3's layout, and the heap beside its data."""
    text = (HERE.parent.parent / "README.md").read_text()
    block = re.search(r"## Processes from real programs\n+```python\n(.*?)```", text,
                      re.S).group(1)
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("/usr/bin/python3 is not installed")
    namespace = {"pt": ptengine}
    exec(compile(block, "README.md", "exec"), namespace)
    mm = namespace["mm"]
    names = [e.name for e in procfs.parse_maps(mm.maps())]
    assert {"[vvar]", "[vvar_vclock]", "[vdso]", "[stack]"} <= set(names)
    assert names.count("[heap]") == 1 and names[-1] == "[vsyscall]"
    heap = mm.find_vma(mm.start_brk)
    assert (heap.start, heap.end) == (mm.start_brk, mm.start_brk + 4 * P)
