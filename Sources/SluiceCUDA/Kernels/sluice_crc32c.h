// sluice_crc32c.h: the crc32c opcode (CRC32COp): the CRC-32C of a chunk,
// computed by the whole block.
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include "sluice_protocol.h"
#include "sluice_abi.h"

// Many threads per chunk, combined with the CRC shift operator (CRC32C.swift:
// the register after A||B is reg(A) * x^(8|B|) mod P xor reg0(B), where reg0
// starts from 0). The chunk is an unaligned head (< 16 bytes), V 16-byte
// vectors, and a tail (< 16 bytes). Thread t takes vectors t, t + 256,
// t + 512, ... (coalesced loads, four in flight) and keeps
//   acc = acc * x^(8*4096) xor reg0(vector)
// (consecutive vectors of one thread are 4096 bytes apart), so at the end acc
// is its vectors' share of reg0(all vectors) up to a factor x^(128 d), d =
// vectors after its last one (0..255). The block xors acc * x^(128 d) over
// its threads, and thread 0 joins head, vectors and tail:
//   reg = f(0xFFFFFFFF, head) * x^(8*16V) xor R_v, then the tail bytes,
// and stores ~reg (the finished CRC-32C; 0 for an empty chunk).
// reg0 of 16 bytes needs no chain: it is the xor of T[15 - i][byte i] (T[k]:
// the register after one byte and k zero bytes), sixteen independent
// lookups; multiplying by the constant x^(8*4096) is four lookups.

// a * b mod P, reflected (bit 31 is x^0), as CRC32C.multiply.
__device__ __forceinline__ unsigned sluice_gf_multiply(unsigned a, unsigned b) {
    unsigned product = 0u;
    for (unsigned i = 0u; i < 32u; ++i) {
        if (a & 0x80000000u) {
            product ^= b;
        }
        b = (b & 1u) ? (b >> 1) ^ SLUICE_CRC_POLY : b >> 1;
        a <<= 1;
    }
    return product;
}

// x^(8n) mod P from the powers x^(2^k) (pow[k]), as CRC32C.xToThe8n.
__device__ __forceinline__ unsigned sluice_x8n(const unsigned* pow, unsigned long long n) {
    unsigned result = 0x80000000u;
    unsigned k = 3u;
    while (n != 0ull) {
        if (n & 1ull) {
            result = sluice_gf_multiply(result, pow[k]);
        }
        n >>= 1;
        ++k;
    }
    return result;
}

// Fills the crc tables of the dynamic shared memory; the whole block, once.
__device__ void sluice_crc_tables(unsigned char* smem) {
    const unsigned tid = threadIdx.x;
    unsigned* slices = (unsigned*)(smem + SLUICE_SM_CRC_SLICES);
    unsigned* shift = (unsigned*)(smem + SLUICE_SM_CRC_SHIFT);
    unsigned* xd = (unsigned*)(smem + SLUICE_SM_CRC_XD);
    unsigned* pow = (unsigned*)(smem + SLUICE_SM_CRC_POW);
    unsigned c = tid;
    for (unsigned b = 0u; b < 8u; ++b) {
        c = (c & 1u) ? (c >> 1) ^ SLUICE_CRC_POLY : c >> 1;
    }
    slices[tid] = c;
    if (tid == 0u) {
        unsigned x = 0x40000000u;   // x^1
        for (unsigned k = 0u; k < 64u; ++k) {
            pow[k] = x;
            x = sluice_gf_multiply(x, x);
        }
    }
    __syncthreads();
    for (unsigned k = 1u; k < 16u; ++k) {
        const unsigned previous = slices[(k - 1u) * 256u + tid];
        slices[k * 256u + tid] = (previous >> 8) ^ slices[previous & 0xFFu];
        __syncthreads();
    }
    // shift[k][v] = (v << 8k) * x^(8*4096); x^(8*4096) = x^(2^15).
    const unsigned x4096 = pow[15];
    for (unsigned k = 0u; k < 4u; ++k) {
        shift[k * 256u + tid] = sluice_gf_multiply(tid << (8u * k), x4096);
    }
    // xd[d] = x^(128 d) = product of x^(2^(j+7)) over the set bits j of d.
    unsigned f = 0x80000000u;
    for (unsigned j = 0u; j < 8u; ++j) {
        if (tid & (1u << j)) {
            f = sluice_gf_multiply(f, pow[j + 7u]);
        }
    }
    xd[tid] = f;
    __syncthreads();
}

__device__ __forceinline__ unsigned sluice_crc_bytes4(const unsigned* t, unsigned w, unsigned base) {
    return t[(base + 3u) * 256u + (w & 0xFFu)] ^ t[(base + 2u) * 256u + ((w >> 8) & 0xFFu)]
         ^ t[(base + 1u) * 256u + ((w >> 16) & 0xFFu)] ^ t[base * 256u + (w >> 24)];
}

