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
// - GPU atomics on that memory are atomic among GPU threads only; the protocol's
//   single-writer rule means the host never writes a word that a worker
//   updates atomically while a worker may do so;
// - data bytes are read with L1-bypassing loads (__ldcg) after an acquire fence,
//   so a reused chunk buffer is never served from a stale L1 line.

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
#define SLUICE_PARAMS_VERSION      1ull

// Idle back-off of the polling warp: doubles from MIN to MAX nanoseconds
// while no slot is found, and drops back to MIN after a claim.
#define SLUICE_MIN_SLEEP_NS        64u
#define SLUICE_MAX_SLEEP_NS        2048u

// Lanes of the polling warp: 0..29 read the block's home slots, 30 reads one
// other slot per round (so every slot is eventually seen by every block) and
// 31 reads the shutdown flag.
#define SLUICE_HOME_LANES          30u
#define SLUICE_STEAL_LANE          30u
#define SLUICE_SHUTDOWN_LANE       31u
#define SLUICE_NO_SLOT             0xFFFFFFFFu

#define SLUICE_FULL_MASK           0xFFFFFFFFu

// Passed by value; every field is 64 bits so the Swift side lays it out
// without padding rules.
struct SluiceParams {
    unsigned long long ring;             // device address of the ring region
    unsigned long long data;             // device address of the data region
    unsigned long long dataBytes;        // bytes a slot may address in the data region
    unsigned long long slotCount;        // slots in the ring
    unsigned long long resultsOffset;    // byte offset of the result region in the ring
    unsigned long long resultWordsTotal; // u32 words in the result region
    unsigned long long version;          // SLUICE_PARAMS_VERSION
    unsigned long long reserved;         // zero
};
static_assert(sizeof(SluiceParams) == 64, "SluiceParams is 8 x u64");

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

__device__ __forceinline__ unsigned* sluice_slot(const SluiceParams& p, unsigned slot) {
    return (unsigned*)(p.ring + SLUICE_SLOTS_OFFSET) + (unsigned long long)slot * SLUICE_SLOT_WORDS;
}

// A claimed slot's work, handed from the polling thread to the whole block.
struct SluiceJob {
    unsigned long long bufferOffset;
    unsigned long long resultOffset;
    unsigned slot;      // SLUICE_NO_SLOT: leave the loop
    unsigned length;
};

// Moves a CLAIMED slot to its terminal state and publishes the counters.
// Called by one thread after the slot's result words and completion word are
// written and fenced. Status before epoch, epoch last (docs/protocol.md).
__device__ __forceinline__ void sluice_finish(
    const SluiceParams& p, unsigned slot, unsigned status, unsigned completion,
    unsigned long long counter, unsigned long long bytes, unsigned long long lastFault)
{
    unsigned long long* control = (unsigned long long*)p.ring;
    unsigned* s = sluice_slot(p, slot);
    if (status != SLUICE_S_CANCELLED) {
        sluice_store_u32(s + SLUICE_W_COMPLETION, completion);
    }
    __threadfence_system();
    sluice_store_u32(s + SLUICE_W_STATUS, status);
    __threadfence_system();
    if (lastFault != 0ull) {
        sluice_store_u64(control + SLUICE_C_LAST_FAULT, lastFault);
    }
    atomicAdd_system(control + counter, 1ull);
    if (bytes != 0ull) {
        atomicAdd_system(control + SLUICE_C_BYTES_PROCESSED, bytes);
    }
    __threadfence_system();
    atomicAdd_system(control + SLUICE_C_EPOCH, 1ull);
}

__device__ __forceinline__ void sluice_fault(
    const SluiceParams& p, unsigned slot, unsigned code, unsigned opcode)
{
    const unsigned long long record =
        ((unsigned long long)slot + 1ull) << 32 |
        (unsigned long long)(code & 0xFFFFu) << 16 |
        (unsigned long long)(opcode & 0xFFFFu);
    sluice_finish(p, slot, SLUICE_S_FAULTED, code, SLUICE_C_SLOTS_FAULTED, 0ull, record);
}

