// Sluice persistent megakernel (CUDA C++, compiled at run time by NVRTC).
//
// The ring protocol's numbers are mirrored here. The source of truth is
// docs/protocol.md and Sources/SluiceCore (SlotLayout.swift, ControlBlock.swift,
// SlotStatus.swift, FaultCode.swift, Opcode.swift); when one of them changes,
// change the matching SLUICE_* constant below.
//
// No #include: NVRTC provides the CUDA builtins (atomics, __ldcg, __nanosleep,
// vector types) itself, and the CI check compiles this file with only the
// NVRTC library installed.
//
// Memory (see docs/protocol.md, "Memory ordering"):
// - the ring region (control block, slots, result areas) and the data region
//   are pinned host memory mapped into the GPU; every access to them crosses
//   PCIe, so the idle poll reads as few status words as it can;
// - no atomic operation ever targets that memory: over PCIe they were seen to
//   be neither atomic nor fast (see "why no atomics touch host memory" below);
//   slots have one owning block each, and the counters live in device memory;
// - data bytes are read after an acquire fence with `ld.global.cv` (__ldcv):
//   for system memory it discards a matching L2 line and fetches again, so a
//   reused chunk buffer is never served from a stale L1 or L2 line.

// ---- protocol constants (docs/protocol.md, SluiceCore) ----------------------

// Slot words (SlotWord), 16 x u32 per 64-byte slot.
#define SLUICE_W_STATUS            0u
#define SLUICE_W_OPCODE            1u
#define SLUICE_W_TENANT            2u
#define SLUICE_W_PRIORITY          3u
#define SLUICE_W_BUFFER_OFFSET_LO  4u
#define SLUICE_W_BUFFER_OFFSET_HI  5u
#define SLUICE_W_LENGTH            6u
#define SLUICE_W_FILE_OFFSET_LO    7u
#define SLUICE_W_FILE_OFFSET_HI    8u
#define SLUICE_W_CHUNK_INDEX       9u
#define SLUICE_W_ARGUMENT0         10u
#define SLUICE_W_ARGUMENT1         11u
#define SLUICE_W_RESULT_OFFSET     12u
#define SLUICE_W_RESULT_CAPACITY   13u
#define SLUICE_W_HOST_FLAGS        14u
#define SLUICE_W_COMPLETION        15u
#define SLUICE_SLOT_WORDS          16u

// Host flag bits (SlotHostFlag).
#define SLUICE_FLAG_CANCEL         1u

// Slot states (SlotStatus).
#define SLUICE_S_EMPTY             0u
#define SLUICE_S_PUBLISHED         1u
#define SLUICE_S_CLAIMED           2u
#define SLUICE_S_DONE              3u
#define SLUICE_S_FAULTED           4u
#define SLUICE_S_CANCELLED         5u

// Control block words (ControlWord), 16 x u64 at the start of the ring region.
#define SLUICE_C_MAGIC             0u
#define SLUICE_C_SHUTDOWN          1u
#define SLUICE_C_EPOCH             2u
#define SLUICE_C_SLOTS_DONE        3u
#define SLUICE_C_SLOTS_FAULTED     4u
#define SLUICE_C_SLOTS_CANCELLED   5u
#define SLUICE_C_BYTES_PROCESSED   6u
#define SLUICE_C_LAST_FAULT        7u
#define SLUICE_C_WORKERS_RUNNING   8u
#define SLUICE_C_SLOT_COUNT        9u
#define SLUICE_C_SCAN_TABLE_ADDRESS 10u   // scan opcode (not run by this kernel yet)
#define SLUICE_C_SCAN_TABLE_WORDS  11u
#define SLUICE_C_TENANT_TABLE_ADDRESS 12u // tenant regions (not checked by this kernel yet)
#define SLUICE_C_TENANT_TABLE_WORDS 13u
#define SLUICE_CONTROL_WORDS       16u
#define SLUICE_MAGIC               0x534C554943450001ull

// Ring geometry (RingGeometry): slots start after the padded control block.
#define SLUICE_SLOTS_OFFSET        256ull
#define SLUICE_RING_ALIGNMENT      256ull

