// xxh64_blocks: the chunk's 4096-byte blocks, each hashed with XXH64 seeded
// with its block number in the file; result: the sum of those hashes
// (mod 2^64) as two words. Thread t hashes blocks t, t + 256, ...; the block
// sum helper adds the threads' sums.
#include "sluice_operation.h"

#define XXH64_BLOCK_BYTES 4096u
#define XXH_P1 0x9E3779B185EBCA87ull
#define XXH_P2 0xC2B2AE3D27D4EB4Full
#define XXH_P3 0x165667B19E3779F9ull
#define XXH_P4 0x85EBCA77C2B2AE63ull
#define XXH_P5 0x27D4EB2F165667C5ull

__device__ __forceinline__ unsigned long long xxh_rotl(unsigned long long x, unsigned r) {
    return (x << r) | (x >> (64u - r));
}

__device__ __forceinline__ unsigned long long xxh_round(unsigned long long acc, unsigned long long input) {
    return xxh_rotl(acc + input * XXH_P2, 31u) * XXH_P1;
}

__device__ __forceinline__ unsigned long long xxh_merge(unsigned long long h, unsigned long long v) {
    return (h ^ xxh_round(0ull, v)) * XXH_P1 + XXH_P4;
}

__device__ __forceinline__ unsigned long long xxh_u64(const SluiceOpContext& c, unsigned at) {
    unsigned long long v = 0ull;
    for (unsigned b = 0u; b < 8u; ++b) {
        v |= (unsigned long long)sluice_op_load_u8(c, at + b) << (8u * b);
    }
    return v;
}

// XXH64 of the chunk's bytes [start, start + n) with `seed`.
__device__ unsigned long long xxh64_range(const SluiceOpContext& c, unsigned start, unsigned n, unsigned long long seed) {
    unsigned at = start;
    const unsigned end = start + n;
    unsigned long long h;
    if (n >= 32u) {
        unsigned long long v1 = seed + XXH_P1 + XXH_P2, v2 = seed + XXH_P2, v3 = seed, v4 = seed - XXH_P1;
        for (; at + 32u <= end; at += 32u) {
            // Stripes start 16-byte aligned (blocks are 4096-aligned in the chunk).
            const uint4 a = sluice_op_load_v4(c, at);
            const uint4 b = sluice_op_load_v4(c, at + 16u);
            v1 = xxh_round(v1, (unsigned long long)a.x | (unsigned long long)a.y << 32);
            v2 = xxh_round(v2, (unsigned long long)a.z | (unsigned long long)a.w << 32);
            v3 = xxh_round(v3, (unsigned long long)b.x | (unsigned long long)b.y << 32);
            v4 = xxh_round(v4, (unsigned long long)b.z | (unsigned long long)b.w << 32);
        }
        h = xxh_rotl(v1, 1u) + xxh_rotl(v2, 7u) + xxh_rotl(v3, 12u) + xxh_rotl(v4, 18u);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = seed + XXH_P5;
    }
    h += (unsigned long long)n;
    for (; at + 8u <= end; at += 8u) {
        h = xxh_rotl(h ^ xxh_round(0ull, xxh_u64(c, at)), 27u) * XXH_P1 + XXH_P4;
    }
    if (at + 4u <= end) {
        unsigned long long k = 0ull;
        for (unsigned b = 0u; b < 4u; ++b) {
            k |= (unsigned long long)sluice_op_load_u8(c, at + b) << (8u * b);
        }
        h = xxh_rotl(h ^ (k * XXH_P1), 23u) * XXH_P2 + XXH_P3;
        at += 4u;
    }
    for (; at < end; ++at) {
        h = xxh_rotl(h ^ ((unsigned long long)sluice_op_load_u8(c, at) * XXH_P5), 11u) * XXH_P1;
    }
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    h ^= h >> 32;
    return h;
}

__device__ void xxh64_blocks(const SluiceOpContext& c) {
    // Every thread takes part in the block sum below, so none returns early.
    const bool aligned = (c.fileOffset % XXH64_BLOCK_BYTES) == 0ull;
    if (!aligned && threadIdx.x == 0u) {
        sluice_op_fail(c, SLUICE_OP_FAULT_BAD_ARGUMENTS);
    }
    const unsigned blocks = aligned ? (c.ownBytes + XXH64_BLOCK_BYTES - 1u) / XXH64_BLOCK_BYTES : 0u;
    const unsigned long long firstBlock = c.fileOffset / XXH64_BLOCK_BYTES;
    unsigned long long sum = 0ull;
    for (unsigned k = threadIdx.x; k < blocks; k += SLUICE_OP_THREADS) {
        const unsigned start = k * XXH64_BLOCK_BYTES;
        const unsigned n = c.ownBytes - start < XXH64_BLOCK_BYTES ? c.ownBytes - start : XXH64_BLOCK_BYTES;
        sum += xxh64_range(c, start, n, firstBlock + k);
    }
    sum = sluice_op_block_sum_u64(sum);
    if (threadIdx.x == 0u) {
        sluice_op_write64(c, 0u, sum);
    }
}