// reg0 of 16 bytes: byte i (of 16) goes through T[15 - i].
__device__ __forceinline__ unsigned sluice_crc_vector(const unsigned* t, uint4 v) {
    return sluice_crc_bytes4(t, v.x, 12u) ^ sluice_crc_bytes4(t, v.y, 8u)
         ^ sluice_crc_bytes4(t, v.z, 4u) ^ sluice_crc_bytes4(t, v.w, 0u);
}

__device__ __forceinline__ unsigned sluice_crc_shift4096(const unsigned* shift, unsigned acc) {
    return shift[acc & 0xFFu] ^ shift[256u + ((acc >> 8) & 0xFFu)]
         ^ shift[512u + ((acc >> 16) & 0xFFu)] ^ shift[768u + (acc >> 24)];
}

// The finished CRC-32C of `length` bytes at `bytes` (mapped host memory),
// valid in thread 0; every thread of the block must call it.
__device__ unsigned sluice_crc32c(
    const unsigned char* bytes, unsigned length, unsigned char* smem, unsigned* reduce, unsigned char* ends)
{
    const unsigned tid = threadIdx.x;
    const unsigned* slices = (const unsigned*)(smem + SLUICE_SM_CRC_SLICES);
    const unsigned* shift = (const unsigned*)(smem + SLUICE_SM_CRC_SHIFT);
    const unsigned* xd = (const unsigned*)(smem + SLUICE_SM_CRC_XD);
    const unsigned* pow = (const unsigned*)(smem + SLUICE_SM_CRC_POW);
    unsigned head = (unsigned)((16u - ((unsigned)(unsigned long long)bytes & 15u)) & 15u);
    if (head > length) {
        head = length;
    }
    const uint4* vectors = (const uint4*)(bytes + head);
    const unsigned vectorCount = (length - head) >> 4;
    // The unaligned head and tail (under 16 bytes each), one byte per thread.
    const unsigned tailStart = head + (vectorCount << 4);
    if (tid < head) {
        ends[tid] = __ldcv(bytes + tid);
    } else if (tid >= 16u && tid < 16u + (length - tailStart)) {
        ends[tid] = __ldcv(bytes + tailStart + (tid - 16u));
    }
    unsigned acc = 0u;
    unsigned i = tid;
    for (; i + 3u * SLUICE_BLOCK_THREADS < vectorCount; i += 4u * SLUICE_BLOCK_THREADS) {
        const uint4 a = __ldcv(vectors + i);
        const uint4 b = __ldcv(vectors + i + SLUICE_BLOCK_THREADS);
        const uint4 c = __ldcv(vectors + i + 2u * SLUICE_BLOCK_THREADS);
        const uint4 d = __ldcv(vectors + i + 3u * SLUICE_BLOCK_THREADS);
        acc = sluice_crc_shift4096(shift, acc) ^ sluice_crc_vector(slices, a);
        acc = sluice_crc_shift4096(shift, acc) ^ sluice_crc_vector(slices, b);
        acc = sluice_crc_shift4096(shift, acc) ^ sluice_crc_vector(slices, c);
        acc = sluice_crc_shift4096(shift, acc) ^ sluice_crc_vector(slices, d);
    }
    for (; i < vectorCount; i += SLUICE_BLOCK_THREADS) {
        acc = sluice_crc_shift4096(shift, acc) ^ sluice_crc_vector(slices, __ldcv(vectors + i));
    }
    // This thread's share, moved to the end of the vectors: its last vector is
    // i - 256 (when it had one), followed by vectorCount - i + 255 vectors.
    unsigned share = 0u;
    if (tid < vectorCount) {
        share = sluice_gf_multiply(acc, xd[vectorCount - 1u - (i - SLUICE_BLOCK_THREADS)]);
    }
    for (unsigned o = 16u; o != 0u; o >>= 1) {
        share ^= __shfl_xor_sync(SLUICE_FULL_MASK, share, o);
    }
    if ((tid & 31u) == 0u) {
        reduce[tid >> 5] = share;
    }
    __syncthreads();
    unsigned crc = 0u;
    if (tid == 0u) {
        unsigned vectorsReg = 0u;
        for (unsigned w = 0u; w < SLUICE_WARPS; ++w) {
            vectorsReg ^= reduce[w];
        }
        unsigned reg = 0xFFFFFFFFu;
        for (unsigned k = 0u; k < head; ++k) {
            reg = (reg >> 8) ^ slices[(reg ^ ends[k]) & 0xFFu];
        }
        reg = sluice_gf_multiply(reg, sluice_x8n(pow, (unsigned long long)vectorCount * 16ull)) ^ vectorsReg;
        for (unsigned k = 0u; k < length - tailStart; ++k) {
            reg = (reg >> 8) ^ slices[(reg ^ ends[16u + k]) & 0xFFu];
        }
        crc = ~reg;
    }
    __syncthreads();   // `reduce` may be reused
    return crc;
}

#endif  // SLUICE_CRC32C_H