// Opcodes (Opcode).
#define SLUICE_OP_COUNT            1u
#define SLUICE_OP_SCAN             2u
#define SLUICE_OP_CRC32C           3u

// Fault codes (FaultCode).
#define SLUICE_F_UNKNOWN_OPCODE        1u
#define SLUICE_F_UNSUPPORTED_OPCODE    2u
#define SLUICE_F_BUFFER_OUT_OF_BOUNDS  3u
#define SLUICE_F_RESULT_OUT_OF_BOUNDS  4u
#define SLUICE_F_RESULT_OVERFLOW       5u
#define SLUICE_F_BAD_ARGUMENTS         6u
#define SLUICE_F_TENANT_VIOLATION      7u

// count opcode (CountOp): bytes, newlines, 256 bins.
#define SLUICE_COUNT_RESULT_WORDS  258u

// ---- kernel ABI (mirrored by `Megakernel` in Sources/SluiceCUDA/KernelBuild.swift) --

// Threads per block: the launch must use exactly this many (one histogram bin
// per thread when the block reduces its counts).
#define SLUICE_BLOCK_THREADS       256u
#define SLUICE_WARPS               (SLUICE_BLOCK_THREADS / 32u)
#define SLUICE_PARAMS_VERSION      5ull

// Idle back-off of the polling warp: doubles from MIN nanoseconds up to the
// launch's `idleSleepMaxNs` while none of its slots is published, and drops
// back to MIN after one was. A cap of 0 polls without sleeping (lowest
// latency, most PCIe read traffic).
#define SLUICE_MIN_SLEEP_NS        64u

// Lanes of the polling warp: 0..30 read the block's own slots, 31 reads the
// shutdown flag.
#define SLUICE_HOME_LANES          31u
#define SLUICE_SHUTDOWN_LANE       31u
#define SLUICE_NO_SLOT             0xFFFFFFFFu

#define SLUICE_FULL_MASK           0xFFFFFFFFu

// Launch flags (SluiceParams.flags). Each selects an older way of touching
// host memory, kept so `sluice bench dispatch` can measure the difference; all
// are correct (cache operators do not change the memory model, and every
// host-facing fence here is half of a release/acquire pattern).
// fence.sc.sys (__threadfence_system) instead of fence.acq_rel.sys.
#define SLUICE_P_SC_FENCES         1ull
// Volatile loads (ld.volatile) of slot words and the shutdown flag instead of
// ld.global.cv, which for system memory discards any L2 copy and fetches again.
#define SLUICE_P_VOLATILE_POLL     2ull
// Volatile (write-back) stores of statuses, results and counters instead of
// st.global.wt, which for system memory writes through the L2.
#define SLUICE_P_WB_STORES         4ull
#define SLUICE_P_ALL               7ull

// Passed by value; every field is 64 bits so the Swift side lays it out
// without padding rules.
struct SluiceParams {
    unsigned long long ring;             // device address of the ring region (mapped host memory)
    unsigned long long data;             // device address of the data region (mapped host memory)
    unsigned long long dataBytes;        // bytes a slot may address in the data region
    unsigned long long slotCount;        // slots in the ring
    unsigned long long resultsOffset;    // byte offset of the result region in the ring
    unsigned long long resultWordsTotal; // u32 words in the result region
    unsigned long long version;          // SLUICE_PARAMS_VERSION
    unsigned long long idleSleepMaxNs;   // longest idle __nanosleep of a polling warp; 0: never sleep
    unsigned long long state;            // device address of a zeroed SluiceDeviceState (device memory)
    unsigned long long flags;            // SLUICE_P_* bits
};
static_assert(sizeof(SluiceParams) == 80, "SluiceParams is 10 x u64");

