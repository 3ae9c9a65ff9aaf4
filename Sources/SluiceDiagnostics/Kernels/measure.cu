// The measurement kernels of `sluice bench` (CUDA C++, compiled at run time by
// NVRTC, only when a bench measures the driver directly): baselines the
// megakernel is compared with, not part of it, so the production kernel
// source does not carry them.
//
// They reuse the megakernel's constants and memory helpers (SLUICE_BLOCK_THREADS,
// sluice_load_u32, sluice_count_vector, ...): the program includes
// megakernel.cu, which the host hands to NVRTC as a header of that name,
// with the sluice_*.h headers it includes in turn (CUDAMeasurements.swift;
// scripts/check-kernel.py compiles it the same way).
#include "megakernel.cu"

// An empty kernel, for measuring launch + synchronize latency.
extern "C" __global__ void sluice_empty() {}

// The host -> GPU -> host round trip through flags in mapped host memory: one
// thread spins on `ping` (word 0) and echoes each new value to `pong` (word
// 32, another cache line). `mode` adds dependent steps before the echo, so
// the difference to mode 0 is their cost: 1, a read of another mapped word
// (word 64, which the host keeps 0); 2, two dependent reads (word 64, then a
// word whose address depends on it: what a dispatch needs at least, the
// payload after the acquire and then the chunk); 3, a system-scope
// compare-and-swap on word 64 (0 -> 0, so it succeeds); 4, a 64-bit
// system-scope atomicAdd of 0 on words 66..67; 5, a store to word 48 and a
// system fence before the echo (the release a slot's results need before its
// DONE); 6, after each echo the kernel also stores to word 8, in the ping's
// own cache line (as the megakernel stores a slot's status in the line it
// polls), and polls with volatile loads; 7, the same polling with ld.cv.
// The echo waits for the atomic's
// result but does not include it; the result is stored in words 40..41 so the
// host can check it (both words it acts on are 0). 0xFFFFFFFF ends the kernel.
struct SluicePingParams {
    unsigned long long flags;   // device address of at least 128 words of zeroed mapped host memory
    unsigned long long mode;
};

extern "C" __global__ void sluice_pingpong(const SluicePingParams p) {
    if (threadIdx.x != 0u || blockIdx.x != 0u) {
        return;
    }
    unsigned* flags = (unsigned*)p.flags;
    // The host zeroes the page before the launch and may store the first
    // value before this thread runs: start from 0, never from a first read
    // (which could already see that value and then wait for another forever).
    unsigned last = 0u;
    for (;;) {
        unsigned v;
        if (p.mode == 7ull) {
            asm volatile("ld.global.cv.u32 %0, [%1];" : "=r"(v) : "l"(flags) : "memory");
        } else {
            v = sluice_load_u32(flags);
        }
        if (v == last) {
            continue;
        }
        if (v == 0xFFFFFFFFu) {
            break;
        }
        last = v;
        unsigned extra = 0u;
        if (p.mode == 1ull) {
            extra = sluice_load_u32(flags + 64);
        } else if (p.mode == 2ull) {
            extra = sluice_load_u32(flags + 64);
            extra = sluice_load_u32(flags + 96 + (extra & 1u));
        } else if (p.mode == 3ull) {
            const unsigned old = atomicCAS_system(flags + 64, 0u, 0u);
            if (old != 0u) {
                sluice_store_u32(flags + 40, old);
            }
        } else if (p.mode == 4ull) {
            const unsigned long long old = atomicAdd_system((unsigned long long*)(flags + 66), 0ull);
            if (old != 0ull) {
                sluice_store_u64((unsigned long long*)(flags + 40), old);
            }
        } else if (p.mode == 5ull) {
            sluice_store_u32(flags + 48, v);
            __threadfence_system();
        }
        sluice_store_u32(flags + 32, v + extra);
        __threadfence_system();
        if (p.mode == 6ull || p.mode == 7ull) {
            sluice_store_u32(flags + 8, v);
        }
    }
}

// The count opcode the way a user would write it for one chunk already copied
// to device memory: a grid-stride loop, per-warp shared histograms, and global
// atomics into a zeroed 258-word result (the same layout as the opcode:
// bytes, newlines, 256 bins). Launch with SLUICE_BLOCK_THREADS threads.
struct SluiceChunkParams {
    unsigned long long data;     // device memory, 16-byte aligned
    unsigned long long length;   // bytes
    unsigned long long out;      // 258 u32 words of device memory, zeroed
    unsigned long long reserved;
};

extern "C" __global__ void __launch_bounds__(SLUICE_BLOCK_THREADS)
sluice_count_chunk(const SluiceChunkParams p)
{
    __shared__ unsigned histogram[SLUICE_WARPS][256];
    const unsigned tid = threadIdx.x;
    for (unsigned b = tid; b < SLUICE_WARPS * 256u; b += SLUICE_BLOCK_THREADS) {
        (&histogram[0][0])[b] = 0u;
    }
    __syncthreads();
    unsigned* h = histogram[tid >> 5];
    const unsigned char* bytes = (const unsigned char*)p.data;
    const unsigned long long vectorCount = p.length >> 4;
    const uint4* vectors = (const uint4*)bytes;
    const unsigned long long stride = (unsigned long long)gridDim.x * SLUICE_BLOCK_THREADS;
    for (unsigned long long i = (unsigned long long)blockIdx.x * SLUICE_BLOCK_THREADS + tid; i < vectorCount; i += stride) {
        sluice_count_vector(h, vectors[i]);
    }
    if (blockIdx.x == 0u) {
        const unsigned long long done = vectorCount << 4;
        if (tid < p.length - done) {
            atomicAdd(h + bytes[done + tid], 1u);
        }
    }
    __syncthreads();
    unsigned total = 0u;
    for (unsigned w = 0u; w < SLUICE_WARPS; ++w) {
        total += histogram[w][tid];
    }
    unsigned* out = (unsigned*)p.out;
    if (total != 0u) {
        atomicAdd(out + 2u + tid, total);
        if (tid == 0x0Au) {
            atomicAdd(out + 1, total);
        }
    }
    if (blockIdx.x == 0u && tid == 0u) {
        atomicAdd(out, (unsigned)p.length);
    }
}
