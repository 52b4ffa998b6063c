/* Start a program with ASLR off and stop it at its first instruction (the exec stop of
 * PTRACE_TRACEME), then print /proc/PID/maps, smaps and status as the kernel has them
 * there, separated by "----" lines.
 *
 *   launcher [-b ADDR]... -- PROGRAM ARGS...
 *
 * Each -b first makes the stopped program call brk(ADDR) (ADDR in hex; 0 asks for the
 * break), by pointing it at a `syscall` instruction written over its entry point and
 * single-stepping it, and prints each result in hex on one line before the maps. The
 * entry page becomes a private copy then: maps does not change, smaps counts the copy.
 * The environment is the launcher's own. */
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

static unsigned long brk_in(pid_t pid, const struct user_regs_struct *at, unsigned long addr)
{
    struct user_regs_struct r = *at;
    int st;
    r.rax = SYS_brk;
    r.orig_rax = -1;
    r.rdi = addr;
    if (ptrace(PTRACE_SETREGS, pid, 0, &r) || ptrace(PTRACE_SINGLESTEP, pid, 0, 0))
        { perror("ptrace"); exit(1); }
    waitpid(pid, &st, 0);
    if (!WIFSTOPPED(st) || ptrace(PTRACE_GETREGS, pid, 0, &r)) { perror("step"); exit(1); }
    return r.rax;
}

int main(int argc, char **argv)
{
    unsigned long brks[64];
    int nbrk = 0, i = 1, st;
    for (; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-b") && i + 1 < argc && nbrk < 64)
            brks[nbrk++] = strtoul(argv[++i], NULL, 16);
    if (i + 1 >= argc) { fprintf(stderr, "usage: launcher [-b ADDR]... -- PROGRAM ARGS...\n"); return 2; }
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
    if (nbrk) {
        struct user_regs_struct regs;
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        long word = ptrace(PTRACE_PEEKTEXT, pid, regs.rip, 0);
        ptrace(PTRACE_POKETEXT, pid, regs.rip, (word & ~0xffffL) | 0x050f);
        for (int k = 0; k < nbrk; k++)
            printf("%lx\n", brk_in(pid, &regs, brks[k]));
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