// ---- why no atomics touch host memory ---------------------------------------------
//
// Measured on the H100 machine over PCIe (no host-native atomics), GPU atomics on
// mapped host memory are NOT atomic even among the GPU's own threads: two blocks
// both won the same PUBLISHED -> CLAIMED compare-and-swap (a slot ran twice and
// its second DONE landed after the host had reclaimed it), and counters
// incremented with atomicAdd_system lost updates; a 64-bit atomicAdd_system
// there never completed a ping-pong round trip (benchmarks/RESULTS.md, runs
// 1-4). So this kernel never issues an atomic on host memory:
//
// - claims: every slot is owned by exactly one block (slot % gridDim.x), which
//   alone polls it; PUBLISHED -> CLAIMED is then a plain store by its only
//   writer, and no two blocks can ever run one slot;
// - counters (epoch, slots done/faulted/cancelled, bytes, last fault, workers
//   running) live in device memory (SluiceDeviceState), where atomics are real,
//   and are copied into the host's control block by one block at a time (a
//   device-memory token): counters first, a system fence, then the epoch, so the
//   host sees them move monotonically and never sees the epoch ahead of them.
//   The host's copy may trail a slot's DONE status by a moment, which the
//   protocol allows (status first, epoch after).

// Device-memory state of one launch (zeroed by the host before the launch).
struct SluiceDeviceState {
    unsigned long long changes;      // bumped after every counter update
    unsigned long long epoch;
    unsigned long long slotsDone;
    unsigned long long slotsFaulted;
    unsigned long long slotsCancelled;
    unsigned long long bytesProcessed;
    unsigned long long lastFault;
    unsigned long long workersRunning;
    unsigned long long token;        // 1 while a block writes the host's copy of the counters
    unsigned long long reserved[7];
};
static_assert(sizeof(SluiceDeviceState) == 128, "SluiceDeviceState is 16 x u64");

// ---- memory helpers -----------------------------------------------------------

__device__ __forceinline__ unsigned sluice_load_u32(const unsigned* p) {
    return *(const volatile unsigned*)p;
}

__device__ __forceinline__ unsigned long long sluice_load_u64(const unsigned long long* p) {
    return *(const volatile unsigned long long*)p;
}

__device__ __forceinline__ void sluice_store_u32(unsigned* p, unsigned v) {
    *(volatile unsigned*)p = v;
}

__device__ __forceinline__ void sluice_store_u64(unsigned long long* p, unsigned long long v) {
    *(volatile unsigned long long*)p = v;
}

// Reads of words the host writes (slot words, the shutdown flag): ld.cv
// always fetches from host memory (asm volatile: never hoisted or merged).
__device__ __forceinline__ unsigned sluice_host_load_u32(const SluiceParams& p, const unsigned* a) {
    if (p.flags & SLUICE_P_VOLATILE_POLL) {
        return sluice_load_u32(a);
    }
    unsigned v;
    asm volatile("ld.global.cv.u32 %0, [%1];" : "=r"(v) : "l"(a) : "memory");
    return v;
}

__device__ __forceinline__ unsigned long long sluice_host_load_u64(const SluiceParams& p, const unsigned long long* a) {
    if (p.flags & SLUICE_P_VOLATILE_POLL) {
        return sluice_load_u64(a);
    }
    unsigned long long v;
    asm volatile("ld.global.cv.u64 %0, [%1];" : "=l"(v) : "l"(a) : "memory");
    return v;
}

// Writes the host reads (statuses, completion, results, counters): st.wt
// writes through the L2 to host memory.
__device__ __forceinline__ void sluice_host_store_u32(const SluiceParams& p, unsigned* a, unsigned v) {
    if (p.flags & SLUICE_P_WB_STORES) {
        sluice_store_u32(a, v);
        return;
    }
    asm volatile("st.global.wt.u32 [%0], %1;" :: "l"(a), "r"(v) : "memory");
}

__device__ __forceinline__ void sluice_host_store_u64(const SluiceParams& p, unsigned long long* a, unsigned long long v) {
    if (p.flags & SLUICE_P_WB_STORES) {
        sluice_store_u64(a, v);
        return;
    }
    asm volatile("st.global.wt.u64 [%0], %1;" :: "l"(a), "l"(v) : "memory");
}

