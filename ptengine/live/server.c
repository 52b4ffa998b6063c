/*
 * ptengine live server: a tiny process whose address space ptengine.live drives.
 *
 * ptengine.live.LiveMM never maps anything in the Python process. It starts this program,
 * which owns one real mm_struct, and sends it requests over a unix socket: one fixed-size
 * little-endian header (op, payload length, six u64 arguments), optionally followed by a
 * payload; the answer is one fixed-size header (result, errno, fault signal/si_code/si_addr,
 * payload length), optionally followed by a payload. /proc/PID/{maps,smaps,status,pagemap}
 * are read by the client; this program only makes syscalls and user-mode accesses.
 *
 * The file is laid out in three parts, so that benchmarks can reuse the first two:
 *   1. syscall layer   - one thin wrapper per syscall, returning the result or -errno;
 *   2. user accesses   - single reads, writes, read-modify-writes and instruction fetches,
 *                        with SIGSEGV/SIGBUS caught (sigsetjmp on an alternate stack);
 *   3. protocol        - the request loop.
 *
 * The server allocates nothing while it runs (no malloc, no stdio): every buffer is static,
 * so the only mappings that change are the ones the client asks for. The batch buffer is a
 * large static (bss) array for the same reason: a malloc'd one would be a new mapping, placed
 * where the client's next mmap(NULL) would land; the bss only costs the pages a batch uses.
 *
 * Usage: ptengine-live-server SOCKET_FD. At start it sets RLIMIT_STACK to 8 MiB and the
 * ADDR_NO_RANDOMIZE personality and re-executes itself, so that its layout is that of a
 * non-randomised x86-64 process (first top-down mmap below 0x7ffff7fff000).
 *
 * Built static where libc.a exists: its only mappings near the top are then [vvar] and
 * [vdso], which merge with nothing. (Built dynamic, the client fences ld.so's and libc's
 * mappings off with unmergeable PROT_NONE pages.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------ */
/* Constants the build machine's headers may predate (uapi values, Linux 6.18 x86-64).  */
/* ------------------------------------------------------------------------------------ */
#define NR_mseal 462
#define NR_process_madvise 440
#define NR_pidfd_open 434
#define NR_userfaultfd 323
#define NR_mlock2 325
#define PIDFD_SELF_THREAD (-10000)
#define PR_SET_VMA_ 0x53564d41
#define PR_SET_VMA_ANON_NAME_ 0
#define STACK_LIMIT (8UL << 20)
#define PAGE 4096UL

/* userfaultfd uapi (include/uapi/linux/userfaultfd.h) */
#define UFFD_API_ 0xAA
#define UFFD_FEATURE_SIGBUS_ (1ULL << 7)
#define UFFD_FEATURE_POISON_ (1ULL << 14)
#define UFFDIO_ 0xAA
struct uffd_range_ { uint64_t start, len; };
struct uffd_api_ { uint64_t api, features, ioctls; };
struct uffd_register_ { struct uffd_range_ range; uint64_t mode, ioctls; };
struct uffd_poison_ { struct uffd_range_ range; uint64_t mode; int64_t updated; };
#define UFFDIO_API_ _IOWR(UFFDIO_, 0x3F, struct uffd_api_)
#define UFFDIO_REGISTER_ _IOWR(UFFDIO_, 0x00, struct uffd_register_)
#define UFFDIO_UNREGISTER_ _IOR(UFFDIO_, 0x01, struct uffd_range_)
#define UFFDIO_POISON_ _IOWR(UFFDIO_, 0x08, struct uffd_poison_)
#define UFFDIO_REGISTER_MODE_MISSING_ 1

/* ==================================================================================== */
/* 1. Syscall layer: each returns the syscall's result, or -errno.                      */
/* ==================================================================================== */
static long sc_ret(long r) { return r == -1 ? -errno : r; }

