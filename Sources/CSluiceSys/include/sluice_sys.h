#ifndef SLUICE_SYS_H
#define SLUICE_SYS_H
#include <stddef.h>

// System calls Swift cannot make itself. mbind and get_mempolicy have no
// glibc wrapper (libnuma has them, but it is not installed everywhere and
// Sluice loads nothing it does not need), and syscall(2) is variadic, which
// Swift cannot call. Thread affinity needs the CPU_SET macros, which Swift
// cannot expand. Each function is a thin, non-variadic wrapper: it returns
// what the kernel returned (-1 with errno set on failure).

/// Memory policy modes (from <linux/mempolicy.h>).
enum {
    SLUICE_MPOL_DEFAULT = 0,
    SLUICE_MPOL_PREFERRED = 1,
    SLUICE_MPOL_BIND = 2,
};

/// get_mempolicy flags (from <linux/mempolicy.h>).
enum {
    SLUICE_MPOL_F_NODE = 1,
    SLUICE_MPOL_F_ADDR = 2,
};

/// mbind(2): sets the policy of the pages in [addr, addr + length) to
/// `mode` over the nodes in `nodemask` (`maxnode` bits). 0 or -1/errno.
long sluice_mbind(void *addr, unsigned long length, int mode, const unsigned long *nodemask,
                  unsigned long maxnode, unsigned int flags);

/// get_mempolicy(2). With SLUICE_MPOL_F_NODE | SLUICE_MPOL_F_ADDR, `*mode`
/// receives the node the page at `addr` lives on (the page is faulted in
/// if it was not yet). 0 or -1/errno.
long sluice_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
                          unsigned long flags);

/// Restricts the calling thread to the `count` CPUs in `cpus`
/// (pthread_setaffinity_np with a dynamically sized set). 0 or an errno.
int sluice_set_thread_affinity(const int *cpus, int count);

/// Writes up to `capacity` CPUs the calling thread may run on to `cpus`;
/// returns how many it may run on (possibly more than `capacity`), or -errno.
int sluice_get_thread_affinity(int *cpus, int capacity);

/// fstatfs(2)'s `f_type` (the filesystem's magic number) for `fd`, or -1/errno
/// (<sys/statfs.h> is not in Swift's Glibc module).
long sluice_fstatfs_type(int fd);

/// open(2) of a new unnamed regular file in `dir` (O_TMPFILE | O_RDWR |
/// O_CLOEXEC, mode 0600: a macro whose value differs by architecture).
/// A descriptor or -1/errno.
int sluice_open_tmpfile(const char *dir);

/// mallopt(M_MMAP_THRESHOLD, bytes): allocations of `bytes` or more are
/// mapped on their own and unmapped when freed (Swift's Glibc module has no
/// <malloc.h>). 1 on success, 0 on failure.
int sluice_set_mmap_threshold(int bytes);

#endif