// The fence of every release/acquire pattern with the host: acq_rel is all
// they need (docs/protocol.md); SLUICE_P_SC_FENCES selects the heavier SC fence.
__device__ __forceinline__ void sluice_fence_system(const SluiceParams& p) {
    if (p.flags & SLUICE_P_SC_FENCES) {
        __threadfence_system();
    } else {
        asm volatile("fence.acq_rel.sys;" ::: "memory");
    }
}

__device__ __forceinline__ unsigned* sluice_slot(const SluiceParams& p, unsigned slot) {
    return (unsigned*)(p.ring + SLUICE_SLOTS_OFFSET) + (unsigned long long)slot * SLUICE_SLOT_WORDS;
}

// A claimed slot's work, handed from the polling warp to the whole block.
struct SluiceJob {
    unsigned long long bufferOffset;
    unsigned long long resultOffset;
    unsigned slot;      // SLUICE_NO_SLOT: leave the loop
    unsigned length;
};

// Copies the device counters into the host's control block, unless another
// block is doing so (it then sees this block's update and copies again: each
// side bumps one word, fences, then reads the other's, so one of the two
// always sees the other). One thread calls it.
__device__ void sluice_publish_counters(const SluiceParams& p) {
    SluiceDeviceState* d = (SluiceDeviceState*)p.state;
    unsigned long long* control = (unsigned long long*)p.ring;
    for (;;) {
        if (atomicExch(&d->token, 1ull) != 0ull) {
            return;
        }
        __threadfence();
        const unsigned long long changes = sluice_load_u64(&d->changes);
        __threadfence();
        const unsigned long long epoch = sluice_load_u64(&d->epoch);
        sluice_host_store_u64(p, control + SLUICE_C_SLOTS_DONE, sluice_load_u64(&d->slotsDone));
        sluice_host_store_u64(p, control + SLUICE_C_SLOTS_FAULTED, sluice_load_u64(&d->slotsFaulted));
        sluice_host_store_u64(p, control + SLUICE_C_SLOTS_CANCELLED, sluice_load_u64(&d->slotsCancelled));
        sluice_host_store_u64(p, control + SLUICE_C_BYTES_PROCESSED, sluice_load_u64(&d->bytesProcessed));
        sluice_host_store_u64(p, control + SLUICE_C_LAST_FAULT, sluice_load_u64(&d->lastFault));
        sluice_host_store_u64(p, control + SLUICE_C_WORKERS_RUNNING, sluice_load_u64(&d->workersRunning));
        sluice_fence_system(p);
        sluice_host_store_u64(p, control + SLUICE_C_EPOCH, epoch);
        sluice_fence_system(p);
        atomicExch(&d->token, 0ull);
        __threadfence();
        if (sluice_load_u64(&d->changes) == changes) {
            return;
        }
    }
}

// Records one finished slot (or a worker arriving/leaving) in the device
// counters, then publishes them. `counter` is a word index of
// SluiceDeviceState, 0 for none. The caller has already stored and fenced
// the slot's terminal status, so the epoch never runs ahead of it.
__device__ void sluice_record(
    const SluiceParams& p, unsigned counter, unsigned long long bytes, unsigned long long lastFault,
    long long workers, bool finished)
{
    SluiceDeviceState* d = (SluiceDeviceState*)p.state;
    unsigned long long* words = (unsigned long long*)d;
    if (counter != 0u) {
        atomicAdd(words + counter, 1ull);
    }
    if (bytes != 0ull) {
        atomicAdd(&d->bytesProcessed, bytes);
    }
    if (lastFault != 0ull) {
        atomicExch(&d->lastFault, lastFault);
    }
    if (workers != 0ll) {
        atomicAdd(&d->workersRunning, (unsigned long long)workers);
    }
    __threadfence();
    if (finished) {
        atomicAdd(&d->epoch, 1ull);
        __threadfence();
    }
    atomicAdd(&d->changes, 1ull);
    __threadfence();
    sluice_publish_counters(p);
}

// Word indices of SluiceDeviceState's counters.
#define SLUICE_D_DONE              2u
#define SLUICE_D_FAULTED           3u
#define SLUICE_D_CANCELLED         4u

