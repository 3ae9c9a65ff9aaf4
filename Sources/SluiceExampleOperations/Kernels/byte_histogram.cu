// byte_histogram: 256 counters per chunk, one per byte value.
// Block-cooperative: each warp counts into its own 256 counters in the
// scratch shared memory (8 warps x 256 x 4 bytes = SLUICE_OP_SCRATCH_BYTES),
// then thread t sums counter t over the warps and writes result word t.
#include "sluice_operation.h"

__device__ __forceinline__ void byte_histogram_word(unsigned* bins, unsigned word) {
    atomicAdd(bins + (word & 0xFFu), 1u);
    atomicAdd(bins + ((word >> 8) & 0xFFu), 1u);
    atomicAdd(bins + ((word >> 16) & 0xFFu), 1u);
    atomicAdd(bins + (word >> 24), 1u);
}

__device__ void byte_histogram(const SluiceOpContext& c) {
    unsigned* warpBins = (unsigned*)c.scratch + (threadIdx.x >> 5) * 256u;
    const unsigned vectors = c.ownBytes >> 4;
    for (unsigned v = threadIdx.x; v < vectors; v += SLUICE_OP_THREADS) {
        const uint4 q = sluice_op_load_v4(c, v << 4);
        byte_histogram_word(warpBins, q.x);
        byte_histogram_word(warpBins, q.y);
        byte_histogram_word(warpBins, q.z);
        byte_histogram_word(warpBins, q.w);
    }
    for (unsigned i = (vectors << 4) + threadIdx.x; i < c.ownBytes; i += SLUICE_OP_THREADS) {
        atomicAdd(warpBins + sluice_op_load_u8(c, i), 1u);
    }
    __syncthreads();
    const unsigned* bins = (const unsigned*)c.scratch;
    unsigned total = 0u;
    for (unsigned w = 0u; w < SLUICE_OP_THREADS / 32u; ++w) {
        total += bins[w * 256u + threadIdx.x];
    }
    sluice_op_write(c, threadIdx.x, total);
}
