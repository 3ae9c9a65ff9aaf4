// Start-up cost probe for the CUDA command path (run on the GPU machine):
// how long cuInit, the primary context, and each way of getting 512 MiB of
// pinned, GPU-mapped host memory take, and what releasing them costs.
// Build there: gcc -O2 -o /tmp/pinprobe bench/startup/pinprobe.c -I/usr/local/cuda/include -lcuda -lpthread
// Usage: pinprobe MODE MiB   MODE = hostalloc | register | thp-register | populate-register | split-register | leak
#include <cuda.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static double t0;
static void mark(const char* what) { fprintf(stderr, "%9.1f ms  %s\n", now_ms() - t0, what); }
#define CK(x) do { CUresult r_ = (x); if (r_ != CUDA_SUCCESS) { fprintf(stderr, "%s failed: %d\n", #x, r_); exit(1); } } while (0)

struct piece { CUcontext ctx; char* base; size_t bytes; };
static void* register_piece(void* arg) {
    struct piece* p = arg;
    CK(cuCtxSetCurrent(p->ctx));
    CK(cuMemHostRegister(p->base, p->bytes, CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_PORTABLE));
    return NULL;
}
static size_t populate_bytes;
static char* populated;
static void* populate(void* arg) {
    (void)arg;
    populated = mmap(NULL, populate_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return NULL;
}

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "hostalloc";
    size_t bytes = (size_t)(argc > 2 ? atoi(argv[2]) : 512) << 20;
    t0 = now_ms();
    pthread_t populator;
    int early = strcmp(mode, "populate-register") == 0;
    if (early) { populate_bytes = bytes; pthread_create(&populator, NULL, populate, NULL); }
    CK(cuInit(0)); mark("cuInit");
    CUdevice dev; CK(cuDeviceGet(&dev, 0));
    CUcontext ctx; CK(cuDevicePrimaryCtxRetain(&ctx, dev)); CK(cuCtxSetCurrent(ctx)); mark("primary context");
    void* host = NULL;
    if (strcmp(mode, "hostalloc") == 0 || strcmp(mode, "leak") == 0) {
        CK(cuMemHostAlloc(&host, bytes, CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE)); mark("cuMemHostAlloc");
    } else if (strcmp(mode, "register") == 0) {
        host = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); mark("mmap");
        CK(cuMemHostRegister(host, bytes, CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_PORTABLE)); mark("cuMemHostRegister");
    } else if (strcmp(mode, "thp-register") == 0) {
        char* whole = mmap(NULL, bytes + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        host = (void*)(((unsigned long)whole + (2u << 20) - 1) & ~((2ul << 20) - 1));
        int rc = madvise(host, bytes, MADV_HUGEPAGE); mark(rc == 0 ? "mmap + madvise(MADV_HUGEPAGE)" : "mmap (madvise refused)");
        CK(cuMemHostRegister(host, bytes, CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_PORTABLE)); mark("cuMemHostRegister (THP)");
        FILE* f = fopen("/proc/meminfo", "r"); char line[256];
        while (f && fgets(line, sizeof line, f)) if (strncmp(line, "AnonHugePages", 13) == 0) fprintf(stderr, "           %s", line);
        if (f) fclose(f);
    } else if (early) {
        pthread_join(populator, NULL); host = populated; mark("populated mmap joined");
        CK(cuMemHostRegister(host, bytes, CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_PORTABLE)); mark("cuMemHostRegister (populated)");
    } else if (strcmp(mode, "split-register") == 0) {
        host = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        enum { N = 8 };
        pthread_t th[N]; struct piece p[N];
        for (int i = 0; i < N; i++) { p[i] = (struct piece){ctx, (char*)host + i * (bytes / N), bytes / N}; pthread_create(&th[i], NULL, register_piece, &p[i]); }
        for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
        mark("cuMemHostRegister, 8 threads x 1/8");
    }
    CUdeviceptr d; CK(cuMemHostGetDevicePointer(&d, host, 0));
    fprintf(stderr, "           device pointer %s host pointer\n", (void*)d == host ? "==" : "!=");
    memset(host, 1, 4096);
    if (strcmp(mode, "leak") == 0) { mark("exit without releasing"); return 0; }
    if (strcmp(mode, "hostalloc") == 0) { CK(cuMemFreeHost(host)); mark("cuMemFreeHost"); }
    else if (strcmp(mode, "split-register") == 0) {
        for (int i = 0; i < 8; i++) CK(cuMemHostUnregister((char*)host + i * (bytes / 8)));
        munmap(host, bytes); mark("cuMemHostUnregister x8 + munmap");
    } else { CK(cuMemHostUnregister(host)); munmap(host, bytes); mark("cuMemHostUnregister + munmap"); }
    CK(cuDevicePrimaryCtxRelease(dev)); mark("primary context released");
    return 0;
}