static long sc_mmap(uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags, uint64_t fd,
                    uint64_t off)
{ return sc_ret(syscall(SYS_mmap, addr, len, prot, flags, fd, off)); }
static long sc_munmap(uint64_t addr, uint64_t len) { return sc_ret(syscall(SYS_munmap, addr, len)); }
static long sc_mprotect(uint64_t addr, uint64_t len, uint64_t prot)
{ return sc_ret(syscall(SYS_mprotect, addr, len, prot)); }
static long sc_madvise(uint64_t addr, uint64_t len, uint64_t advice)
{ return sc_ret(syscall(SYS_madvise, addr, len, advice)); }
static long sc_mremap(uint64_t old, uint64_t old_size, uint64_t new_size, uint64_t flags,
                      uint64_t new_addr)
{ return sc_ret(syscall(SYS_mremap, old, old_size, new_size, flags, new_addr)); }
static long sc_mlock(uint64_t addr, uint64_t len, uint64_t flags)
{
    /* mlock(2) when no flags are given, so that errno is the plain syscall's. */
    if (!flags)
        return sc_ret(syscall(SYS_mlock, addr, len));
    return sc_ret(syscall(NR_mlock2, addr, len, flags));
}
static long sc_munlock(uint64_t addr, uint64_t len) { return sc_ret(syscall(SYS_munlock, addr, len)); }
static long sc_mlockall(uint64_t flags) { return sc_ret(syscall(SYS_mlockall, flags)); }
static long sc_munlockall(void) { return sc_ret(syscall(SYS_munlockall)); }
static long sc_mseal(uint64_t addr, uint64_t len, uint64_t flags)
{ return sc_ret(syscall(NR_mseal, addr, len, flags)); }
/* brk(2) as the raw syscall: it returns the (possibly unchanged) break, never an error. */
static long sc_brk(uint64_t addr) { return syscall(SYS_brk, addr); }
static long sc_anon_name(uint64_t addr, uint64_t len, const char *name)
{ return sc_ret(syscall(SYS_prctl, PR_SET_VMA_, PR_SET_VMA_ANON_NAME_, addr, len, name)); }

/* process_madvise(2) on our own mm. PIDFD_SELF where the kernel knows it (6.15+), else a
 * pidfd of ourselves, opened per call so that a forked child never uses its parent's. */
static int pidfd_self_ok = -1;
static long sc_process_madvise(const struct iovec *iov, uint64_t vlen, uint64_t advice,
                               uint64_t flags)
{
    if (pidfd_self_ok < 0) {
        struct iovec none = { 0, 0 };
        long r = sc_ret(syscall(NR_process_madvise, PIDFD_SELF_THREAD, &none, 1, MADV_COLD, 0));
        pidfd_self_ok = r >= 0;
    }
    if (pidfd_self_ok)
        return sc_ret(syscall(NR_process_madvise, PIDFD_SELF_THREAD, iov, vlen, advice, flags));
    long pidfd = sc_ret(syscall(NR_pidfd_open, getpid(), 0));
    if (pidfd < 0)
        return pidfd;
    long r = sc_ret(syscall(NR_process_madvise, pidfd, iov, vlen, advice, flags));
    close((int)pidfd);
    return r;
}

/* userfaultfd: one context per process, made on first use. SIGBUS mode: a missing fault in
 * a registered range raises SIGBUS instead of waiting for a handler this server does not
 * have. A forked child must not use its parent's context (it names the parent's mm). */
