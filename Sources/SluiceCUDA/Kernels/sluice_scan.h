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

// A tile position's long key lies within the staged overlap.
static_assert(SLUICE_SCAN_MAX_LONG_KEY_OFFSET + SLUICE_SCAN_LONG_KEY_BYTES + 4u <= SLUICE_SCAN_OVERLAP,
    "the long key fits the overlap");

// ScanOp.forEachMatch on the GPU: the block stages SLUICE_SCAN_TILE start
// positions of the chunk (plus SLUICE_SCAN_OVERLAP bytes after them, so most
// literals verify from shared memory) with 16-byte loads, and thread t takes
// the four start positions of tile words t, t + 256, ...: key bytes, then the
// filter bits of all four at once (both probes of the short filter for each
// key length, and of the long filter for the long key's eight bytes, at the
// table's long-key offset from the position; the filters are copied to
// shared memory when they fit), then for each candidate its key's bucket
// entries, check-word compare and byte verification (bytes past the staged
// ones come from the chunk itself). Every match adds to the
// thread's count; while records fit, a shared counter gives it a record
// index and the thread writes (position, pattern) to the result area.
// Records come out in no particular order; the host sorts.

// The installed table as a worker block last loaded it (static shared).
struct SluiceScanInfo {
    unsigned long long address;   // 0: none loaded
    unsigned words;
    unsigned ok;
    unsigned caseInsensitive;
    unsigned keyMask;
    unsigned hashBits;
    unsigned filterBits;          // 0: no short filter
    unsigned filterWords;
    unsigned longFilterBits;      // 0: no long filter
    unsigned longFilterWords;
    unsigned shortCached;         // the short filter is in shared memory (at word 0)
    unsigned longCached;          // the long one is, at word longCacheOffset
    unsigned longCacheOffset;     // after the short filter when that is cached, else 0
    unsigned longKeyOffset;       // bytes from a position to its long key (a multiple of 4)
    unsigned secondProbe;
    unsigned filterOffset;
    unsigned longFilterOffset;
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

// A filter section of 2^bits bits (bits 0: none) at word `offset` of a table
// of `words` words: its size in words, or false in `ok` when it cannot be.
__device__ __forceinline__ unsigned sluice_scan_filter_words(
    unsigned bits, unsigned offset, unsigned words, bool& ok)
{
    const unsigned size = bits >= 5u && bits <= 26u ? (1u << bits) / 32u : 0u;
    ok = ok && (bits == 0u || size != 0u) && offset >= SLUICE_SCAN_HEADER_TABLE_WORDS && offset <= words
        && size <= words - offset;
    return size;
}

// Thread 0: the header words the kernel relies on, checked, into `info`.
__device__ void sluice_scan_read_header(const SluiceJob& job, SluiceScanInfo& info) {
    const unsigned* t = (const unsigned*)job.table;
    const unsigned words = job.tableWords;
    unsigned h[SLUICE_SCAN_HEADER_TABLE_WORDS];
#pragma unroll
    for (unsigned k = 0u; k < SLUICE_SCAN_HEADER_TABLE_WORDS; ++k) {
        h[k] = __ldg(t + k);
    }
    const unsigned hashBits = h[SLUICE_SH_HASH_BITS];
    const unsigned probes = h[SLUICE_SH_FILTER_PROBES];
    const unsigned keyMask = h[SLUICE_SH_KEY_LENGTH_MASK];
    const unsigned longKeyOffset = h[SLUICE_SH_LONG_KEY_OFFSET];
    bool ok = h[SLUICE_SH_MAGIC] == SLUICE_SCAN_MAGIC && h[SLUICE_SH_TOTAL_WORDS] == words
        && (probes == 1u || probes == 2u) && hashBits >= 1u && hashBits <= 26u && keyMask <= 0xFu
        && (h[SLUICE_SH_FILTER_BITS] != 0u || keyMask == 0u)
        && longKeyOffset % 4u == 0u && longKeyOffset <= SLUICE_SCAN_MAX_LONG_KEY_OFFSET;
    const unsigned filterWords = sluice_scan_filter_words(h[SLUICE_SH_FILTER_BITS], h[SLUICE_SH_FILTER_OFFSET], words, ok);
    const unsigned longWords = sluice_scan_filter_words(
        h[SLUICE_SH_LONG_FILTER_BITS], h[SLUICE_SH_LONG_FILTER_OFFSET], words, ok);
    info.address = job.table;
    info.words = words;
    info.ok = ok ? 1u : 0u;
    info.caseInsensitive = h[SLUICE_SH_FLAGS] & SLUICE_SCAN_CASE_FLAG;
    info.keyMask = keyMask;
    info.hashBits = hashBits;
    info.filterBits = h[SLUICE_SH_FILTER_BITS];
    info.filterWords = filterWords;
    info.longFilterBits = h[SLUICE_SH_LONG_FILTER_BITS];
    info.longFilterWords = longWords;
    info.shortCached = filterWords <= SLUICE_FILTER_CACHE_WORDS ? 1u : 0u;
    info.longCacheOffset = info.shortCached ? filterWords : 0u;
    info.longCached = info.longCacheOffset + longWords <= SLUICE_FILTER_CACHE_WORDS ? 1u : 0u;
    info.longKeyOffset = longKeyOffset;
    info.secondProbe = probes == 2u ? 1u : 0u;
    info.filterOffset = h[SLUICE_SH_FILTER_OFFSET];
    info.longFilterOffset = h[SLUICE_SH_LONG_FILTER_OFFSET];
    info.bucketOffset = h[SLUICE_SH_BUCKET_OFFSET];
    info.entriesOffset = h[SLUICE_SH_ENTRIES_OFFSET];
    info.patternOffset = h[SLUICE_SH_PATTERN_OFFSET];
    info.blobOffset = h[SLUICE_SH_BLOB_OFFSET];
}

// Loads the job's table into `info` (and its filters into shared memory,
// the short one then the long one, as far as they fit), unless it is the
// one loaded last. The whole block calls it. False when the header fails the
// checks the filters rely on; the host validated the rest of the image
// (ScanTableView) before it installed the table.
__device__ bool sluice_scan_load(const SluiceJob& job, SluiceScanInfo& info, unsigned char* smem) {
    const unsigned tid = threadIdx.x;
    if (info.address == job.table && info.words == job.tableWords) {
        return info.ok != 0u;
    }
    __syncthreads();
    if (tid == 0u) {
        sluice_scan_read_header(job, info);
    }
    __syncthreads();
    unsigned* cache = (unsigned*)(smem + SLUICE_SM_FILTER);
    const unsigned* table = (const unsigned*)job.table;
    if (info.ok && info.shortCached) {
        for (unsigned k = tid; k < info.filterWords; k += SLUICE_BLOCK_THREADS) {
            cache[k] = __ldg(table + info.filterOffset + k);
        }
    }
    if (info.ok && info.longCached) {
        for (unsigned k = tid; k < info.longFilterWords; k += SLUICE_BLOCK_THREADS) {
            cache[info.longCacheOffset + k] = __ldg(table + info.longFilterOffset + k);
        }
    }
    __syncthreads();
    return info.ok != 0u;
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

// What matching reads, gathered once per slot.
struct SluiceScanWork {
    const unsigned char* chunk;
    unsigned length;
    unsigned capacity;            // records the area holds (0: count only)
    unsigned* area;
    const unsigned* shortFilter;  // the short filter: shared memory when it fits, else the table's
    const unsigned* longFilter;   // the long filter, likewise
    const unsigned* bucketStart;
    const unsigned* entries;
    const unsigned* patternStart;
    const unsigned char* blob;
    unsigned keyMask;
    unsigned filterShift;
    unsigned longFilterShift;     // 32 - its bits; 32 when there is no long filter
    unsigned longKeyWords;        // the long key's offset in words
    unsigned longMinimum;         // bytes of the shortest long literal: the offset + 8
    unsigned hashShift;
    bool fold;
    bool secondProbe;
};

// The tile being matched: chunk bytes [t0, stagedEnd) are staged at
// tile + skew; start positions [t0, positionEnd) are this tile's.
struct SluiceScanTile {
    const unsigned char* tile;
    unsigned t0;
    unsigned skew;
    unsigned stagedEnd;
    unsigned positionEnd;
};

// The key of k bytes (k = 1..4) from four key bytes: a short literal's
// check word.
__device__ __forceinline__ unsigned sluice_scan_short_key(unsigned key4, unsigned k) {
    return k == 4u ? key4 : key4 & ((1u << (8u * k)) - 1u);
}

// That key tagged with its length, as ScanTable.hash hashes it.
__device__ __forceinline__ unsigned sluice_scan_tagged(unsigned key4, unsigned k) {
    return k == 4u ? key4 : sluice_scan_short_key(key4, k) | (k << 24);
}

// Whether literal `pattern` (whose blob bytes start at `start`, `len` of
// them) matches at `pos`, its first `from` bytes already known to; if so,
// counts it in `found` and, while records fit, stores it.
__device__ __forceinline__ void sluice_scan_verify(
    const SluiceParams& p, const SluiceScanWork& w, const SluiceScanTile& t, unsigned pos, unsigned pattern,
    unsigned start, unsigned len, unsigned from, unsigned long long& found, unsigned& storedShared)
{
    unsigned j = from;
    for (; j < len; ++j) {
        const unsigned at = pos + j;
        unsigned b = at < t.stagedEnd ? t.tile[t.skew + (at - t.t0)] : __ldcv(w.chunk + at);
        if (w.fold) {
            b = sluice_fold_byte(b);
        }
        if (b != __ldg(w.blob + start + j)) {
            return;
        }
    }
    ++found;
    if (w.capacity != 0u && *(volatile unsigned*)&storedShared < w.capacity) {
        const unsigned r = atomicAdd(&storedShared, 1u);
        if (r < w.capacity) {
            sluice_host_store_u32(p, w.area + SLUICE_SCAN_HEADER_WORDS + 2u * r, pos);
            sluice_host_store_u32(p, w.area + SLUICE_SCAN_HEADER_WORDS + 2u * r + 1u, pattern);
        }
    }
}

// One candidate's bucket: `bucketHash` picks it, entries whose check word
// is `check` name literals, and those of the candidate's kind (a short key
// of k bytes; k = 0: long) that fit the chunk are verified from byte
// `known` (the short key's bytes; none of a long literal's, whose key is
// only a hash).
__device__ void sluice_scan_candidate(
    const SluiceParams& p, const SluiceScanWork& w, const SluiceScanTile& t, unsigned pos, unsigned k,
    unsigned bucketHash, unsigned check, unsigned long long& found, unsigned& storedShared)
{
    const unsigned left = w.length - pos;
    const unsigned bucket = bucketHash >> w.hashShift;
    const unsigned end = __ldg(w.bucketStart + bucket + 1u);
    for (unsigned e = __ldg(w.bucketStart + bucket); e < end; ++e) {
        if (__ldg(w.entries + 2u * e) != check) {
            continue;
        }
        const unsigned pattern = __ldg(w.entries + 2u * e + 1u);
        const unsigned start = __ldg(w.patternStart + pattern);
        const unsigned len = __ldg(w.patternStart + pattern + 1u) - start;
        const bool kind = k == 0u ? len >= w.longMinimum : (len < 4u ? len : 4u) == k && len < w.longMinimum;
        if (!kind || len > left) {
            continue;
        }
        sluice_scan_verify(p, w, t, pos, pattern, start, len, k, found, storedShared);
    }
}

// The key bytes at start position i of tile word `word` (whose bytes are
// `lo` then `hi`), folded for -i: the four of the short key,
// zero-padded past the chunk's end, returned; in `longHash`, the hash of the
// eight bytes of the long key (from the words `la`, `lb`, `lc` at the
// long-key offset); in `reach`, how many bytes from the position lie in the
// chunk, at most the shortest long literal (0 for a position outside the
// tile's own).
__device__ __forceinline__ unsigned sluice_scan_key_at(
    const SluiceScanWork& w, const SluiceScanTile& t, unsigned word, unsigned lo, unsigned hi,
    unsigned la, unsigned lb, unsigned lc, unsigned i, unsigned& longHash, unsigned& reach)
{
    const unsigned o = 4u * word + i;
    const bool inside = o >= t.skew && o < t.skew + (t.positionEnd - t.t0);
    const unsigned left = inside ? w.length - (t.t0 + o - t.skew) : 0u;
    reach = left < w.longMinimum ? left : w.longMinimum;
    unsigned raw = __funnelshift_r(lo, hi, 8u * i);
    if (reach < 4u) {
        raw &= (1u << (8u * reach)) - 1u;
    }
    unsigned low = __funnelshift_r(la, lb, 8u * i);
    unsigned high = __funnelshift_r(lb, lc, 8u * i);
    if (w.fold) {
        low = sluice_fold_word(low);
        high = sluice_fold_word(high);
    }
    longHash = (low * SLUICE_SCAN_HASH_MULTIPLIER ^ high) * SLUICE_SCAN_SECOND_MULTIPLIER;
    return w.fold ? sluice_fold_word(raw) : raw;
}

// Whether both probes' bits are set in `filter` (2^(32 - shift) bits).
template <bool Shared>
__device__ __forceinline__ unsigned sluice_scan_bits(
    const unsigned* filter, unsigned shift, unsigned first, unsigned second)
{
    const unsigned a = first >> shift;
    const unsigned b = second >> shift;
    const unsigned wordA = Shared ? filter[a >> 5] : __ldg(filter + (a >> 5));
    const unsigned wordB = Shared ? filter[b >> 5] : __ldg(filter + (b >> 5));
    return (wordA >> (a & 31u)) & (wordB >> (b & 31u)) & 1u;
}

// The filter pass over one tile word's four start positions: bit 4i + k - 1
// of the result is set when the key of k bytes at position i passes the
// short filter's probes, and bit 16 + i when its long key passes the long
// filter's. Each key length the short filter has, and the long key, is one
// round of eight independent filter loads (four positions, two probes), so
// they are in flight together.
template <bool ShortShared, bool LongShared>
__device__ __forceinline__ unsigned sluice_scan_word_filter(
    const SluiceScanWork& w, const unsigned (&key4)[4], const unsigned (&longHash)[4], const unsigned (&reach)[4])
{
    unsigned candidates = 0u;
#pragma unroll
    for (unsigned k = 1u; k <= 4u; ++k) {
        if (((w.keyMask >> (k - 1u)) & 1u) == 0u) {
            continue;
        }
#pragma unroll
        for (unsigned i = 0u; i < 4u; ++i) {
            const unsigned tagged = sluice_scan_tagged(key4[i], k);
            const unsigned h = tagged * SLUICE_SCAN_HASH_MULTIPLIER;
            const unsigned h2 = w.secondProbe ? tagged * SLUICE_SCAN_SECOND_MULTIPLIER : h;
            const unsigned pass = sluice_scan_bits<ShortShared>(w.shortFilter, w.filterShift, h, h2);
            candidates |= (pass & (k <= reach[i] ? 1u : 0u)) << (4u * i + k - 1u);
        }
    }
    if (w.longFilterShift < 32u) {
#pragma unroll
        for (unsigned i = 0u; i < 4u; ++i) {
            const unsigned h = longHash[i];
            const unsigned h2 = w.secondProbe ? h * SLUICE_SCAN_LONG_MIX_MULTIPLIER : h;
            const unsigned pass = sluice_scan_bits<LongShared>(w.longFilter, w.longFilterShift, h, h2);
            candidates |= (pass & (reach[i] >= w.longMinimum ? 1u : 0u)) << (16u + i);
        }
    }
    return candidates;
}

// Matches the tile's start positions: thread t takes tile words t, t + 256,
// ... (four start positions each, from three conflict-free shared loads),
// runs the filter pass on them, then each candidate.
template <bool ShortShared, bool LongShared>
__device__ void sluice_scan_tile(
    const SluiceParams& p, const SluiceScanWork& w, const SluiceScanTile& t,
    unsigned long long& found, unsigned& storedShared)
{
    const unsigned* words = (const unsigned*)t.tile;
    const unsigned end = t.skew + (t.positionEnd - t.t0);
    for (unsigned word = (t.skew >> 2) + threadIdx.x; 4u * word < end; word += SLUICE_BLOCK_THREADS) {
        const unsigned lo = words[word];
        const unsigned hi = words[word + 1u];
        const unsigned next = words[word + 2u];
        // The long key's words: the same three at offset 0 (no extra loads).
        const unsigned la = w.longKeyWords == 0u ? lo : words[word + w.longKeyWords];
        const unsigned lb = w.longKeyWords == 0u ? hi : words[word + w.longKeyWords + 1u];
        const unsigned lc = w.longKeyWords == 0u ? next : words[word + w.longKeyWords + 2u];
        unsigned key4[4];
        unsigned longHash[4];
        unsigned reach[4];
#pragma unroll
        for (unsigned i = 0u; i < 4u; ++i) {
            key4[i] = sluice_scan_key_at(w, t, word, lo, hi, la, lb, lc, i, longHash[i], reach[i]);
        }
        unsigned candidates = sluice_scan_word_filter<ShortShared, LongShared>(w, key4, longHash, reach);
        while (candidates != 0u) {
            // Rare: the keys are computed again rather than indexed, so the
            // arrays above stay in registers.
            const unsigned bit = (unsigned)__ffs((int)candidates) - 1u;
            candidates &= candidates - 1u;
            const bool isLong = bit >= 16u;
            const unsigned i = isLong ? bit - 16u : bit >> 2;
            unsigned hash;
            unsigned ignoredReach;
            const unsigned key = sluice_scan_key_at(w, t, word, lo, hi, la, lb, lc, i, hash, ignoredReach);
            const unsigned pos = t.t0 + 4u * word + i - t.skew;
            if (isLong) {
                sluice_scan_candidate(p, w, t, pos, 0u, hash, hash, found, storedShared);
            } else {
                const unsigned k = (bit & 3u) + 1u;
                const unsigned shortKey = sluice_scan_short_key(key, k);
                const unsigned bucketHash = sluice_scan_tagged(key, k) * SLUICE_SCAN_HASH_MULTIPLIER;
                sluice_scan_candidate(p, w, t, pos, k, bucketHash, shortKey, found, storedShared);
            }
        }
    }
}

// The scan opcode for the block's job; returns the completion word (valid in
// thread 0). `info` is loaded and ok.
__device__ unsigned sluice_scan(
    const SluiceParams& p, const SluiceJob& job, const SluiceScanInfo& info, unsigned char* smem,
    unsigned long long& foundShared, unsigned& storedShared)
{
    const unsigned tid = threadIdx.x;
    const unsigned* table = (const unsigned*)job.table;
    SluiceScanWork w;
    w.chunk = (const unsigned char*)(p.data + job.bufferOffset);
    w.length = job.length;
    w.capacity = (job.argument1 & SLUICE_SCAN_COUNT_ONLY) ? 0u
        : (job.resultCapacity - SLUICE_SCAN_HEADER_WORDS) / 2u;
    w.area = (unsigned*)(p.ring + p.resultsOffset) + job.resultOffset;
    const unsigned* cache = (const unsigned*)(smem + SLUICE_SM_FILTER);
    w.shortFilter = info.shortCached ? cache : table + info.filterOffset;
    w.longFilter = info.longCached ? cache + info.longCacheOffset : table + info.longFilterOffset;
    w.bucketStart = table + info.bucketOffset;
    w.entries = table + info.entriesOffset;
    w.patternStart = table + info.patternOffset;
    w.blob = (const unsigned char*)(table + info.blobOffset);
    w.keyMask = info.keyMask;
    w.filterShift = 32u - info.filterBits;
    w.longFilterShift = 32u - info.longFilterBits;
    w.longKeyWords = info.longKeyOffset / 4u;
    w.longMinimum = info.longKeyOffset + SLUICE_SCAN_LONG_KEY_BYTES;
    w.hashShift = 32u - info.hashBits;
    w.fold = info.caseInsensitive != 0u;
    w.secondProbe = info.secondProbe != 0u;
    const unsigned startLimit = job.argument0;
    unsigned char* tile = smem + SLUICE_SM_WORK;

    if (tid == 0u) {
        foundShared = 0ull;
        storedShared = 0u;
    }
    unsigned long long found = 0ull;
    for (unsigned t0 = 0u; t0 < startLimit; t0 += SLUICE_SCAN_TILE) {
        SluiceScanTile t;
        t.tile = tile;
        t.t0 = t0;
        t.skew = (unsigned)((unsigned long long)(w.chunk + t0) & 15ull);
        t.stagedEnd = w.length - t0 > SLUICE_SCAN_TILE + SLUICE_SCAN_OVERLAP
            ? t0 + SLUICE_SCAN_TILE + SLUICE_SCAN_OVERLAP : w.length;
        t.positionEnd = startLimit - t0 > SLUICE_SCAN_TILE ? t0 + SLUICE_SCAN_TILE : startLimit;
        __syncthreads();   // the previous tile is no longer read
        sluice_stage(w.chunk + t0, t.stagedEnd - t0, tile + t.skew);
        __syncthreads();
        if (info.shortCached != 0u) {
            if (info.longCached != 0u) {
                sluice_scan_tile<true, true>(p, w, t, found, storedShared);
            } else {
                sluice_scan_tile<true, false>(p, w, t, found, storedShared);
            }
        } else if (info.longCached != 0u) {
            sluice_scan_tile<false, true>(p, w, t, found, storedShared);
        } else {
            sluice_scan_tile<false, false>(p, w, t, found, storedShared);
        }
    }
    if (found != 0ull) {
        atomicAdd(&foundShared, found);
    }
    __syncthreads();
    unsigned completion = 0u;
    if (tid == 0u) {
        const unsigned long long total = foundShared;
        const unsigned stored = storedShared < w.capacity ? storedShared : w.capacity;
        sluice_host_store_u32(p, w.area, (unsigned)total);
        sluice_host_store_u32(p, w.area + 1, (unsigned)(total >> 32));
        sluice_host_store_u32(p, w.area + 2, stored);
        sluice_host_store_u32(p, w.area + 3, 0u);
        completion = SLUICE_SCAN_HEADER_WORDS + 2u * stored;
    }
    return completion;
}

#endif  // SLUICE_SCAN_H
