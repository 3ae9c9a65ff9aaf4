// sluice_count.h: the count opcode (CountOp): a chunk's bytes counted into
// the block's per-warp histograms.
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_COUNT_H
#define SLUICE_COUNT_H

#include "sluice_abi.h"

__device__ __forceinline__ void sluice_count_word(unsigned* h, unsigned w) {
    atomicAdd(h + (w & 0xFFu), 1u);
    atomicAdd(h + ((w >> 8) & 0xFFu), 1u);
    atomicAdd(h + ((w >> 16) & 0xFFu), 1u);
    atomicAdd(h + (w >> 24), 1u);
}

__device__ __forceinline__ void sluice_count_vector(unsigned* h, uint4 v) {
    sluice_count_word(h, v.x);
    sluice_count_word(h, v.y);
    sluice_count_word(h, v.z);
    sluice_count_word(h, v.w);
}

// The whole block counts `length` bytes of mapped host memory at `bytes` into
// its per-warp histograms: a scalar head up to 16-byte alignment, 16-byte
// loads (four in flight per thread), a scalar tail. `ld.global.cv`: never a
// cached copy of a reused buffer (see the top of megakernel.cu).
__device__ __forceinline__ void sluice_count(const unsigned char* bytes, unsigned length, unsigned* h) {
    const unsigned tid = threadIdx.x;
    unsigned head = (unsigned)((16u - ((unsigned)(unsigned long long)bytes & 15u)) & 15u);
    if (head > length) {
        head = length;
    }
    if (tid < head) {
        atomicAdd(h + __ldcv(bytes + tid), 1u);
    }
    const uint4* vectors = (const uint4*)(bytes + head);
    const unsigned vectorCount = (length - head) >> 4;
    unsigned i = tid;
    for (; i + 3u * SLUICE_BLOCK_THREADS < vectorCount; i += 4u * SLUICE_BLOCK_THREADS) {
        const uint4 a = __ldcv(vectors + i);
        const uint4 b = __ldcv(vectors + i + SLUICE_BLOCK_THREADS);
        const uint4 c = __ldcv(vectors + i + 2u * SLUICE_BLOCK_THREADS);
        const uint4 d = __ldcv(vectors + i + 3u * SLUICE_BLOCK_THREADS);
        sluice_count_vector(h, a);
        sluice_count_vector(h, b);
        sluice_count_vector(h, c);
        sluice_count_vector(h, d);
    }
    for (; i < vectorCount; i += SLUICE_BLOCK_THREADS) {
        sluice_count_vector(h, __ldcv(vectors + i));
    }
    const unsigned done = head + (vectorCount << 4);
    if (tid < length - done) {
        atomicAdd(h + __ldcv(bytes + done + tid), 1u);
    }
}

#endif  // SLUICE_COUNT_H