static int uffd = -1;
static uint64_t uffd_features;
static long uffd_open(void)
{
    static const uint64_t wanted[] = { UFFD_FEATURE_SIGBUS_ | UFFD_FEATURE_POISON_,
                                       UFFD_FEATURE_SIGBUS_ };
    if (uffd >= 0)
        return uffd;
    for (unsigned i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        long fd = sc_ret(syscall(NR_userfaultfd, O_CLOEXEC | O_NONBLOCK));
        if (fd < 0)
            return fd;
        struct uffd_api_ api = { UFFD_API_, wanted[i], 0 };
        if (ioctl((int)fd, UFFDIO_API_, &api) == 0) {
            uffd = (int)fd;
            uffd_features = api.features;
            return uffd;
        }
        long err = -errno;
        close((int)fd);
        if (err != -EINVAL)
            return err;
    }
    return -EINVAL;
}
static long sc_uffd_register(uint64_t addr, uint64_t len, uint64_t mode)
{
    long fd = uffd_open();
    if (fd < 0)
        return fd;
    struct uffd_register_ reg = { { addr, len }, mode, 0 };
    if (ioctl((int)fd, UFFDIO_REGISTER_, &reg))
        return -errno;
    return (long)reg.ioctls;
}
static long sc_uffd_unregister(uint64_t addr, uint64_t len)
{
    long fd = uffd_open();
    if (fd < 0)
        return fd;
    struct uffd_range_ range = { addr, len };
    return ioctl((int)fd, UFFDIO_UNREGISTER_, &range) ? -errno : 0;
}
/* UFFDIO_POISON needs a registered range: register (missing mode), poison, unregister. */
static long sc_install_poison(uint64_t addr, uint64_t len)
{
    long r = uffd_open();
    if (r < 0)
        return r;
    if (!(uffd_features & UFFD_FEATURE_POISON_))
        return -EOPNOTSUPP;
    r = sc_uffd_register(addr, len, UFFDIO_REGISTER_MODE_MISSING_);
    if (r < 0)
        return r;
    struct uffd_poison_ p = { { addr, len }, 0, 0 };
    r = ioctl(uffd, UFFDIO_POISON_, &p) ? -errno : 0;
    long u = sc_uffd_unregister(addr, len);
    return r < 0 ? r : u;
}

/* ==================================================================================== */
/* 2. User-mode accesses with SIGSEGV/SIGBUS caught.                                     */
/* ==================================================================================== */
enum access_kind { ACC_READ = 0, ACC_WRITE = 1, ACC_RMW = 2, ACC_EXEC = 3 };

struct fault { int32_t sig, code; uint64_t addr; };

static sigjmp_buf fault_env;
static volatile sig_atomic_t fault_armed;
static struct fault last_fault;
static unsigned char altstack[64 * 1024];

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    if (!fault_armed) {
        /* A fault outside an access we asked for is a server bug: die of it. */
        signal(sig, SIG_DFL);
        return;
    }
    fault_armed = 0;
    last_fault.sig = sig;
    last_fault.code = si->si_code;
    last_fault.addr = (uint64_t)(uintptr_t)si->si_addr;
    siglongjmp(fault_env, 1);
}

static void install_fault_handlers(void)
{
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0 };
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/*
 * One access at addr, then (for reads and writes) a copy of n - 1 further bytes of the same
 * page. Returns 0, or the signal with last_fault filled in. An instruction fetch calls addr:
 * the client only asks for one where no executable VMA covers addr, so the fetch always
 * faults and no code runs there.
 */
static int user_access(uintptr_t addr, int kind, unsigned char *buf, size_t n)
{
    if (sigsetjmp(fault_env, 1))
        return last_fault.sig;
    fault_armed = 1;
    switch (kind) {
    case ACC_READ:
        buf[0] = *(volatile unsigned char *)addr;
        if (n > 1)
            memcpy(buf + 1, (const void *)(addr + 1), n - 1);
        break;
    case ACC_WRITE:
        *(volatile unsigned char *)addr = buf[0];
        if (n > 1)
            memcpy((void *)(addr + 1), buf + 1, n - 1);
        break;
    case ACC_RMW:
        /* A write access that leaves the byte as it was. */
        __asm__ volatile("lock orb $0, (%0)" : : "r"(addr) : "memory");
        break;
    case ACC_EXEC:
        ((void (*)(void))addr)();
        break;
    }
    fault_armed = 0;
    return 0;
}

/* Copy [addr, addr + n) to or from buf (kind ACC_READ or ACC_WRITE) page by page, in
 * address order, like a CPU copying forwards: the first faulting page stops it, at its
 * first byte touched. */
static int user_range(uint64_t addr, uint64_t n, int kind, unsigned char *buf)
{
    while (n) {
        uint64_t chunk = PAGE - (addr & (PAGE - 1));
        if (chunk > n)
            chunk = n;
        int sig = user_access((uintptr_t)addr, kind, buf, chunk);
        if (sig)
            return sig;
        addr += chunk;
        n -= chunk;
        buf += chunk;
    }
    return 0;
}

