"""Host profiles: the sysctls and options of one kind of machine (mm/util.c, mm/Kconfig).

The simulator models Linux 6.18 on x86-64 with 4-level paging and 4 KiB pages (that part
is fixed: constants.py). What differs between machines running that kernel — sysctls,
build options, the size of RAM — is one `HostProfile`, named, so a run says which machine
it stands for. `System(profile=...)` takes one (the reference machine's by default), every
part of the simulator that depends on the host reads it from `system.profile`, and
`ptengine.live.host_profile()` reads the running kernel's, so a test or a comparison can
tell whether the host can check a figure made under a given profile.

Shipped profiles: `reference` (the project's machines) and `android` (an Android arm64
kernel's mm behaviour, laid over the x86-64 page tables the simulator has).
"""
import dataclasses
import operator

from .constants import DEFAULT_MAX_MAP_COUNT, PAGE_SIZE

THP_MODES = ("always", "madvise", "never")
# vm.overcommit_memory: OVERCOMMIT_GUESS and OVERCOMMIT_ALWAYS are simulated; strict
# accounting (2) would need every process's commit charge on the machine.
OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS, OVERCOMMIT_NEVER = 0, 1, 2
SIMULATED_OVERCOMMIT = (OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS)

# What each field is on a running Linux, for messages that name a difference.
SOURCES = {
    "memtotal_kb": "/proc/meminfo MemTotal",
    "swap_kb": "/proc/meminfo SwapTotal",
    "overcommit_memory": "/proc/sys/vm/overcommit_memory",
    "max_map_count": "/proc/sys/vm/max_map_count",
    "mmap_min_addr": "the effective mmap_min_addr (max of /proc/sys/vm/mmap_min_addr and "
                     "CONFIG_LSM_MMAP_MIN_ADDR)",
    "thp_enabled": "/sys/kernel/mm/transparent_hugepage/enabled",
    "anon_vma_name": "CONFIG_ANON_VMA_NAME",
    "memory_failure": "CONFIG_MEMORY_FAILURE",
    "maybe_guard": "VM_MAYBE_GUARD (smaps `gu`)",
    "soft_dirty": "CONFIG_MEM_SOFT_DIRTY",
    "root_dev": "the device of the root file system (stat(\"/\").st_dev)",
}


