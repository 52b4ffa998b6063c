/* A program for tests/trace: threads, fork + exec, posix_spawn (a CLONE_VM child that
 * execs), guard idioms, and a read of its own /proc/self/maps in small pieces with a
 * mapping made between two reads (the kernel hands out text from two states). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void *worker(void *arg)
{
    char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 1, 4096);
    munmap(p, 1 << 20);
    return arg;
}

int main(void)
{
    long page = sysconf(_SC_PAGESIZE);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);

    /* A reservation opened piece by piece, and a guard page in the middle of a block. */
    char *r = mmap(NULL, 64 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    mprotect(r, 4 * page, PROT_READ | PROT_WRITE);
    r[0] = 1;
    mprotect(r + 4 * page, 4 * page, PROT_READ | PROT_WRITE);
    char *b = mmap(NULL, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b[0] = 1;
    mprotect(b + 8 * page, page, PROT_NONE);

    pid_t child = fork();
    if (child == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    waitpid(child, NULL, 0);
    char *argv[] = {"true", NULL};
    pid_t spawned;
    posix_spawn(&spawned, "/bin/true", NULL, NULL, argv, environ);
    waitpid(spawned, NULL, 0);

    int fd = open("/proc/self/maps", O_RDONLY);
    char buf[300];
    ssize_t n = read(fd, buf, sizeof buf);
    void *between = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long total = n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        total += n;
    close(fd);
    printf("%ld %p\n", total, between);
    return 0;
}