/* Pages from the one holding addr to the one holding addr + size - 1, touched once each. */
static int user_touch(uint64_t addr, uint64_t size, int kind)
{
    if (!size)
        return 0;
    uint64_t first = addr & ~(PAGE - 1), last = (addr + size - 1) & ~(PAGE - 1);
    for (uint64_t p = first;; p += PAGE) {
        unsigned char scratch;
        int sig = user_access((uintptr_t)(p < addr ? addr : p), kind, &scratch, 1);
        if (sig || p == last)
            return sig;
    }
}

/* ==================================================================================== */
/* 3. Protocol.                                                                          */
/* ==================================================================================== */
enum op {
    OP_HELLO = 0,
    OP_MMAP = 1, OP_MUNMAP = 2, OP_MPROTECT = 3, OP_MADVISE = 4, OP_PROCESS_MADVISE = 5,
    OP_MREMAP = 6, OP_MLOCK = 7, OP_MUNLOCK = 8, OP_MLOCKALL = 9, OP_MUNLOCKALL = 10,
    OP_MSEAL = 11, OP_BRK = 12, OP_ANON_NAME = 13, OP_POISON = 14,
    OP_UFFD_REGISTER = 15, OP_UFFD_UNREGISTER = 16,
    OP_READ = 20, OP_WRITE = 21, OP_ACCESS = 22, OP_TOUCH = 23,
    OP_FORK = 30, OP_EXIT = 31, OP_RECV_FD = 32,
    OP_BATCH = 40,
};

struct request {            /* 56 bytes, little-endian */
    uint32_t op;
    uint32_t len;           /* payload bytes that follow */
    uint64_t a[6];
};
struct response {           /* 32 bytes, little-endian */
    int64_t ret;
    int32_t err;            /* errno when ret == -1 */
    int32_t sig;            /* fault signal, 0 if none */
    int32_t code;           /* fault si_code */
    uint32_t len;           /* payload bytes that follow */
    uint64_t addr;          /* fault si_addr */
};
_Static_assert(sizeof(struct request) == 56, "request layout");
_Static_assert(sizeof(struct response) == 32, "response layout");

/* Reads and writes of user memory go through the first CHUNK bytes of buf; a batch may use
 * all of it (its rows, tables and results: BATCH_BUF_SIZE, a limit live/process.py knows). */
#define CHUNK (256u * 1024u)
#define BUF_SIZE (128u << 20)
static unsigned char buf[BUF_SIZE] __attribute__((aligned(4096)));
static int conn = -1;
static int received_fd = -1;

static void die(const char *why)
{
    (void)!write(2, why, strlen(why));
    _exit(2);
}

/* All n bytes to or from the client; the client gone (EOF or an error) ends the server. */
static void transfer_all(void *p, size_t n, int sending)
{
    unsigned char *q = p;
    while (n) {
        ssize_t r = sending ? send(conn, q, n, MSG_NOSIGNAL) : read(conn, q, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            _exit(0);           /* client gone: nothing left to serve */
        }
        q += r;
        n -= (size_t)r;
    }
}

static void recv_all(void *p, size_t n) { transfer_all(p, n, 0); }
static void send_all(const void *p, size_t n) { transfer_all((void *)p, n, 1); }

/* Read a request header, keeping any descriptor sent with it (SCM_RIGHTS). */
static void recv_request(struct request *rq)
{
    size_t got = 0;
    while (got < sizeof(*rq)) {
        union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
        struct iovec iov = { (char *)rq + got, sizeof(*rq) - got };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
        ssize_t r = recvmsg(conn, &msg, 0);
        if (r == 0)
            _exit(0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            _exit(0);
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                if (received_fd >= 0)
                    close(received_fd);
                memcpy(&received_fd, CMSG_DATA(c), sizeof(int));
            }
        got += (size_t)r;
    }
}

/* Drain n payload bytes we are not going to use. */
static void skip_payload(uint64_t n)
{
    while (n) {
        size_t k = n > CHUNK ? CHUNK : (size_t)n;
        recv_all(buf, k);
        n -= k;
    }
}