// Moves a CLAIMED slot to FAULTED (code != 0) or CANCELLED (code == 0): one
// thread; completion word, fence, status, fence, counters.
__device__ void sluice_finish_early(const SluiceParams& p, unsigned slot, unsigned code, unsigned opcode) {
    unsigned* s = sluice_slot(p, slot);
    if (code == 0u) {
        sluice_fence_system(p);
        sluice_host_store_u32(p, s + SLUICE_W_STATUS, SLUICE_S_CANCELLED);
        sluice_fence_system(p);
        sluice_record(p, SLUICE_D_CANCELLED, 0ull, 0ull, 0ll, true);
        return;
    }
    sluice_host_store_u32(p, s + SLUICE_W_COMPLETION, code);
    sluice_fence_system(p);
    sluice_host_store_u32(p, s + SLUICE_W_STATUS, SLUICE_S_FAULTED);
    sluice_fence_system(p);
    const unsigned long long record =
        ((unsigned long long)slot + 1ull) << 32 |
        (unsigned long long)(code & 0xFFFFu) << 16 |
        (unsigned long long)(opcode & 0xFFFFu);
    sluice_record(p, SLUICE_D_FAULTED, 0ull, record, 0ll, true);
}

// Decides what a claimed slot needs from its payload words, checking every
// argument in the order the CPU executor does (SlotExecutor.swift). Returns
// SLUICE_NO_SLOT when the block must run it, 0 when the host asked to cancel
// it, else the fault code. Pure: every lane of the polling warp evaluates it
// on the same words and gets the same answer.
__device__ __forceinline__ unsigned sluice_admit(
    const SluiceParams& p, unsigned flags, unsigned opcode, unsigned long long bufferOffset, unsigned length,
    unsigned long long resultOffset, unsigned long long resultCapacity)
{
    if (flags & SLUICE_FLAG_CANCEL) {
        return 0u;
    }
    if (opcode != SLUICE_OP_COUNT && opcode != SLUICE_OP_SCAN && opcode != SLUICE_OP_CRC32C) {
        return SLUICE_F_UNKNOWN_OPCODE;
    }
    if (opcode != SLUICE_OP_COUNT) {
        return SLUICE_F_UNSUPPORTED_OPCODE;
    }
    // 64-bit arithmetic: offset + length cannot wrap.
    if (bufferOffset > p.dataBytes || (unsigned long long)length > p.dataBytes - bufferOffset) {
        return SLUICE_F_BUFFER_OUT_OF_BOUNDS;
    }
    if (resultOffset + resultCapacity > p.resultWordsTotal) {
        return SLUICE_F_RESULT_OUT_OF_BOUNDS;
    }
    if (resultCapacity < SLUICE_COUNT_RESULT_WORDS) {
        return SLUICE_F_RESULT_OVERFLOW;
    }
    return SLUICE_NO_SLOT;
}