// Runs by thread 0 right after it won the claim of `slot`. Reads the payload,
// honours a cancel request and checks every argument. Returns true with `job`
// filled when the block must run the slot; otherwise the slot is already
// finished (CANCELLED or FAULTED) and counted.
__device__ __forceinline__ bool sluice_admit(const SluiceParams& p, unsigned slot, SluiceJob& job) {
    // Acquire: the payload and the chunk bytes were written before the host's
    // release store of PUBLISHED that the compare-and-swap observed.
    __threadfence_system();
    const unsigned* s = sluice_slot(p, slot);
    if (sluice_load_u32(s + SLUICE_W_HOST_FLAGS) & SLUICE_FLAG_CANCEL) {
        sluice_finish(p, slot, SLUICE_S_CANCELLED, 0u, SLUICE_C_SLOTS_CANCELLED, 0ull, 0ull);
        return false;
    }
    const unsigned opcode = sluice_load_u32(s + SLUICE_W_OPCODE);
    if (opcode != SLUICE_OP_COUNT && opcode != SLUICE_OP_SCAN && opcode != SLUICE_OP_CRC32C) {
        sluice_fault(p, slot, SLUICE_F_UNKNOWN_OPCODE, opcode);
        return false;
    }
    if (opcode != SLUICE_OP_COUNT) {
        sluice_fault(p, slot, SLUICE_F_UNSUPPORTED_OPCODE, opcode);
        return false;
    }
    const unsigned long long bufferOffset =
        (unsigned long long)sluice_load_u32(s + SLUICE_W_BUFFER_OFFSET_LO) |
        (unsigned long long)sluice_load_u32(s + SLUICE_W_BUFFER_OFFSET_HI) << 32;
    const unsigned length = sluice_load_u32(s + SLUICE_W_LENGTH);
    if (bufferOffset > p.dataBytes || (unsigned long long)length > p.dataBytes - bufferOffset) {
        sluice_fault(p, slot, SLUICE_F_BUFFER_OUT_OF_BOUNDS, opcode);
        return false;
    }
    const unsigned long long resultOffset = sluice_load_u32(s + SLUICE_W_RESULT_OFFSET);
    const unsigned long long resultCapacity = sluice_load_u32(s + SLUICE_W_RESULT_CAPACITY);
    if (resultOffset + resultCapacity > p.resultWordsTotal) {
        sluice_fault(p, slot, SLUICE_F_RESULT_OUT_OF_BOUNDS, opcode);
        return false;
    }
    if (resultCapacity < SLUICE_COUNT_RESULT_WORDS) {
        sluice_fault(p, slot, SLUICE_F_RESULT_OVERFLOW, opcode);
        return false;
    }
    job.slot = slot;
    job.bufferOffset = bufferOffset;
    job.length = length;
    job.resultOffset = resultOffset;
    return true;
}

