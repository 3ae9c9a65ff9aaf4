// sluice_scan.h: the scan opcode (ScanOp): every occurrence of the
// literals of an installed scan table in a chunk.
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_SCAN_H
#define SLUICE_SCAN_H

#include "sluice_protocol.h"
#include "sluice_abi.h"
#include "sluice_memory.h"
#include "sluice_worker.h"

// ScanOp.forEachMatch on the GPU: the block stages SLUICE_SCAN_TILE start
// positions of the chunk (plus SLUICE_SCAN_OVERLAP bytes after them, so most
// literals verify from shared memory) with 16-byte loads, and thread t checks
// positions t, t + 256, ... of the tile: key bytes, filter bit (the filter is
// copied to shared memory when it fits), bucket entries, key compare, byte
// verification (bytes past the staged ones come from the chunk itself). Every
// match adds to the thread's count; while records fit, a shared counter gives
// it a record index and the thread writes (position, pattern) to the result
// area. Records come out in no particular order; the host sorts.

// The installed table as a worker block last loaded it (static shared).
struct SluiceScanInfo {
    unsigned long long address;   // 0: none loaded
    unsigned words;
    unsigned ok;
    unsigned caseInsensitive;
    unsigned keyMask;
    unsigned hashBits;
    unsigned filterBits;
    unsigned filterWords;
    unsigned filterCached;
    unsigned secondProbe;
    unsigned filterOffset;
    unsigned bucketOffset;
    unsigned entriesOffset;
    unsigned patternOffset;
    unsigned blobOffset;
};

// ASCII case folding of four bytes at once, as ScanOp.foldWord.
__device__ __forceinline__ unsigned sluice_fold_word(unsigned x) {
    const unsigned low7 = x & 0x7F7F7F7Fu;
    const unsigned atLeastA = low7 + 0x3F3F3F3Fu;
    const unsigned pastZ = low7 + 0x25252525u;
    const unsigned upper = atLeastA & ~pastZ & ~x & 0x80808080u;
    return x | (upper >> 2);
}

__device__ __forceinline__ unsigned sluice_fold_byte(unsigned b) {
    return b - 0x41u < 26u ? b | 0x20u : b;
}

// Loads the job's table into `info` (and its filter into shared memory when
// it fits), unless it is the one loaded last. The whole block calls it.
// False when the image fails the checks the kernel relies on.
__device__ bool sluice_scan_load(const SluiceJob& job, SluiceScanInfo& info, unsigned char* smem) {
    const unsigned tid = threadIdx.x;
    if (info.address == job.table && info.words == job.tableWords) {
        return info.ok != 0u;
    }
    __syncthreads();
    if (tid == 0u) {
        const unsigned* t = (const unsigned*)job.table;
        const unsigned words = job.tableWords;
        unsigned h[SLUICE_SCAN_HEADER_TABLE_WORDS];
#pragma unroll
        for (unsigned k = 0u; k < SLUICE_SCAN_HEADER_TABLE_WORDS; ++k) {
            h[k] = __ldg(t + k);
        }
        const unsigned hashBits = h[SLUICE_SH_HASH_BITS];
        const unsigned filterBits = h[SLUICE_SH_FILTER_BITS];
        const unsigned filterWords = filterBits >= 5u && filterBits <= 26u ? (1u << filterBits) / 32u : 0u;
        const unsigned probes = h[SLUICE_SH_FILTER_PROBES];
        unsigned ok = h[SLUICE_SH_MAGIC] == SLUICE_SCAN_MAGIC && h[SLUICE_SH_TOTAL_WORDS] == words
            && (probes == 1u || probes == 2u)
            && hashBits >= 1u && hashBits <= 26u && filterBits >= 5u && filterBits <= 26u && filterBits >= hashBits
            && h[SLUICE_SH_FILTER_OFFSET] >= SLUICE_SCAN_HEADER_TABLE_WORDS
            && h[SLUICE_SH_FILTER_OFFSET] <= words && filterWords <= words - h[SLUICE_SH_FILTER_OFFSET];
        info.address = job.table;
        info.words = words;
        info.ok = ok ? 1u : 0u;
        info.caseInsensitive = h[SLUICE_SH_FLAGS] & SLUICE_SCAN_CASE_FLAG;
        info.keyMask = h[SLUICE_SH_KEY_LENGTH_MASK] & 0xFu;
        info.hashBits = hashBits;
        info.filterBits = filterBits;
        info.filterWords = filterWords;
        info.filterCached = filterWords <= SLUICE_FILTER_CACHE_WORDS ? 1u : 0u;
        info.secondProbe = probes == 2u ? 1u : 0u;
        info.filterOffset = h[SLUICE_SH_FILTER_OFFSET];
        info.bucketOffset = h[SLUICE_SH_BUCKET_OFFSET];
        info.entriesOffset = h[SLUICE_SH_ENTRIES_OFFSET];
        info.patternOffset = h[SLUICE_SH_PATTERN_OFFSET];
        info.blobOffset = h[SLUICE_SH_BLOB_OFFSET];
    }
    __syncthreads();
    if (info.ok && info.filterCached) {
        const unsigned* filter = (const unsigned*)job.table + info.filterOffset;
        unsigned* cache = (unsigned*)(smem + SLUICE_SM_FILTER);
        for (unsigned k = tid; k < info.filterWords; k += SLUICE_BLOCK_THREADS) {
            cache[k] = __ldg(filter + k);
        }
    }
    __syncthreads();
    return info.ok != 0u;
}

