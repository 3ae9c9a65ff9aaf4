// See include/CSluiceScanKernelTwin.h. Only the scan opcode's headers are
// compiled here; the guards below keep out the ones whose device code (PTX
// fences, mailbox polling) has no host meaning, and the definitions after
// them give the scan code what it uses from those.
#include "CSluiceScanKernelTwin.h"

#include <atomic>
#include <barrier>
#include <cstring>
#include <strings.h>
#include <thread>
#include <vector>

#define __device__
#define __forceinline__ inline

namespace {
struct ThreadIndex {
    unsigned x;
};
thread_local ThreadIndex threadIdx;
// Each emulated block's own barrier (tests run blocks concurrently).
thread_local std::barrier<>* blockBarrier;
}  // namespace

struct uint4 {
    unsigned x, y, z, w;
};

static inline void __syncthreads() { blockBarrier->arrive_and_wait(); }
template <typename T> static inline T __ldg(const T* p) { return *p; }
// The kernel's "don't cache" loads of chunk bytes are plain loads here.
template <typename T> static inline T __ldcv(const T* p) { return *p; }
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
    return (unsigned)((((unsigned long long)hi << 32) | lo) >> (shift & 31u));
}
static inline int __ffs(int x) { return ffs(x); }
static inline unsigned atomicAdd(unsigned* a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }
static inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}

// What the scan code takes from sluice_memory.h and sluice_worker.h (its
// job record, SluiceJob, is in sluice_abi.h).
#define SLUICE_MEMORY_H
#define SLUICE_WORKER_H
#include "../../Sources/SluiceCUDA/Kernels/sluice_abi.h"
static inline void sluice_host_store_u32(const SluiceParams&, unsigned* a, unsigned v) {
    __atomic_store_n(a, v, __ATOMIC_RELAXED);
}

#include "../../Sources/SluiceCUDA/Kernels/sluice_scan.h"

void sluice_scan_kernel_twin_jobs(const SluiceTwinJob* jobs, size_t count, int64_t* completions)
{
    // Shared memory exactly as large as the launch's, 16-byte aligned, and
    // filled with junk, as a block finds it: a read of bytes the kernel did
    // not stage or load shows up as a wrong match, not as a zero. It and the
    // loaded table's info outlive each job, as in a persistent block.
    static_assert(SLUICE_DYNAMIC_SHARED_BYTES % 16u == 0u, "whole 16-byte units");
    std::vector<uint4> shared(SLUICE_DYNAMIC_SHARED_BYTES / 16u);
    std::memset(shared.data(), 0xA5, SLUICE_DYNAMIC_SHARED_BYTES);
    unsigned char* smem = (unsigned char*)shared.data();
    SluiceScanInfo info;
    std::memset(&info, 0, sizeof info);
    unsigned long long foundShared = 0;
    unsigned storedShared = 0;
    for (size_t j = 0; j < count; ++j) {
        completions[j] = -1;
    }
    std::barrier<> barrier(SLUICE_BLOCK_THREADS);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < SLUICE_BLOCK_THREADS; ++t) {
        threads.emplace_back([&, t] {
            threadIdx.x = t;
            blockBarrier = &barrier;
            for (size_t j = 0; j < count; ++j) {
                const SluiceTwinJob& twin = jobs[j];
                SluiceParams p;
                std::memset(&p, 0, sizeof p);
                p.data = (unsigned long long)twin.chunk;
                p.ring = (unsigned long long)twin.result;
                SluiceJob job;
                std::memset(&job, 0, sizeof job);
                job.table = (unsigned long long)twin.table;
                job.tableWords = (unsigned)twin.tableWords;
                job.length = twin.length;
                job.argument0 = twin.startLimit;
                job.argument1 = twin.flags;
                job.resultCapacity = twin.resultWords;
                if (sluice_scan_load(job, info, smem)) {
                    const unsigned c = sluice_scan(p, job, info, smem, foundShared, storedShared);
                    if (t == 0u) {
                        completions[j] = c;
                    }
                }
                __syncthreads();  // the worker loop's barrier before its next job
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
}

int64_t sluice_scan_kernel_twin(
    const uint32_t* table, size_t tableWords, const uint8_t* chunk, uint32_t length, uint32_t startLimit,
    uint32_t flags, uint32_t* result, uint32_t resultWords)
{
    const SluiceTwinJob job = {table, tableWords, chunk, length, startLimit, flags, result, resultWords};
    int64_t completion = -1;
    sluice_scan_kernel_twin_jobs(&job, 1, &completion);
    return completion;
}