static void respond(long r, const struct fault *f, const void *payload, uint32_t len)
{
    struct response rs = { 0 };
    if (r < 0 && r > -4096) {
        rs.ret = -1;
        rs.err = (int32_t)-r;
    } else {
        rs.ret = r;
    }
    if (f) {
        rs.sig = f->sig;
        rs.code = f->code;
        rs.addr = f->addr;
    }
    rs.len = len;
    send_all(&rs, sizeof(rs));
    if (len)
        send_all(payload, len);
}

static void respond_access(int sig)
{
    respond(0, sig ? &last_fault : NULL, NULL, 0);
}

/* The syscalls that take only integer arguments, shared by single requests and batches. */
static int simple_op(uint32_t op, const uint64_t *a, long *r)
{
    switch (op) {
    case OP_MMAP: *r = sc_mmap(a[0], a[1], a[2], a[3], a[4], a[5]); return 1;
    case OP_MUNMAP: *r = sc_munmap(a[0], a[1]); return 1;
    case OP_MPROTECT: *r = sc_mprotect(a[0], a[1], a[2]); return 1;
    case OP_MADVISE: *r = sc_madvise(a[0], a[1], a[2]); return 1;
    case OP_MREMAP: *r = sc_mremap(a[0], a[1], a[2], a[3], a[4]); return 1;
    case OP_MLOCK: *r = sc_mlock(a[0], a[1], a[2]); return 1;
    case OP_MUNLOCK: *r = sc_munlock(a[0], a[1]); return 1;
    case OP_MLOCKALL: *r = sc_mlockall(a[0]); return 1;
    case OP_MUNLOCKALL: *r = sc_munlockall(); return 1;
    case OP_MSEAL: *r = sc_mseal(a[0], a[1], a[2]); return 1;
    case OP_BRK: *r = sc_brk(a[0]); return 1;
    case OP_POISON: *r = sc_install_poison(a[0], a[1]); return 1;
    case OP_UFFD_REGISTER: *r = sc_uffd_register(a[0], a[1], a[2]); return 1;
    case OP_UFFD_UNREGISTER: *r = sc_uffd_unregister(a[0], a[1]); return 1;
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Batches: the rows of a ptengine.calls.CALL_DTYPE array, run with the rules of the
 * simulator's executor (ptengine/batch.pyx), row by row: REL bits add the result of row
 * `ref` to arguments (a failed ref row cancels the row), TOLERATE, RESTART, the stop modes.
 * The client has checked the rows (batch.check) before sending them.
 */
#define OP_IOVEC 41
#define FLAG_REL 0x3fu
#define FLAG_TOLERATE 0x40u
#define FLAG_RESTART 0x80u
enum stop_mode { STOP_NONE = 0, STOP_ERROR = 1, STOP_EXPECTED = 2 };
#define NO_FILE UINT64_MAX

struct call {               /* 56 bytes: CALL_DTYPE */
    uint8_t op;
    uint8_t flags;
    uint16_t mm;
    int32_t ref;
    uint64_t a[6];
};
_Static_assert(sizeof(struct call) == 56, "struct call is CALL_DTYPE");

/* A RESTART row whose process_madvise was issued more than once: the client counts the
 * extra calls and the ranges they carried, as the simulator's executor does. */
struct reissue { uint64_t row, calls, iovecs; };

struct batch {
    const struct call *rows;
    int64_t *results;
    struct reissue *reissued;    /* room for one per RESTART row */
    uint64_t n_reissued;
    const int64_t *expected;     /* STOP_EXPECTED only */
    const uint64_t *fds;         /* fd_index -> the server's descriptor */
    const char *const *names;    /* name_index -> NUL-terminated name */
};

/* A row's arguments, with the REL bits' additions; -ECANCELED if its ref row failed. */
static long resolve(const struct batch *b, const struct call *row, uint64_t *a)
{
    int64_t base = 0;
    if (row->ref >= 0) {
        base = b->results[row->ref];
        if (base < 0)
            return -ECANCELED;
    }
    for (int k = 0; k < 6; k++)
        a[k] = row->a[k] + ((row->flags >> k) & 1 ? (uint64_t)base : 0);
    return 0;
}

static struct iovec gather[1024];      /* UIO_MAXIOV: the kernel refuses longer vectors */

/* process_madvise of the n ranges in gather; with RESTART, the bytes a short count left
 * are re-issued (blocks.Batcher.flush()): the result is then all the bytes advised, or the
 * errno of a call that failed. More than UIO_MAXIOV ranges: EINVAL before any is read. */
static long batch_process_madvise(struct batch *b, uint64_t row, uint64_t n, uint64_t advice,
                                  uint64_t flags, int restart)
{
    uint64_t at = 0;
    long total = 0;
    for (int again = 0;; again = 1) {
        if (again) {
            if (!b->n_reissued || b->reissued[b->n_reissued - 1].row != row)
                b->reissued[b->n_reissued++] = (struct reissue){ row, 0, 0 };
            b->reissued[b->n_reissued - 1].calls++;
            b->reissued[b->n_reissued - 1].iovecs += n - at;
        }
        long r = sc_process_madvise(gather + at, n - at, advice, flags);
        if (r < 0 || !restart)
            return r;
        total += r;
        /* blocks.advance_iovecs(): skip the r bytes done, whole ranges then part of one */
        uint64_t done = (uint64_t)r;
        while (at < n && done >= gather[at].iov_len) {
            done -= gather[at].iov_len;
            at++;
        }
        if (at < n) {
            gather[at].iov_base = (char *)gather[at].iov_base + done;
            gather[at].iov_len -= done;
        }
        if (!r || at == n)
            return total;
    }
}

/* One row's call; the IOVEC rows after a PROCESS_MADVISE are its ranges. */
static long batch_call(struct batch *b, uint64_t i, const uint64_t *a)
{
    const struct call *row = &b->rows[i];
    switch (row->op) {
    case OP_MMAP:
        return sc_mmap(a[0], a[1], a[2], a[3], a[4] == NO_FILE ? NO_FILE : b->fds[a[4]], a[5]);
    case OP_ANON_NAME:
        return sc_anon_name(a[0], a[1], a[2] ? b->names[a[2] - 1] : NULL);
    case OP_TOUCH:
        return user_touch(a[0], a[1], a[2] ? ACC_RMW : ACC_READ);
    case OP_PROCESS_MADVISE:
        return batch_process_madvise(b, i, row->a[0], a[1], a[2], row->flags & FLAG_RESTART);
    }
    long r;
    return simple_op(row->op, a, &r) ? r : -ENOSYS;
}

static void run_batch(struct batch *b, uint64_t n, int mode)
{
    uint64_t i = 0;
    for (uint64_t k = 0; k < n; k++)
        b->results[k] = -ECANCELED;
    while (i < n) {
        const struct call *row = &b->rows[i];
        uint64_t a[6], width = 1 + (row->op == OP_PROCESS_MADVISE ? row->a[0] : 0);
        long r = resolve(b, row, a);
        for (uint64_t j = 1; j < width; j++) {
            uint64_t v[6];
            b->results[i + j] = resolve(b, &b->rows[i + j], v);
            if (b->results[i + j])
                r = -ECANCELED;
            else if (j <= 1024)
                gather[j - 1] = (struct iovec){ (void *)(uintptr_t)v[0], v[1] };
        }
        if (r == 0)
            r = batch_call(b, i, a);
        b->results[i] = r;
        if (mode == STOP_ERROR && r < 0 && !(row->flags & FLAG_TOLERATE))
            return;
        if (mode == STOP_EXPECTED && r != b->expected[i])
            return;
        i += width;
    }
}

/* A batch: a[0] rows, a[1] stop mode, a[2] files, a[3] names, a[4] bytes of names. The
 * payload: the rows, the expected results (STOP_EXPECTED), the files' descriptors (u64),
 * the names, each NUL-terminated. Answer: ret = nanoseconds spent in the loop; payload =
 * one i64 result per row, then the count of struct reissue records and the records. */
static void op_batch(const struct request *rq)
{
    uint64_t n = rq->a[0], mode = rq->a[1], n_fds = rq->a[2], n_names = rq->a[3];
    uint64_t rows = n * sizeof(struct call), expected = mode == STOP_EXPECTED ? n * 8 : 0;
    uint64_t tables = rows + expected + n_fds * 8 + rq->a[4], restarts = 0;
    uint64_t at = (tables + 7) & ~7ul, need = at + 8 * (n + 1 + n_names);
    if (mode > STOP_EXPECTED || tables != rq->len || n > BUF_SIZE || n_names > BUF_SIZE
            || need > BUF_SIZE) {
        skip_payload(rq->len);
        respond(-EINVAL, NULL, NULL, 0);
        return;
    }
    recv_all(buf, rq->len);
    struct batch b = {
        .rows = (const struct call *)buf,
        .expected = (const int64_t *)(buf + rows),
        .fds = (const uint64_t *)(buf + rows + expected),
    };
    for (uint64_t k = 0; k < n; k++)
        restarts += b.rows[k].op == OP_PROCESS_MADVISE && b.rows[k].flags & FLAG_RESTART;
    /* laid out after the payload: the names' pointers, the results, the reissue records */
    const char **names = (const char **)(buf + at);
    b.results = (int64_t *)(names + n_names);
    b.reissued = (struct reissue *)(b.results + n + 1);
    if (need + restarts * sizeof(struct reissue) > BUF_SIZE) {
        respond(-EINVAL, NULL, NULL, 0);
        return;
    }
    const char *p = (const char *)(b.fds + n_fds), *end = (const char *)buf + tables;
    for (uint64_t k = 0; k < n_names; k++) {
        names[k] = p;
        p += strnlen(p, (size_t)(end - p)) + 1;
        if (p > end) {
            respond(-EINVAL, NULL, NULL, 0);
            return;
        }
    }
    b.names = names;
    uint64_t t0 = now_ns();
    run_batch(&b, n, (int)mode);
    uint64_t t1 = now_ns();
    b.results[n] = (int64_t)b.n_reissued;
    respond((long)(t1 - t0), NULL, b.results,
            (uint32_t)((n + 1) * sizeof(int64_t) + b.n_reissued * sizeof(struct reissue)));
}

static void op_read(const struct request *rq)
{
    uint64_t addr = rq->a[0], n = rq->a[1];
    /* Fault every page in first, in order, so that a fault is reported before any data. */
    int sig = user_touch(addr, n, ACC_READ);
    if (sig) {
        respond_access(sig);
        return;
    }
    struct response rs = { 0 };
    rs.len = (uint32_t)n;
    send_all(&rs, sizeof(rs));
    while (n) {
        size_t k = n > CHUNK ? CHUNK : (size_t)n;
        if (user_range(addr, k, ACC_READ, buf))
            die("ptengine live server: page vanished while being read\n");
        send_all(buf, k);
        addr += k;
        n -= k;
    }
}

static void op_write(const struct request *rq)
{
    uint64_t addr = rq->a[0], n = rq->len;
    int sig = 0;
    while (n) {
        size_t k = n > CHUNK ? CHUNK : (size_t)n;
        recv_all(buf, k);
        if (!sig)
            sig = user_range(addr, k, ACC_WRITE, buf);
        addr += k;
        n -= k;
    }
    respond_access(sig);
}

static void op_process_madvise(const struct request *rq)
{
    /* a[0] = vlen as the caller gave it; the payload holds min(vlen, what fits) iovecs.
     * The kernel rejects vlen > UIO_MAXIOV before reading any, so the rest never matters. */
    if (rq->len > CHUNK || rq->len % sizeof(struct iovec)) {
        skip_payload(rq->len);
        respond(-EINVAL, NULL, NULL, 0);
        return;
    }
    recv_all(buf, rq->len);
    respond(sc_process_madvise((const struct iovec *)buf, rq->a[0], rq->a[1], rq->a[2]),
            NULL, NULL, 0);
}

static void op_anon_name(const struct request *rq)
{
    static char name[4096];
    if (rq->len >= sizeof(name)) {
        skip_payload(rq->len);
        respond(-EINVAL, NULL, NULL, 0);
        return;
    }
    recv_all(name, rq->len);
    name[rq->len] = 0;
    respond(sc_anon_name(rq->a[0], rq->a[1], rq->a[2] ? name : NULL), NULL, NULL, 0);
}

/*
 * fork(2) of this address space. The child answers on a new socket whose other end goes
 * back to the client. It is made with CLONE_PARENT, so that it is the client's child, not
 * ours: the client reaps every server itself, and none is orphaned when its "parent" ends
 * first. The mm is copied exactly as by fork (no CLONE_VM).
 */
static void op_fork(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
        respond(-errno, NULL, NULL, 0);
        return;
    }
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) {
        long err = -errno;
        close(sv[0]);
        close(sv[1]);
        respond(err, NULL, NULL, 0);
        return;
    }
    if (pid == 0) {
        close(conn);
        close(sv[0]);
        conn = sv[1];
        if (uffd >= 0) {
            close(uffd);
            uffd = -1;
        }
        return;
    }
    close(sv[1]);
    struct response rs = { .ret = pid };
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = { &rs, sizeof(rs) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &sv[0], sizeof(int));
    ssize_t r;
    do
        r = sendmsg(conn, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof(rs))
        _exit(0);
    close(sv[0]);
}