// Whether the filter's bits `a` and `b` are both set (b = a without a second
// probe): both words are loaded at once, from the shared-memory copy when the
// filter fits it, else from the table in global memory.
__device__ __forceinline__ bool sluice_filter_passes(
    unsigned a, unsigned b, const unsigned* filter, const unsigned* filterCache, bool cached)
{
    const unsigned wordA = cached ? filterCache[a >> 5] : __ldg(filter + (a >> 5));
    const unsigned wordB = cached ? filterCache[b >> 5] : __ldg(filter + (b >> 5));
    return ((wordA >> (a & 31u)) & (wordB >> (b & 31u)) & 1u) != 0u;
}

// Copies bytes [0, n) at `src` (mapped host memory) to `dst` (shared), where
// dst and src agree modulo 16: 16-byte loads, four in flight per thread, and
// single bytes at either end. The whole block.
__device__ __forceinline__ void sluice_stage(const unsigned char* src, unsigned n, unsigned char* dst) {
    const unsigned tid = threadIdx.x;
    unsigned head = (unsigned)((16u - ((unsigned)(unsigned long long)src & 15u)) & 15u);
    if (head > n) {
        head = n;
    }
    if (tid < head) {
        dst[tid] = __ldcv(src + tid);
    }
    const uint4* from = (const uint4*)(src + head);
    uint4* to = (uint4*)(dst + head);
    const unsigned vectors = (n - head) >> 4;
    unsigned i = tid;
    for (; i + 3u * SLUICE_BLOCK_THREADS < vectors; i += 4u * SLUICE_BLOCK_THREADS) {
        const uint4 a = __ldcv(from + i);
        const uint4 b = __ldcv(from + i + SLUICE_BLOCK_THREADS);
        const uint4 c = __ldcv(from + i + 2u * SLUICE_BLOCK_THREADS);
        const uint4 d = __ldcv(from + i + 3u * SLUICE_BLOCK_THREADS);
        to[i] = a;
        to[i + SLUICE_BLOCK_THREADS] = b;
        to[i + 2u * SLUICE_BLOCK_THREADS] = c;
        to[i + 3u * SLUICE_BLOCK_THREADS] = d;
    }
    for (; i < vectors; i += SLUICE_BLOCK_THREADS) {
        to[i] = __ldcv(from + i);
    }
    const unsigned done = head + (vectors << 4);
    if (tid < n - done) {
        dst[done + tid] = __ldcv(src + done + tid);
    }
}

