// Non-variadic wrappers for system calls Swift cannot reach: see sluice_sys.h.
#define _GNU_SOURCE
#include "sluice_sys.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <malloc.h>

long sluice_mbind(void *addr, unsigned long length, int mode, const unsigned long *nodemask,
                  unsigned long maxnode, unsigned int flags) {
#ifdef SYS_mbind
    return syscall(SYS_mbind, addr, length, mode, nodemask, maxnode, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

long sluice_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
                          unsigned long flags) {
#ifdef SYS_get_mempolicy
    return syscall(SYS_get_mempolicy, mode, nodemask, maxnode, addr, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

// Sets large enough for every CPU number the kernel can hand out.
static int highest_cpu(const int *cpus, int count) {
    int most = 0;
    for (int i = 0; i < count; i++) {
        if (cpus[i] > most) most = cpus[i];
    }
    return most;
}

int sluice_set_thread_affinity(const int *cpus, int count) {
    if (count <= 0) return EINVAL;
    int slots = highest_cpu(cpus, count) + 1;
    cpu_set_t *set = CPU_ALLOC(slots);
    if (set == NULL) return ENOMEM;
    size_t size = CPU_ALLOC_SIZE(slots);
    CPU_ZERO_S(size, set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] >= 0) CPU_SET_S(cpus[i], size, set);
    }
    int rc = pthread_setaffinity_np(pthread_self(), size, set);
    CPU_FREE(set);
    return rc;
}

int sluice_get_thread_affinity(int *cpus, int capacity) {
    // Grow the set until the kernel's mask fits (EINVAL means too small).
    for (int slots = 1024; slots <= (1 << 20); slots *= 2) {
        cpu_set_t *set = CPU_ALLOC(slots);
        if (set == NULL) return -ENOMEM;
        size_t size = CPU_ALLOC_SIZE(slots);
        CPU_ZERO_S(size, set);
        int rc = pthread_getaffinity_np(pthread_self(), size, set);
        if (rc == EINVAL) {
            CPU_FREE(set);
            continue;
        }
        if (rc != 0) {
            CPU_FREE(set);
            return -rc;
        }
        int n = 0;
        for (int cpu = 0; cpu < slots; cpu++) {
            if (CPU_ISSET_S(cpu, size, set)) {
                if (n < capacity) cpus[n] = cpu;
                n++;
            }
        }
        CPU_FREE(set);
        return n;
    }
    return -EINVAL;
}

long sluice_fstatfs_type(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -1;
    return (long)fs.f_type;
}

int sluice_open_tmpfile(const char *dir) {
#ifdef O_TMPFILE
    return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#else
    errno = EOPNOTSUPP;
    return -1;
#endif
}

int sluice_set_mmap_threshold(int bytes) {
    return mallopt(M_MMAP_THRESHOLD, bytes);
}