// Warp 0 of a block: polls the block's own slots until one is PUBLISHED and
// must run (returns it in `job`, already CLAIMED) or the host asked for
// shutdown (job.slot = NO_SLOT). Cancelled and faulting slots are finished
// here without waking the block.
//
// Block b owns slots b, b + grid, b + 2 grid, ...; no other block reads or
// writes their status, so PUBLISHED -> CLAIMED needs no compare-and-swap (see
// "why no atomics touch host memory" above). One round reads up to 31 owned
// statuses and the shutdown flag in parallel (one PCIe round trip). When one
// is PUBLISHED, the lane that saw it fences (that relaxed system-scope read
// plus the fence is the acquire of the host's release store), and lanes 0..15
// then read the slot's 16 words at once: one round trip, not one per word.
__device__ __forceinline__ void sluice_poll(const SluiceParams& p, SluiceJob& job, unsigned& cursor) {
    const unsigned lane = threadIdx.x & 31u;
    const unsigned slotCount = (unsigned)p.slotCount;
    const unsigned grid = gridDim.x;
    const unsigned home = blockIdx.x;
    const unsigned homeCount = home < slotCount ? (slotCount - 1u - home) / grid + 1u : 0u;
    const unsigned homeLanes = homeCount < SLUICE_HOME_LANES ? homeCount : SLUICE_HOME_LANES;
    const unsigned long long* control = (const unsigned long long*)p.ring;
    const unsigned sleepCap = p.idleSleepMaxNs > 0xFFFFFFull ? 0xFFFFFFu : (unsigned)p.idleSleepMaxNs;
    unsigned sleepNs = SLUICE_MIN_SLEEP_NS;

    for (;;) {
        const unsigned slot = lane < homeLanes ? home + ((cursor + lane) % homeCount) * grid : SLUICE_NO_SLOT;
        int published = 0;
        if (slot != SLUICE_NO_SLOT) {
            published = sluice_host_load_u32(p, sluice_slot(p, slot) + SLUICE_W_STATUS) == SLUICE_S_PUBLISHED ? 1 : 0;
        }
        int stop = 0;
        if (lane == SLUICE_SHUTDOWN_LANE) {
            stop = sluice_host_load_u64(p, control + SLUICE_C_SHUTDOWN) != 0ull ? 1 : 0;
        }
        stop = __shfl_sync(SLUICE_FULL_MASK, stop, SLUICE_SHUTDOWN_LANE);
        const unsigned candidates = __ballot_sync(SLUICE_FULL_MASK, published);
        if (stop) {
            if (lane == 0u) {
                job.slot = SLUICE_NO_SLOT;
            }
            return;
        }
        if (candidates == 0u) {
            if (homeCount > homeLanes) {
                cursor = (cursor + homeLanes) % homeCount;
            }
            if (sleepCap != 0u) {
                __nanosleep(sleepNs < sleepCap ? sleepNs : sleepCap);
                sleepNs = sleepNs * 2u < sleepCap ? sleepNs * 2u : sleepCap;
            }
            continue;
        }
        sleepNs = SLUICE_MIN_SLEEP_NS;
        const unsigned owner = (unsigned)(__ffs(candidates) - 1);
        const unsigned candidate = __shfl_sync(SLUICE_FULL_MASK, slot, owner);
        // Next round starts after this slot, so every owned slot gets its turn.
        cursor = (cursor + owner + 1u) % homeCount;
        if (lane == owner) {
            sluice_fence_system(p);   // acquire: the payload and chunk were written before PUBLISHED
        }
        __syncwarp(SLUICE_FULL_MASK);
        unsigned* s = sluice_slot(p, candidate);
        unsigned word = 0u;
        if (lane < SLUICE_SLOT_WORDS) {
            word = sluice_host_load_u32(p, s + lane);
        }
        const unsigned flags = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_W_HOST_FLAGS);
        const unsigned opcode = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_W_OPCODE);
        const unsigned long long bufferOffset =
            (unsigned long long)__shfl_sync(SLUICE_FULL_MASK, word, SLUICE_W_BUFFER_OFFSET_LO) |
            (unsigned long long)__shfl_sync(SLUICE_FULL_MASK, word, SLUICE_W_BUFFER_OFFSET_HI) << 32;
        const unsigned length = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_W_LENGTH);
        const unsigned long long resultOffset = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_W_RESULT_OFFSET);
        const unsigned long long resultCapacity = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_W_RESULT_CAPACITY);
        const unsigned verdict = sluice_admit(p, flags, opcode, bufferOffset, length, resultOffset, resultCapacity);
        if (lane == 0u) {
            // The slot's only writer on the worker side: a plain store.
            sluice_host_store_u32(p, s + SLUICE_W_STATUS, SLUICE_S_CLAIMED);
            if (verdict == SLUICE_NO_SLOT) {
                job.slot = candidate;
                job.bufferOffset = bufferOffset;
                job.length = length;
                job.resultOffset = resultOffset;
            } else {
                sluice_finish_early(p, candidate, verdict, opcode);   // cancelled (0) or faulted
            }
        }
        __syncwarp(SLUICE_FULL_MASK);
        if (verdict == SLUICE_NO_SLOT) {
            return;
        }
    }
}

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
// cached copy of a reused buffer (see the top of this file).
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