// The scan opcode for the block's job; returns the completion word (valid in
// thread 0). `info` is loaded and ok.
__device__ unsigned sluice_scan(
    const SluiceParams& p, const SluiceJob& job, const SluiceScanInfo& info, unsigned char* smem,
    unsigned long long& foundShared, unsigned& storedShared)
{
    const unsigned tid = threadIdx.x;
    const unsigned char* chunk = (const unsigned char*)(p.data + job.bufferOffset);
    const unsigned length = job.length;
    const unsigned startLimit = job.argument0;
    const unsigned capacity = (job.argument1 & SLUICE_SCAN_COUNT_ONLY) ? 0u
        : (job.resultCapacity - SLUICE_SCAN_HEADER_WORDS) / 2u;
    unsigned* area = (unsigned*)(p.ring + p.resultsOffset) + job.resultOffset;
    const unsigned* table = (const unsigned*)job.table;
    const unsigned* filter = table + info.filterOffset;
    const unsigned* filterCache = (const unsigned*)(smem + SLUICE_SM_FILTER);
    const unsigned* bucketStart = table + info.bucketOffset;
    const unsigned* entries = table + info.entriesOffset;
    const unsigned* patternStart = table + info.patternOffset;
    const unsigned char* blob = (const unsigned char*)(table + info.blobOffset);
    unsigned char* tile = smem + SLUICE_SM_WORK;
    const bool fold = info.caseInsensitive != 0u;
    const unsigned keyMask = info.keyMask;
    const unsigned filterShift = 32u - info.filterBits;
    const unsigned hashShift = 32u - info.hashBits;
    const bool cached = info.filterCached != 0u;
    const bool secondProbe = info.secondProbe != 0u;

    if (tid == 0u) {
        foundShared = 0ull;
        storedShared = 0u;
    }
    unsigned long long found = 0ull;
    for (unsigned t0 = 0u; t0 < startLimit; t0 += SLUICE_SCAN_TILE) {
        const unsigned skew = (unsigned)((unsigned long long)(chunk + t0) & 15ull);
        const unsigned stagedEnd = length - t0 > SLUICE_SCAN_TILE + SLUICE_SCAN_OVERLAP
            ? t0 + SLUICE_SCAN_TILE + SLUICE_SCAN_OVERLAP : length;
        __syncthreads();   // the previous tile is no longer read
        sluice_stage(chunk + t0, stagedEnd - t0, tile + skew);
        __syncthreads();
        const unsigned positionEnd = startLimit - t0 > SLUICE_SCAN_TILE ? t0 + SLUICE_SCAN_TILE : startLimit;
        for (unsigned pos = t0 + tid; pos < positionEnd; pos += SLUICE_BLOCK_THREADS) {
            const unsigned o = skew + (pos - t0);
            const unsigned* words = (const unsigned*)(tile + (o & ~3u));
            unsigned raw = __funnelshift_r(words[0], words[1], (o & 3u) * 8u);
            const unsigned left = length - pos;
            const unsigned have = left < 4u ? left : 4u;
            if (have < 4u) {
                raw &= (1u << (8u * have)) - 1u;
            }
            const unsigned key4 = fold ? sluice_fold_word(raw) : raw;
            for (unsigned k = 1u; k <= have; ++k) {
                if (!(keyMask & (1u << (k - 1u)))) {
                    continue;
                }
                const unsigned key = k == 4u ? key4 : key4 & ((1u << (8u * k)) - 1u);
                const unsigned tagged = k == 4u ? key : key | (k << 24);
                const unsigned h = tagged * SLUICE_SCAN_HASH_MULTIPLIER;
                const unsigned h2 = secondProbe ? tagged * SLUICE_SCAN_SECOND_MULTIPLIER : h;
                if (!sluice_filter_passes(h >> filterShift, h2 >> filterShift, filter, filterCache, cached)) {
                    continue;
                }
                const unsigned bucket = h >> hashShift;
                const unsigned end = __ldg(bucketStart + bucket + 1u);
                for (unsigned e = __ldg(bucketStart + bucket); e < end; ++e) {
                    if (__ldg(entries + 2u * e) != key) {
                        continue;
                    }
                    const unsigned pattern = __ldg(entries + 2u * e + 1u);
                    const unsigned start = __ldg(patternStart + pattern);
                    const unsigned len = __ldg(patternStart + pattern + 1u) - start;
                    if ((len < 4u ? len : 4u) != k || len > left) {
                        continue;
                    }
                    unsigned j = k;
                    for (; j < len; ++j) {
                        const unsigned at = pos + j;
                        unsigned b = at < stagedEnd ? tile[skew + (at - t0)] : __ldcv(chunk + at);
                        if (fold) {
                            b = sluice_fold_byte(b);
                        }
                        if (b != __ldg(blob + start + j)) {
                            break;
                        }
                    }
                    if (j != len) {
                        continue;
                    }
                    ++found;
                    if (capacity != 0u && *(volatile unsigned*)&storedShared < capacity) {
                        const unsigned r = atomicAdd(&storedShared, 1u);
                        if (r < capacity) {
                            sluice_host_store_u32(p, area + SLUICE_SCAN_HEADER_WORDS + 2u * r, pos);
                            sluice_host_store_u32(p, area + SLUICE_SCAN_HEADER_WORDS + 2u * r + 1u, pattern);
                        }
                    }
                }
            }
        }
    }
    if (found != 0ull) {
        atomicAdd(&foundShared, found);
    }
    __syncthreads();
    unsigned completion = 0u;
    if (tid == 0u) {
        const unsigned long long total = foundShared;
        const unsigned stored = storedShared < capacity ? storedShared : capacity;
        sluice_host_store_u32(p, area, (unsigned)total);
        sluice_host_store_u32(p, area + 1, (unsigned)(total >> 32));
        sluice_host_store_u32(p, area + 2, stored);
        sluice_host_store_u32(p, area + 3, 0u);
        completion = SLUICE_SCAN_HEADER_WORDS + 2u * stored;
    }
    return completion;
}

#endif  // SLUICE_SCAN_H
