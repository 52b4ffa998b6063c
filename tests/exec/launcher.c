/* Start a program with ASLR off and stop it at its first instruction (the exec stop of
 * PTRACE_TRACEME), then print /proc/PID/maps, smaps and status as the kernel has them
 * there, separated by "----" lines.
 *
 *   launcher [-s NR[,ARG]...]... -- PROGRAM ARGS...
 *
 * Each -s first makes the stopped program make system call NR with up to six arguments
 * (all in hex), by pointing it at a `syscall` instruction written over its entry point and
 * single-stepping it, and prints each result (the raw return value, in hex) on one line
 * before the maps. The entry page becomes a private copy then: maps does not change,
 * smaps counts the copy. The environment is the launcher's own. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void dump(pid_t pid, const char *what)
{
    char path[64], buf[1 << 16];
    ssize_t n;
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); exit(1); }
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, n, stdout);
    close(fd);
}

struct call { unsigned long nr, a[6]; };

static unsigned long call_in(pid_t pid, const struct user_regs_struct *at, const struct call *c)
{
    struct user_regs_struct r = *at;
    int st;
    r.rax = c->nr;
    r.orig_rax = -1;
    r.rdi = c->a[0]; r.rsi = c->a[1]; r.rdx = c->a[2];
    r.r10 = c->a[3]; r.r8 = c->a[4]; r.r9 = c->a[5];
    if (ptrace(PTRACE_SETREGS, pid, 0, &r) || ptrace(PTRACE_SINGLESTEP, pid, 0, 0))
        { perror("ptrace"); exit(1); }
    waitpid(pid, &st, 0);
    if (!WIFSTOPPED(st) || ptrace(PTRACE_GETREGS, pid, 0, &r)) { perror("step"); exit(1); }
    return r.rax;
}

int main(int argc, char **argv)
{
    static struct call calls[256];
    int ncalls = 0, i = 1, st;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (strcmp(argv[i], "-s") || i + 1 >= argc || ncalls == 256)
            { fprintf(stderr, "bad argument %s\n", argv[i]); return 2; }
        char *p = argv[++i];
        struct call *c = &calls[ncalls++];
        c->nr = strtoul(p, &p, 16);
        for (int k = 0; k < 6 && *p == ','; k++)
            c->a[k] = strtoul(p + 1, &p, 16);
    }
    if (i + 1 >= argc) { fprintf(stderr, "usage: launcher [-s NR[,ARG]...]... -- PROGRAM ARGS...\n"); return 2; }
    char **prog = argv + i + 1;
    pid_t pid = fork();
    if (pid == 0) {
        personality(ADDR_NO_RANDOMIZE);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execve(prog[0], prog, environ);
        perror("execve");
        _exit(127);
    }
    waitpid(pid, &st, 0);
    if (!WIFSTOPPED(st)) { fprintf(stderr, "no exec stop\n"); return 1; }
    if (ncalls) {
        struct user_regs_struct regs;
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        long word = ptrace(PTRACE_PEEKTEXT, pid, regs.rip, 0);
        ptrace(PTRACE_POKETEXT, pid, regs.rip, (word & ~0xffffL) | 0x050f);
        for (int k = 0; k < ncalls; k++)
            printf("%lx\n", call_in(pid, &regs, &calls[k]));
        ptrace(PTRACE_POKETEXT, pid, regs.rip, word);
        printf("----\n");
    }
    dump(pid, "maps");
    printf("----\n");
    dump(pid, "smaps");
    printf("----\n");
    dump(pid, "status");
    fflush(stdout);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 0;
}