// The persistent megakernel: launched once, grid <= resident blocks. Each block
// polls the ring with its first warp, runs the slots it claims with all its
// threads, and leaves when the host sets the shutdown flag.
extern "C" __global__ void __launch_bounds__(SLUICE_BLOCK_THREADS)
sluice_megakernel(const SluiceParams p)
{
    __shared__ unsigned histogram[SLUICE_WARPS][256];
    __shared__ SluiceJob job;
    __shared__ int ringOK;

    const unsigned tid = threadIdx.x;
    unsigned long long* control = (unsigned long long*)p.ring;

    if (tid == 0u) {
        ringOK = p.version == SLUICE_PARAMS_VERSION
            && blockDim.x == SLUICE_BLOCK_THREADS && blockDim.y == 1u && blockDim.z == 1u
            && p.slotCount != 0ull && p.slotCount <= 0xFFFFFFFEull
            && p.resultsOffset >= SLUICE_SLOTS_OFFSET + p.slotCount * SLUICE_SLOT_WORDS * 4ull
            && p.resultsOffset % SLUICE_RING_ALIGNMENT == 0ull
            && sluice_load_u64(control + SLUICE_C_MAGIC) == SLUICE_MAGIC
            && sluice_load_u64(control + SLUICE_C_SLOT_COUNT) == p.slotCount
            && p.state != 0ull && p.state % 128ull == 0ull
            && (p.flags & ~SLUICE_P_ALL) == 0ull;
        if (ringOK) {
            sluice_record(p, 0u, 0ull, 0ull, 1ll, false);   // this block polls now
        }
    }
    for (unsigned b = tid; b < SLUICE_WARPS * 256u; b += SLUICE_BLOCK_THREADS) {
        (&histogram[0][0])[b] = 0u;
    }
    __syncthreads();
    if (!ringOK) {
        return;   // the host sees the kernel end before shutdown and reports it
    }

    unsigned* myHistogram = histogram[tid >> 5];
    unsigned* results = (unsigned*)(p.ring + p.resultsOffset);
    unsigned cursor = 0u;

    for (;;) {
        if (tid < 32u) {
            sluice_poll(p, job, cursor);
        }
        __syncthreads();
        const SluiceJob mine = job;
        if (mine.slot == SLUICE_NO_SLOT) {
            break;
        }

        sluice_count((const unsigned char*)(p.data + mine.bufferOffset), mine.length, myHistogram);
        __syncthreads();

        // One bin per thread: sum the warps' tables, write the bin, and clear
        // the tables for the next slot.
        unsigned total = 0u;
        for (unsigned w = 0u; w < SLUICE_WARPS; ++w) {
            total += histogram[w][tid];
            histogram[w][tid] = 0u;
        }
        unsigned* out = results + mine.resultOffset;
        sluice_host_store_u32(p, out + 2u + tid, total);
        if (tid == 0x0Au) {
            sluice_host_store_u32(p, out + 1, total);
        }
        if (tid == 0u) {
            sluice_host_store_u32(p, out, mine.length);
            sluice_host_store_u32(p, sluice_slot(p, mine.slot) + SLUICE_W_COMPLETION, SLUICE_COUNT_RESULT_WORDS);
        }
        // Every result word is written before thread 0's release: the barrier
        // orders the block's stores before its fence (the same pattern as a
        // cooperative grid barrier), and the fence orders them before DONE.
        __syncthreads();

        if (tid == 0u) {
            sluice_fence_system(p);
            sluice_host_store_u32(p, sluice_slot(p, mine.slot) + SLUICE_W_STATUS, SLUICE_S_DONE);
            sluice_fence_system(p);
            sluice_record(p, SLUICE_D_DONE, mine.length, 0ull, 0ll, true);
        }
    }

    if (tid == 0u) {
        sluice_fence_system(p);
        sluice_record(p, 0u, 0ull, 0ull, -1ll, false);   // this block has left
    }
}

// ---- measurement kernels (sluice bench) ------------------------------------------

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
    unsigned last = sluice_load_u32(flags);
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
