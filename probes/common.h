/* common.h: shared helpers for the ptengine kernel probes (raw syscalls, reporting). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define P 4096UL
#define MB (1UL << 20)
#define GB (1UL << 30)
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
#define SYS_mseal_ 462
#define SYS_process_madvise_ 440
#define SYS_pidfd_open_ 434
#define SYS_mlock2_ 325
#define SYS_memfd_create_ 319

static inline long xmmap(unsigned long a, unsigned long l, long prot, long fl, long fd, unsigned long off)
{ return syscall(SYS_mmap, a, l, prot, fl, fd, off); }
static inline long xmunmap(unsigned long a, unsigned long l) { return syscall(SYS_munmap, a, l); }
static inline long xmprotect(unsigned long a, unsigned long l, long p) { return syscall(SYS_mprotect, a, l, p); }
static inline long xmadvise(unsigned long a, unsigned long l, long adv) { return syscall(SYS_madvise, a, l, adv); }
static inline long xmremap(unsigned long a, unsigned long ol, unsigned long nl, long fl, unsigned long na)
{ return syscall(SYS_mremap, a, ol, nl, fl, na); }
static inline long xmseal(unsigned long a, unsigned long l, long f) { return syscall(SYS_mseal_, a, l, f); }
static inline long xmlock2(unsigned long a, unsigned long l, long f) { return syscall(SYS_mlock2_, a, l, f); }
static inline long xmemfd(const char *n, long f) { return syscall(SYS_memfd_create_, n, f); }

/* Print "| desc | result |" for a raw syscall return. */
static void rep(const char *desc, long r, int e)
{
    if (r == -1)
        printf("| %s | -1 %s |\n", desc, strerrorname_np(e) ? strerrorname_np(e) : "?");
    else if ((unsigned long)r > 0xffffUL)
        printf("| %s | 0x%lx |\n", desc, (unsigned long)r);
    else
        printf("| %s | %ld |\n", desc, r);
    fflush(stdout);
}
#define R(desc, expr) do { errno = 0; long _r = (long)(expr); rep(desc, _r, errno); } while (0)

/* Print the /proc/self/maps lines that intersect [lo,hi). */
static void maps_range(const char *prefix, unsigned long lo, unsigned long hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && e > lo && s < hi)
            { line[strcspn(line, "\n")] = 0; printf("%s`%s` | |\n", prefix, line); }
    }
    fclose(f);
    fflush(stdout);
}

/* Return the VmFlags line of the smaps entry that starts at addr (static buffer). */
static const char *vmflags_of(unsigned long addr)
{
    static char out[512];
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    out[0] = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2)
            in = (s == addr);
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            strncpy(out, line + 8, sizeof out - 1);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    }
    fclose(f);
    return out;
}

/* Count VMAs overlapping [lo,hi). */
static int nvmas(unsigned long lo, unsigned long hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx", &s, &e) == 2 && e > lo && s < hi)
            n++;
    }
    fclose(f);
    return n;
}

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') { v = atol(line + n + 1); break; }
    fclose(f);
    return v;
}

/* A fresh 1 GiB-separated arena for each experiment, far from everything else. */
static unsigned long arena_next = 0x100000000000UL;
static unsigned long arena(void) { unsigned long a = arena_next; arena_next += 4 * GB; return a; }
static unsigned long anon_at(unsigned long a, unsigned long len, int prot, int extra)
{
    long r = xmmap(a, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | extra, -1, 0);
    if (r == -1) { perror("anon_at"); exit(1); }
    return r;
}