static void serve(void)
{
    for (;;) {
        struct request rq;
        recv_request(&rq);
        long r;
        switch (rq.op) {
        case OP_HELLO: {
            uint64_t info[2] = { (uint64_t)getpid(), (uint64_t)sc_brk(0) };
            respond(0, NULL, info, sizeof(info));
            break;
        }
        case OP_PROCESS_MADVISE: op_process_madvise(&rq); break;
        case OP_ANON_NAME: op_anon_name(&rq); break;
        case OP_READ: op_read(&rq); break;
        case OP_WRITE: op_write(&rq); break;
        case OP_ACCESS:
            /* one read, non-destructive write or instruction fetch at a[0] */
            if (rq.a[1] != ACC_READ && rq.a[1] != ACC_RMW && rq.a[1] != ACC_EXEC)
                respond(-EINVAL, NULL, NULL, 0);
            else
                respond_access(user_touch(rq.a[0], 1, (int)rq.a[1]));
            break;
        case OP_TOUCH: respond_access(user_touch(rq.a[0], rq.a[1], rq.a[2] ? ACC_RMW : ACC_READ)); break;
        case OP_FORK: op_fork(); break;
        case OP_EXIT:
            respond(0, NULL, NULL, 0);
            _exit(0);
        case OP_RECV_FD:
            respond(received_fd >= 0 ? received_fd : -EBADF, NULL, NULL, 0);
            received_fd = -1;
            break;
        case OP_BATCH: op_batch(&rq); break;
        default:
            skip_payload(rq.len);
            if (!simple_op(rq.op, rq.a, &r))
                r = -ENOSYS;
            respond(r, NULL, NULL, 0);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: ptengine-live-server SOCKET_FD\n");
    /* Re-execute once with the layout of a non-randomised process and an 8 MiB stack. */
    struct rlimit rl;
    int pers = personality(0xffffffff);
    getrlimit(RLIMIT_STACK, &rl);
    if (pers != -1 && (!(pers & ADDR_NO_RANDOMIZE) || rl.rlim_cur != STACK_LIMIT)) {
        if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= STACK_LIMIT)
            rl.rlim_cur = STACK_LIMIT;
        setrlimit(RLIMIT_STACK, &rl);
        if (personality((unsigned long)pers | ADDR_NO_RANDOMIZE) != -1)
            execv("/proc/self/exe", argv);
        /* Could not re-execute: serve with the layout we have. */
    }
    conn = 0;
    for (const char *p = argv[1]; *p; p++) {
        if (*p < '0' || *p > '9')
            die("ptengine live server: bad socket fd\n");
        conn = conn * 10 + (*p - '0');
    }
    signal(SIGPIPE, SIG_IGN);
    install_fault_handlers();

    serve();
    return 0;
}