// Warp 0 of a block: polls until it has claimed a slot the block must run
// (returns it in `job`) or the host asked for shutdown (job.slot = NO_SLOT).
// Cancelled and faulting slots are finished here without waking the block.
//
// One round reads up to 30 home-slot statuses, one other slot and the
// shutdown flag, all in parallel (one PCIe round trip), and tries the
// PUBLISHED ones in lane order. The claim is a system-scope compare-and-swap
// (the protocol asks only for atomicity among the GPU's threads; system scope
// makes sure it acts on the value in host memory, not on a cached copy).
__device__ __forceinline__ void sluice_poll(
    const SluiceParams& p, SluiceJob& job, unsigned& homeCursor, unsigned& stealCursor)
{
    const unsigned lane = threadIdx.x & 31u;
    const unsigned slotCount = (unsigned)p.slotCount;
    const unsigned grid = gridDim.x;
    const unsigned home = blockIdx.x;
    // Home slots: home, home + grid, home + 2 grid, ... (none when the grid is
    // larger than the ring; such a block only steals).
    const unsigned homeCount = home < slotCount ? (slotCount - 1u - home) / grid + 1u : 0u;
    const unsigned homeLanes = homeCount < SLUICE_HOME_LANES ? homeCount : SLUICE_HOME_LANES;
    const unsigned long long* control = (const unsigned long long*)p.ring;
    unsigned sleepNs = SLUICE_MIN_SLEEP_NS;

    for (;;) {
        unsigned slot = SLUICE_NO_SLOT;
        if (lane < homeLanes) {
            slot = home + ((homeCursor + lane) % homeCount) * grid;
        } else if (lane == SLUICE_STEAL_LANE) {
            slot = stealCursor;
        }
        int published = 0;
        if (slot != SLUICE_NO_SLOT) {
            published = sluice_load_u32(sluice_slot(p, slot) + SLUICE_W_STATUS) == SLUICE_S_PUBLISHED ? 1 : 0;
        }
        int stop = 0;
        if (lane == SLUICE_SHUTDOWN_LANE) {
            stop = sluice_load_u64(control + SLUICE_C_SHUTDOWN) != 0ull ? 1 : 0;
        }
        stop = __shfl_sync(SLUICE_FULL_MASK, stop, SLUICE_SHUTDOWN_LANE);
        unsigned candidates = __ballot_sync(SLUICE_FULL_MASK, published);

        if (homeCount != 0u) {
            homeCursor = (homeCursor + homeLanes) % homeCount;
        }
        stealCursor = stealCursor + 1u < slotCount ? stealCursor + 1u : 0u;

        if (stop) {
            job.slot = SLUICE_NO_SLOT;
            return;
        }

        bool found = false;
        while (candidates != 0u) {
            const int owner = __ffs(candidates) - 1;
            candidates &= candidates - 1u;
            const unsigned candidate = __shfl_sync(SLUICE_FULL_MASK, slot, owner);
            int admitted = 0;
            if (lane == 0u) {
                unsigned* status = sluice_slot(p, candidate) + SLUICE_W_STATUS;
                if (atomicCAS_system(status, SLUICE_S_PUBLISHED, SLUICE_S_CLAIMED) == SLUICE_S_PUBLISHED) {
                    admitted = sluice_admit(p, candidate, job) ? 1 : 2;
                }
            }
            admitted = __shfl_sync(SLUICE_FULL_MASK, admitted, 0);
            if (admitted == 1) {
                return;
            }
            if (admitted == 2) {
                found = true;   // finished on the spot (cancelled or faulted)
            }
        }

        if (found) {
            sleepNs = SLUICE_MIN_SLEEP_NS;
        } else {
            __nanosleep(sleepNs);
            sleepNs = sleepNs * 2u < SLUICE_MAX_SLEEP_NS ? sleepNs * 2u : SLUICE_MAX_SLEEP_NS;
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

// The whole block counts `length` bytes at `bytes` into its per-warp histograms:
// a scalar head up to 16-byte alignment, 16-byte loads (four in flight per
// thread), a scalar tail.
__device__ __forceinline__ void sluice_count(const unsigned char* bytes, unsigned length, unsigned* h) {
    const unsigned tid = threadIdx.x;
    unsigned head = (unsigned)((16u - ((unsigned)(unsigned long long)bytes & 15u)) & 15u);
    if (head > length) {
        head = length;
    }
    if (tid < head) {
        atomicAdd(h + __ldcg(bytes + tid), 1u);
    }
    const uint4* vectors = (const uint4*)(bytes + head);
    const unsigned vectorCount = (length - head) >> 4;
    unsigned i = tid;
    for (; i + 3u * SLUICE_BLOCK_THREADS < vectorCount; i += 4u * SLUICE_BLOCK_THREADS) {
        const uint4 a = __ldcg(vectors + i);
        const uint4 b = __ldcg(vectors + i + SLUICE_BLOCK_THREADS);
        const uint4 c = __ldcg(vectors + i + 2u * SLUICE_BLOCK_THREADS);
        const uint4 d = __ldcg(vectors + i + 3u * SLUICE_BLOCK_THREADS);
        sluice_count_vector(h, a);
        sluice_count_vector(h, b);
        sluice_count_vector(h, c);
        sluice_count_vector(h, d);
    }
    for (; i < vectorCount; i += SLUICE_BLOCK_THREADS) {
        sluice_count_vector(h, __ldcg(vectors + i));
    }
    const unsigned done = head + (vectorCount << 4);
    if (tid < length - done) {
        atomicAdd(h + __ldcg(bytes + done + tid), 1u);
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
            && sluice_load_u64(control + SLUICE_C_SLOT_COUNT) == p.slotCount;
        if (ringOK) {
            atomicAdd_system(control + SLUICE_C_WORKERS_RUNNING, 1ull);
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
    const unsigned slotCount = (unsigned)p.slotCount;
    unsigned homeCursor = 0u;
    unsigned stealCursor = (unsigned)(((unsigned long long)blockIdx.x * 2654435761ull + 1ull) % slotCount);

    for (;;) {
        if (tid < 32u) {
            sluice_poll(p, job, homeCursor, stealCursor);
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
        out[2u + tid] = total;
        if (tid == 0x0Au) {
            out[1] = total;
        }
        if (tid == 0u) {
            out[0] = mine.length;
        }
        __threadfence_system();
        __syncthreads();

        if (tid == 0u) {
            sluice_finish(p, mine.slot, SLUICE_S_DONE, SLUICE_COUNT_RESULT_WORDS,
                          SLUICE_C_SLOTS_DONE, mine.length, 0ull);
        }
    }

    if (tid == 0u) {
        __threadfence_system();
        atomicAdd_system(control + SLUICE_C_WORKERS_RUNNING, 0xFFFFFFFFFFFFFFFFull);
    }
}

// An empty kernel, for measuring launch latency.
extern "C" __global__ void sluice_empty() {}