@dataclasses.dataclass(frozen=True)
class HostProfile:
    """One machine kind's mm-relevant settings. Frozen: a System's profile never changes."""
    name: str
    memtotal_kb: int          # RAM the overcommit heuristic compares one request with
    swap_kb: int              # swap space: added to RAM by the same heuristic
    overcommit_memory: int    # vm.overcommit_memory (0 guess, 1 always, 2 never)
    max_map_count: int        # vm.max_map_count: a System's default
    mmap_min_addr: int        # hints below it are raised to it; searches stay above it
    thp_enabled: str          # THP sysfs `enabled`: where anonymous faults may map 2 MiB
    anon_vma_name: bool       # prctl(PR_SET_VMA_ANON_NAME) works; without it, EINVAL
    memory_failure: bool      # a poisoned page faults BUS_MCEERR_AR (else BUS_ADRERR)
    maybe_guard: bool         # guard install flags the VMA VM_MAYBE_GUARD (6.19 semantics)
    soft_dirty: bool          # new VMAs get VM_SOFTDIRTY; pagemap reports bit 55
    root_dev: tuple           # (major, minor) of regular files in maps

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, f.type) or (f.type is int and isinstance(value, bool)):
                raise TypeError(f"HostProfile.{f.name} must be {f.type.__name__}, "
                                f"not {type(value).__name__}")
        if self.thp_enabled not in THP_MODES:
            raise ValueError(f"thp_enabled must be one of {', '.join(THP_MODES)}, "
                             f"not {self.thp_enabled!r}")
        if self.overcommit_memory not in (OVERCOMMIT_GUESS, OVERCOMMIT_ALWAYS,
                                          OVERCOMMIT_NEVER):
            raise ValueError(f"overcommit_memory must be 0, 1 or 2, "
                             f"not {self.overcommit_memory!r}")
        if len(self.root_dev) != 2 or not all(isinstance(x, int) for x in self.root_dev):
            raise ValueError(f"root_dev must be (major, minor), not {self.root_dev!r}")
        if self.mmap_min_addr < 0 or self.mmap_min_addr % PAGE_SIZE or \
                self.max_map_count < 0 or self.memtotal_kb <= 0 or self.swap_kb < 0:
            raise ValueError(f"profile {self.name!r}: sizes must be non-negative "
                             f"(mmap_min_addr page-aligned, RAM non-zero)")

    @property
    def totalram_pages(self):
        return self.memtotal_kb * 1024 // PAGE_SIZE

    @property
    def total_swap_pages(self):
        return self.swap_kb * 1024 // PAGE_SIZE

    def with_fields(self, **changes):
        """This profile with some fields changed; the name says which unless they match."""
        types = {f.name: f.type for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in types:
                raise TypeError(f"unknown host profile field {key!r} "
                                f"(fields: {', '.join(types)})")
            if types[key] is int:
                changes[key] = operator.index(value)
        changes = {k: v for k, v in changes.items() if getattr(self, k) != v}
        if not changes:
            return self
        name = changes.pop("name", None) or "%s (%s)" % (
            self.name, ", ".join(f"{k}={v!r}" for k, v in sorted(changes.items())))
        return dataclasses.replace(self, name=name, **changes)

    def differences(self, other, fields=None):
        """[(field, mine, other's)] for the fields (default: all but the name) that differ.
        MemTotal moves by a few hundred kB between boots of one machine (what firmware and
        the kernel reserve), so RAM sizes within 1% of each other count as the same."""
        names = fields or [f.name for f in dataclasses.fields(self) if f.name != "name"]
        out = []
        for k in names:
            mine, theirs = getattr(self, k), getattr(other, k)
            if k == "memtotal_kb" and abs(mine - theirs) * 100 <= max(mine, theirs):
                continue
            if mine != theirs:
                out.append((k, mine, theirs))
        return out


def describe(field, wanted, host):
    """A difference as a skip reason: what the host lacks or has, and the field."""
    source = SOURCES[field]
    if isinstance(wanted, bool):
        state = "lacks" if wanted else "has"
        return f"host {state} {source} (profile field {field})"
    return f"host has {field} = {host!r}, the profile {wanted!r} ({source})"


# The project's machines (Linux 6.18.44, x86-64, 24 GiB VMs), as read on them: see
# notes/kernel-probes.md §0 for the probes.
REFERENCE = HostProfile(
    name="reference",
    memtotal_kb=24684084,           # /proc/meminfo MemTotal (a few hundred kB less while
                                    # the machine runs: reservations; the heuristic only
                                    # decides requests near 24 GiB)
    swap_kb=0,                      # no swap device (CONFIG_SWAP=y, nothing in /proc/swaps)
    overcommit_memory=OVERCOMMIT_GUESS,     # /proc/sys/vm/overcommit_memory = 0
    max_map_count=DEFAULT_MAX_MAP_COUNT,    # /proc/sys/vm/max_map_count = 65530 (the default)
    mmap_min_addr=0x10000,          # vm.mmap_min_addr 4096, CONFIG_LSM_MMAP_MIN_ADDR 65536
    thp_enabled="madvise",          # /sys/kernel/mm/transparent_hugepage/enabled
    anon_vma_name=False,            # prctl(PR_SET_VMA_ANON_NAME) is EINVAL for every input
    memory_failure=False,           # a UFFDIO_POISON page faults BUS_ADRERR; no
                                    # /proc/sys/vm/memory_failure_recovery
    maybe_guard=True,               # smaps shows `gu` after MADV_GUARD_INSTALL (6.19's
                                    # VM_MAYBE_GUARD, backported)
    soft_dirty=False,               # no `sd` in VmFlags, pagemap bit 55 never set
    root_dev=(0xFE, 0x00),          # / is ext4 on /dev/vda, block device 254:0
)

# An Android device's kernel (GKI, arm64) as its mm layer behaves, on the simulator's
# x86-64 page tables (the workload models count VMAs and 4 KiB PTE tables either way).
ANDROID = HostProfile(
    name="android",
    memtotal_kb=8 << 20,            # an 8 GiB phone (MemTotal a little under on a device)
    swap_kb=4 << 20,                # zram swap, sized as a fraction of RAM by the device's
                                    # fstab (zramsize); Android always has swap
    overcommit_memory=OVERCOMMIT_GUESS,     # init.rc leaves the kernel default
    max_map_count=DEFAULT_MAX_MAP_COUNT,    # AOSP leaves the kernel default, 65530
    mmap_min_addr=0x8000,           # init.rc writes vm.mmap_min_addr 32768, and arm64 with
                                    # COMPAT has CONFIG_LSM_MMAP_MIN_ADDR 32768
    thp_enabled="madvise",          # GKI builds THP with the madvise default
    anon_vma_name=True,             # CONFIG_ANON_VMA_NAME=y: an Android feature first
                                    # (bionic names stacks, ART and malloc their heaps)
    memory_failure=False,           # GKI's arm64 defconfig leaves CONFIG_MEMORY_FAILURE off
    maybe_guard=True,               # the models ask what guard markers would do: the same
                                    # guard code as the reference kernel
    soft_dirty=False,               # arm64 has no soft-dirty bit (no HAVE_ARCH_SOFT_DIRTY)
    root_dev=(0xFD, 0x00),          # /system is a dm-verity device-mapper volume
)

PROFILES = {p.name: p for p in (REFERENCE, ANDROID)}


def get(profile):
    """A HostProfile from a profile or the name of a shipped one (None: the reference)."""
    if profile is None:
        return REFERENCE
    if isinstance(profile, HostProfile):
        return profile
    if isinstance(profile, str):
        try:
            return PROFILES[profile]
        except KeyError:
            raise ValueError(f"unknown host profile {profile!r}; shipped: "
                             f"{', '.join(PROFILES)}") from None
    raise TypeError(f"profile must be a HostProfile or a name, not {type(profile).__name__}")
