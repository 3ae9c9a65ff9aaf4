// Sluice persistent megakernel (CUDA C++, compiled at run time by NVRTC).
//
// The ring protocol's numbers are mirrored here. The source of truth is
// docs/protocol.md and Sources/SluiceCore (SlotLayout.swift, ControlBlock.swift,
// SlotStatus.swift, FaultCode.swift, Opcode.swift, TenantTable.swift) and
// Sources/SluiceOps (ScanTable.swift, ScanOp.swift, CRC32C.swift); when one of
// them changes, change the matching SLUICE_* constant below.
//
// No #include: NVRTC provides the CUDA builtins (atomics, __ldcg, __nanosleep,
// vector types) itself, and the CI check compiles this file with only the
// NVRTC library installed.
//
// Shape (see "dispatcher and workers" below): block 0's first warp is the
// dispatcher, the only code that polls the ring in host memory; blocks
// 1..workers are workers that wait on per-slot mailboxes in device memory
// and run the slots the dispatcher hands them with all 256 threads.
//
// Memory (see docs/protocol.md, "Memory ordering"):
// - the ring region (control block, slots, result areas), the data region and
//   the tenant table are pinned host memory mapped into the GPU; every access
//   to them crosses PCIe, so only one warp polls them while idle;
// - no atomic operation ever targets that memory: over PCIe they were seen to
//   be neither atomic nor fast (see "why no atomics touch host memory" below);
//   the counters live in device memory;
// - data bytes are read after an acquire fence with `ld.global.cv` (__ldcv):
//   for system memory it discards a matching L2 line and fetches again, so a
//   reused chunk buffer is never served from a stale L1 or L2 line;
// - scan tables live in device memory (cuMemAlloc), are immutable once
//   installed and never freed (nor their memory reused) while the kernel runs,
//   so they are read through the read-only cache (__ldg); the directory that
//   names them (device memory too) changes while the kernel runs, so its
//   entries are read with ld.volatile, never from a cached line.

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
// Host flags bit 1 (SlotHostFlag.deviceRegion): bufferOffset addresses the
// device ingest region (SluiceParams.deviceData), not the data region.
#define SLUICE_FLAG_DEVICE_REGION  2u

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
#define SLUICE_C_SCAN_DIRECTORY_ADDRESS 10u   // the scan-table directory (ScanDirectory), device memory
#define SLUICE_C_SCAN_DIRECTORY_ENTRIES 11u
#define SLUICE_C_TENANT_TABLE_ADDRESS 12u
#define SLUICE_C_TENANT_TABLE_WORDS 13u
#define SLUICE_CONTROL_WORDS       16u
#define SLUICE_MAGIC               0x534C554943450002ull

// Ring geometry (RingGeometry): slots start after the padded control block.
#define SLUICE_SLOTS_OFFSET        256ull
#define SLUICE_RING_ALIGNMENT      256ull

// Opcodes (Opcode).
#define SLUICE_OP_COUNT            1u
#define SLUICE_OP_SCAN             2u
#define SLUICE_OP_CRC32C           3u
// No operation: the dispatcher finishes it from the poll that saw it (see
// "the nop fast path" in sluice_dispatcher).
#define SLUICE_OP_NOP              4u
// Test-only opcodes (Opcode.testOnly): run only when the launch has
// SLUICE_P_TEST_OPCODES, otherwise they fault as unknown opcodes.
#define SLUICE_OP_TEST_ILLEGAL_ADDRESS 0x7E570001u
#define SLUICE_OP_TEST_HANG        0x7E570002u
// User operations (Opcode.userRange): the installed ones are spliced into
// this source by the host (see "user operations" below).
#define SLUICE_OP_USER_FIRST       0x10000u
#define SLUICE_OP_USER_LAST        0x1FFFFu

// Fault codes (FaultCode).
#define SLUICE_F_UNKNOWN_OPCODE        1u
#define SLUICE_F_UNSUPPORTED_OPCODE    2u
#define SLUICE_F_BUFFER_OUT_OF_BOUNDS  3u
#define SLUICE_F_RESULT_OUT_OF_BOUNDS  4u
#define SLUICE_F_RESULT_OVERFLOW       5u
#define SLUICE_F_BAD_ARGUMENTS         6u
#define SLUICE_F_TENANT_VIOLATION      7u
#define SLUICE_F_REGION_UNAVAILABLE    8u
#define SLUICE_F_OPERATION_NOT_INSTALLED 9u

// count opcode (CountOp): bytes, newlines, 256 bins.
#define SLUICE_COUNT_RESULT_WORDS  258u

// scan opcode (ScanOp, ScanTable).
#define SLUICE_SCAN_HEADER_WORDS   4u
#define SLUICE_SCAN_COUNT_ONLY     1u
// ScanDirectory: 4 words an entry (address lo, hi, words, owner); a scan
// slot's argument1 names its entry in bits 16-31, bits 1-15 are reserved.
#define SLUICE_SCAN_INDEX_SHIFT    16u
#define SLUICE_SCAN_RESERVED_BITS  0xFFFEu
#define SLUICE_SCAN_ANY_TENANT     0xFFFFFFFFu
#define SLUICE_SCAN_MAGIC          0x314E4353u
#define SLUICE_SCAN_CASE_FLAG      1u
#define SLUICE_SCAN_HASH_MULTIPLIER 0x9E3779B1u
// ScanTable.Header word indices.
#define SLUICE_SH_MAGIC            0u
#define SLUICE_SH_FLAGS            2u
#define SLUICE_SH_HASH_BITS        5u
#define SLUICE_SH_FILTER_BITS      6u
#define SLUICE_SH_KEY_LENGTH_MASK  7u
#define SLUICE_SH_FILTER_OFFSET    8u
#define SLUICE_SH_BUCKET_OFFSET    9u
#define SLUICE_SH_ENTRIES_OFFSET   10u
#define SLUICE_SH_PATTERN_OFFSET   11u
#define SLUICE_SH_BLOB_OFFSET      12u
#define SLUICE_SH_TOTAL_WORDS      14u
#define SLUICE_SCAN_HEADER_TABLE_WORDS 16u

// crc32c opcode (CRC32COp, CRC32C): reflected Castagnoli polynomial.
#define SLUICE_CRC_RESULT_WORDS    2u
#define SLUICE_CRC_POLY            0x82F63B78u

// Tenant table (TenantTable).
#define SLUICE_TENANT_MAGIC        0x31544E54u
#define SLUICE_TENANT_HEADER_WORDS 8u

// ---- kernel ABI (mirrored by `Megakernel` in Sources/SluiceCUDA/KernelBuild.swift) --

// Threads per block: the launch must use exactly this many (one histogram bin
// per thread when the block reduces its counts).
#define SLUICE_BLOCK_THREADS       256u
#define SLUICE_WARPS               (SLUICE_BLOCK_THREADS / 32u)
// 7 added the device ingest region (deviceData, deviceDataBytes); 8 the
// SLUICE_P_TEST_OPCODES flag with it (a kernel of either alone must refuse a launch);
// 9 the nop fast path, the counter publisher, SLUICE_P_TRACE and the trace
// words of the device state and the mailboxes.
#define SLUICE_PARAMS_VERSION      9ull

// Idle back-off of the dispatcher warp: after SLUICE_SPIN_ROUNDS polling
// rounds that found nothing it sleeps, doubling from MIN nanoseconds up to the
// launch's `idleSleepMaxNs`, and drops back to spinning as soon as a round
// finds a slot. A cap of 0 never sleeps.
#define SLUICE_MIN_SLEEP_NS        64u
#define SLUICE_SPIN_ROUNDS         64u
// A worker's polling warp reads device memory (L2) only; it naps this long
// between reads (0: it spins; one warp per block, L2 reads only).
#define SLUICE_WORKER_SLEEP_NS     0u
// Safety net: every this many idle rounds a worker also reads the host's
// shutdown flag itself (one PCIe read per worker every few hundred us).
#define SLUICE_SAFETY_POLL_ROUNDS  2048u
// Statuses one dispatcher lane loads before it looks at any (all in flight at once).
#define SLUICE_POLL_BATCH          8u
// The counter publisher's nap between looks at the device counters (L2 reads).
#define SLUICE_PUBLISHER_SLEEP_NS  256u

// Lanes of a worker's polling warp: 0..30 read the mailboxes of the block's
// own slots, 31 reads the stop flag.
#define SLUICE_HOME_LANES          31u
#define SLUICE_STOP_LANE           31u
#define SLUICE_NO_SLOT             0xFFFFFFFFu

#define SLUICE_FULL_MASK           0xFFFFFFFFu

// Launch flags (SluiceParams.flags): ways of touching host memory, kept so
// `sluice bench dispatch` can measure the difference; all are correct (cache
// operators do not change the memory model, and every host-facing fence here
// is half of a release/acquire pattern).
// fence.sc.sys (__threadfence_system) instead of fence.acq_rel.sys.
#define SLUICE_P_SC_FENCES         1ull
// Volatile loads (ld.volatile: relaxed, system scope) of the words the host
// writes (statuses, slot and control words, tenant table) instead of
// ld.global.cv, which for system memory discards any L2 copy and fetches
// again. The host's default since run 7 (about 1 us sooner per dispatch on the
// H100 machine); chunk bytes are always read with ld.global.cv.
#define SLUICE_P_VOLATILE_POLL     2ull
// Volatile (write-back) stores of statuses, results and counters instead of
// st.global.wt, which for system memory writes through the L2.
#define SLUICE_P_WB_STORES         4ull
// Fault injection (BackendConfiguration.faultInjection): the dispatcher
// accepts the test-only opcodes. A launch parameter, not a ring word, so that
// nothing a submitter writes into the ring can turn them on.
#define SLUICE_P_TEST_OPCODES      8ull
// Stage trace (sluice bench dispatch): the dispatcher and the workers read
// %globaltimer at each stage of a slot and add the durations to
// SluiceDeviceState.trace, which the host reads back. Off by default.
#define SLUICE_P_TRACE             16ull
// Every claim by the lane that found the slot, a lone slot too (the
// measured alternative to the whole warp claiming a lone slot).
#define SLUICE_P_LANE_CLAIMS       32ull
#define SLUICE_P_ALL               63ull

// Dynamic shared memory of every block (bytes; the launch passes exactly
// SLUICE_DYNAMIC_SHARED_BYTES and raises the function's limit to it):
//   filter cache   the scan table's filter bitmap, when it fits (64 KiB: up to
//                  2^19 filter bits, i.e. pattern sets below 32,768 literals)
//   crc tables     16 x 256 slicing tables, 4 x 256 "shift by 4096 bytes"
//                  table, 256 powers x^(128 d), 64 powers x^(2^k)
//   work area      per-warp count histograms, or the staged scan tile
#define SLUICE_FILTER_CACHE_WORDS  16384u
#define SLUICE_SCAN_TILE           16384u
#define SLUICE_SCAN_OVERLAP        240u
#define SLUICE_SM_FILTER           0u
#define SLUICE_SM_CRC_SLICES       65536u
#define SLUICE_SM_CRC_SHIFT        81920u
#define SLUICE_SM_CRC_XD           86016u
#define SLUICE_SM_CRC_POW          87040u
#define SLUICE_SM_WORK             87296u
#define SLUICE_SM_WORK_BYTES       16896u
#define SLUICE_DYNAMIC_SHARED_BYTES 104192u
static_assert(SLUICE_SM_CRC_SLICES == SLUICE_SM_FILTER + SLUICE_FILTER_CACHE_WORDS * 4u, "layout");
static_assert(SLUICE_SM_CRC_SHIFT == SLUICE_SM_CRC_SLICES + 16u * 256u * 4u, "layout");
static_assert(SLUICE_SM_CRC_XD == SLUICE_SM_CRC_SHIFT + 4u * 256u * 4u, "layout");
static_assert(SLUICE_SM_CRC_POW == SLUICE_SM_CRC_XD + 256u * 4u, "layout");
static_assert(SLUICE_SM_WORK == SLUICE_SM_CRC_POW + 64u * 4u, "layout");
static_assert(SLUICE_SM_WORK_BYTES >= SLUICE_WARPS * 256u * 4u, "histograms fit the work area");
static_assert(SLUICE_SM_WORK_BYTES >= 16u + SLUICE_SCAN_TILE + SLUICE_SCAN_OVERLAP + 16u, "the scan tile fits the work area");
static_assert(SLUICE_DYNAMIC_SHARED_BYTES == SLUICE_SM_WORK + SLUICE_SM_WORK_BYTES, "layout");

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
    unsigned long long idleSleepMaxNs;   // longest idle __nanosleep of the dispatcher; 0: never sleep
    unsigned long long state;            // device address of the zeroed device state (device memory, see below)
    unsigned long long flags;            // SLUICE_P_* bits
    unsigned long long workers;          // worker blocks: the grid is workers + 1 (block 0 dispatches)
    unsigned long long sharedBytes;      // dynamic shared bytes of the launch (SLUICE_DYNAMIC_SHARED_BYTES)
    unsigned long long deviceData;       // device address of the device ingest region (cuFile reads land there); 0: none
    unsigned long long deviceDataBytes;  // bytes a slot may address in it
};
static_assert(sizeof(SluiceParams) == 112, "SluiceParams is 14 x u64");

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
// - claims: the dispatcher warp is a slot's only reader on the worker side;
//   PUBLISHED -> CLAIMED (or -> DONE for a nop) is a plain store by it, so no
//   slot can ever run twice;
// - counters (epoch, slots done/faulted/cancelled, bytes, last fault, workers
//   running) live in device memory (SluiceDeviceState), where atomics are real,
//   and are copied into the host's control block by the counter publisher
//   (block 0's thread 32) whenever they change, and by each block as it starts
//   and leaves, one at a time (a device-memory token): counters first, a system
//   fence, then the epoch, so the host sees them move monotonically and never
//   sees the epoch ahead of them.
//   The host's copy may trail a slot's DONE status by a moment, which the
//   protocol allows (status first, epoch after).
//
// ---- dispatcher and workers ---------------------------------------------------------
//
// The first kernel (runs 1-4) had every block poll its own slots in host memory:
// 128 warps each reading host memory without pause. Its dispatch took ~370 us
// although one round trip through mapped memory takes 1.7 us, so the reads of
// 128 pollers queued behind each other on the PCIe link. Now only ONE warp
// reads host memory while the ring is idle:
//
// - the dispatcher (block 0, warp 0): each round, lane l loads the statuses of
//   slots l, l + 32, l + 64, ... (SLUICE_POLL_BATCH loads in flight per lane,
//   so a round of 256 slots is one PCIe round trip) and the shutdown flag.
//   Each load is the slot's status and opcode (8 bytes); a lane that sees a
//   PUBLISHED nop finishes it at once (DONE). For other PUBLISHED slots the
//   lanes fence (acquire); a lone slot is claimed by the whole warp (one
//   warp-wide load reads the slot's 16 words, control words 10..13 and the
//   mailbox head: one round trip, and lane 0 goes on), several by their own
//   lanes in parallel (six host loads each). The claiming lane checks every
//   argument exactly as the CPU executor does (cancel, opcode, bounds, tenant, opcode arguments),
//   stores CLAIMED, and then either finishes the slot itself (CANCELLED, or
//   FAULTED with the code) or hands it to the slot's worker through the
//   slot's mailbox in device memory: the job words, a device fence, then the
//   mailbox sequence number;
// - the workers (blocks 1..workers; worker w owns slots s with s % workers ==
//   w): warp 0 polls its slots' mailboxes in device memory (L2, no PCIe) and
//   the stop flag; on a new sequence number it fences (acquire), copies the
//   job, marks it taken, and the whole block runs it, writes the result words,
//   and stores DONE after a system fence, like before;
// - shutdown: the dispatcher sees the host's flag and sets the device stop
//   flag; a worker leaves when it has no job pending and sees the stop flag,
//   or (safety net) sees the host's flag itself, which it reads every
//   SLUICE_SAFETY_POLL_ROUNDS idle rounds.
//
// The dispatcher's CLAIMED store and the worker's DONE store go to the same
// word from two threads; the dispatcher's device-scope fence before the
// mailbox release and the worker's acquire order them (causality order), so
// the host never sees CLAIMED after DONE.

// Device-memory state of one launch (zeroed by the host before the launch),
// followed by one SluiceMailbox (16 words) per slot.
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
    unsigned long long stop;         // set by the dispatcher when the host asked for shutdown
    // Nops the dispatcher finished and the counter publisher has not yet
    // counted (the nop fast path hands their counting over).
    unsigned long long nopsFinished;
    // SLUICE_P_TRACE sums over the slots workers finished DONE, in ns of
    // %globaltimer: [0] slots, [1] the claim's acquire fence (the poll saw
    // PUBLISHED -> fence.sys done), [2] the claim's reads (-> slot and table
    // words read and checked), [3] hand-off (-> the worker block has the
    // job), [4] work (-> chunk read, op run, results stored), [5] release
    // (-> completion stored and fenced, just before DONE).
    unsigned long long trace[6];
    unsigned long long reserved[15];
};
static_assert(sizeof(SluiceDeviceState) == 256, "SluiceDeviceState is 32 x u64");

// Mailbox words (device memory, 16 x u32 per slot after SluiceDeviceState).
#define SLUICE_M_SEQ               0u   // written by the dispatcher: bumped once per job handed over
#define SLUICE_M_TAKEN             1u   // written by the worker: the last sequence number it took
#define SLUICE_M_OPCODE            2u
#define SLUICE_M_LENGTH            3u
#define SLUICE_M_BUFFER_LO         4u
#define SLUICE_M_BUFFER_HI         5u
#define SLUICE_M_RESULT_OFFSET     6u
#define SLUICE_M_RESULT_CAPACITY   7u
#define SLUICE_M_ARGUMENT0         8u
#define SLUICE_M_ARGUMENT1         9u
#define SLUICE_M_TABLE_LO          10u
#define SLUICE_M_TABLE_HI          11u
#define SLUICE_M_TABLE_WORDS       12u
#define SLUICE_M_TRACE_CLAIMED_LO  13u  // SLUICE_P_TRACE: %globaltimer when the dispatcher had checked the slot
#define SLUICE_M_TRACE_CLAIMED_HI  14u
#define SLUICE_M_TRACE_CLAIM_NS    15u  // and how long it took from the poll that saw PUBLISHED: fence ns << 16 | read ns (each at most 0xFFFF)
#define SLUICE_MAILBOX_WORDS       16u
#define SLUICE_DEVICE_STATE_BYTES  256ull

// ---- memory helpers -----------------------------------------------------------

__device__ __forceinline__ unsigned sluice_load_u32(const unsigned* p) {
    return *(const volatile unsigned*)p;
}

// 16 bytes of device memory the host may have rewritten (a copy on another
// stream) since this SM last read them: volatile, so never a stale L1 line.
__device__ __forceinline__ uint4 sluice_device_load_v4(const unsigned* p) {
    uint4 v;
    asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
    return v;
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

// Reads of words the host writes (slot words, control words, the tenant
// table): ld.volatile (SLUICE_P_VOLATILE_POLL, the host's default) or ld.cv,
// which always fetches from host memory (asm volatile: never hoisted or
// merged).
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

// 16 bytes (16-byte aligned) of host-written memory in one load.
__device__ __forceinline__ uint4 sluice_host_load_v4(const SluiceParams& p, const void* a) {
    uint4 v;
    if (p.flags & SLUICE_P_VOLATILE_POLL) {
        asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(a) : "memory");
    } else {
        asm volatile("ld.global.cv.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(a) : "memory");
    }
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

__device__ __forceinline__ unsigned* sluice_mailbox(const SluiceParams& p, unsigned slot) {
    return (unsigned*)(p.state + SLUICE_DEVICE_STATE_BYTES) + (unsigned long long)slot * SLUICE_MAILBOX_WORDS;
}

// A worker's current job, copied from its mailbox, shared by the block.
struct SluiceJob {
    unsigned long long bufferOffset;
    unsigned long long table;        // scan: device address of the table (its directory entry at the claim)
    unsigned slot;                   // SLUICE_NO_SLOT: leave the loop
    unsigned opcode;
    unsigned length;
    unsigned resultOffset;
    unsigned resultCapacity;
    unsigned argument0;
    unsigned argument1;
    unsigned tableWords;
    unsigned traceClaimNs;           // SLUICE_P_TRACE: the dispatcher's claim stage (SLUICE_M_TRACE_CLAIM_NS)
    unsigned long long traceClaimed; // SLUICE_P_TRACE: %globaltimer at the end of it
};

// ---- counters -------------------------------------------------------------------

// Copies the device counters into the host's control block, unless another
// thread is doing so (it then sees this thread's update and copies again: each
// side bumps one word, fences, then reads the other's, so one of the two
// always sees the other).
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

// Records a block arriving or leaving (or any count) in the device counters,
// then publishes them itself: at the start and the end of the kernel, when
// the counter publisher may not be running yet or any more. `counter` is a
// word index of SluiceDeviceState, 0 for none.
__device__ void sluice_tally(
    const SluiceParams& p, unsigned counter, unsigned long long bytes, unsigned long long lastFault,
    long long workers, bool finished);

__device__ void sluice_record(
    const SluiceParams& p, unsigned counter, unsigned long long bytes, unsigned long long lastFault,
    long long workers, bool finished)
{
    sluice_tally(p, counter, bytes, lastFault, workers, finished);
    sluice_publish_counters(p);
}

// Records one finished slot (or any count) in the device counters; the
// host's copy is the counter publisher's (block 0's thread 32), which copies
// them whenever they change, so the caller waits for no host-memory store
// and no system fence, and no change is copied twice. The caller has already
// stored and fenced the slot's terminal status, so the epoch never runs
// ahead of it. A block's last count (sluice_record at its exit) publishes
// them all itself, after the publisher may have left.
__device__ void sluice_tally(
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
}

// Block 0, thread 32: counts the nops the dispatcher finished and copies the
// device counters into the host's control block whenever they changed, until
// the dispatcher sets the stop flag; one last copy then. The dispatcher sets
// the flag only after its last nop count, and this thread reads the flag
// before the count, so no nop goes uncounted.
__device__ void sluice_counter_publisher(const SluiceParams& p) {
    SluiceDeviceState* d = (SluiceDeviceState*)p.state;
    unsigned long long seen = 0ull;
    unsigned long long nopsCounted = 0ull;
    for (;;) {
        const bool stop = sluice_load_u64(&d->stop) != 0ull;
        __threadfence();   // acquire: the dispatcher's last nop count came before its stop flag
        // Nops the dispatcher finished: counted here, after an acquire of its
        // count (so their DONE stores come before the epoch that counts them).
        const unsigned long long nops = sluice_load_u64(&d->nopsFinished);
        if (nops != nopsCounted) {
            __threadfence();
            const unsigned long long n = nops - nopsCounted;
            nopsCounted = nops;
            atomicAdd(&d->slotsDone, n);
            __threadfence();
            atomicAdd(&d->epoch, n);
            __threadfence();
            atomicAdd(&d->changes, 1ull);
            __threadfence();
        }
        const unsigned long long changes = sluice_load_u64(&d->changes);
        if (changes != seen || stop) {
            seen = changes;
            __threadfence();
            sluice_publish_counters(p);
        }
        if (stop) {
            return;
        }
        __nanosleep(SLUICE_PUBLISHER_SLEEP_NS);
    }
}

// %globaltimer (ns, one clock for every multiprocessor), for SLUICE_P_TRACE.
__device__ __forceinline__ unsigned long long sluice_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
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
        sluice_tally(p, SLUICE_D_CANCELLED, 0ull, 0ull, 0ll, true);
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
    sluice_tally(p, SLUICE_D_FAULTED, 0ull, record, 0ll, true);
}

// ---- the dispatcher -------------------------------------------------------------------

// The tenant table's header as the dispatcher's lane 0 last read it. A table's
// header never changes while it is installed (the host replaces a table by
// installing another at another address), so a lane reads it once per table.
struct SluiceTenantCache {
    unsigned long long address;
    unsigned long long chunkBytes;
    unsigned long long areaWords;
    unsigned tenants;
    unsigned chunks;
    unsigned areas;
    unsigned ok;
};

// TenantTable.permits on the table in mapped host memory (control words
// 12-13), for a slot that passed the bounds checks.
__device__ bool sluice_tenant_permits(
    const SluiceParams& p, SluiceTenantCache& cache, unsigned long long address, unsigned long long words,
    unsigned tenant, unsigned long long bufferOffset, unsigned length, unsigned resultOffset, unsigned resultCapacity)
{
    const unsigned* table = (const unsigned*)address;
    if (cache.address != address) {
        const uint4 h0 = sluice_host_load_v4(p, table);
        const uint4 h1 = sluice_host_load_v4(p, table + 4);
        cache.address = address;
        cache.tenants = h0.y;
        cache.chunkBytes = h0.z;
        cache.chunks = h0.w;
        cache.areaWords = h1.x;
        cache.areas = h1.y;
        cache.ok = h0.x == SLUICE_TENANT_MAGIC && h0.y >= 1u && h0.z != 0u && h1.x != 0u
            && words == (unsigned long long)SLUICE_TENANT_HEADER_WORDS + h0.w + h1.y;
    }
    if (!cache.ok || tenant >= cache.tenants) {
        return false;
    }
    if (length > 0u) {
        const unsigned long long first = bufferOffset / cache.chunkBytes;
        const unsigned long long last = (bufferOffset + length - 1ull) / cache.chunkBytes;
        if (last >= cache.chunks) {
            return false;
        }
        for (unsigned long long c = first; c <= last; ++c) {
            if (sluice_host_load_u32(p, table + SLUICE_TENANT_HEADER_WORDS + c) != tenant) {
                return false;
            }
        }
    }
    if (resultCapacity > 0u) {
        const unsigned long long first = (unsigned long long)resultOffset / cache.areaWords;
        const unsigned long long last = ((unsigned long long)resultOffset + resultCapacity - 1ull) / cache.areaWords;
        if (last >= cache.areas) {
            return false;
        }
        for (unsigned long long a = first; a <= last; ++a) {
            if (sluice_host_load_u32(p, table + SLUICE_TENANT_HEADER_WORDS + cache.chunks + a) != tenant) {
                return false;
            }
        }
    }
    return true;
}

// ---- user operations (Opcode.userRange) -----------------------------------------
//
// Declared here, defined at the end of this file: the host
// (UserOperationSource.swift) replaces the lines from the BEGIN marker there
// to the END marker with the installed operations (the header
// sluice_operation.h, each operation's source in its own namespace under a
// #line directive that names its own file, and a generated definition of
// these two, a switch over the installed opcodes). User code thus comes after
// all of Sluice's own code, so that its macros and names cannot change it.
__device__ __forceinline__ unsigned sluice_user_result_words(unsigned opcode);

// Every thread of the worker block: zero the declared result words, run the
// operation, and leave its fault code (0: none) in *fault; returns the words.
__device__ __forceinline__ unsigned sluice_user_run(
    unsigned opcode, const unsigned char* chunk, unsigned length, unsigned long long fileOffset,
    unsigned argument0, unsigned argument1, unsigned* results, unsigned char* scratch, unsigned* fault);

// Lane 0's half of a claim (sluice_dispatch_slot read the words): checks
// every argument in the order the CPU executor does (SlotExecutor.swift),
// stores CLAIMED, and finishes the slot (cancel, fault) or hands it to its
// worker. w0..w3: the slot's words; c0, c1: control words 10..13 (scan-table
// directory and tenant table); seq: the mailbox's sequence number.
__device__ void sluice_claim_checked(
    const SluiceParams& p, unsigned slot, SluiceTenantCache& tenants, uint4 w0, uint4 w1, uint4 w2, uint4 w3,
    uint4 c0, uint4 c1, unsigned seq, unsigned long long seenAt, unsigned long long fencedAt)
{
    unsigned* s = sluice_slot(p, slot);
    const unsigned opcode = w0.y;
    const unsigned tenant = w0.z;
    const unsigned long long bufferOffset = (unsigned long long)w1.x | (unsigned long long)w1.y << 32;
    const unsigned length = w1.z;
    const unsigned argument0 = w2.z;
    const unsigned argument1 = w2.w;
    const unsigned resultOffset = w3.x;
    const unsigned resultCapacity = w3.y;
    const unsigned hostFlags = w3.z;
    const unsigned long long scanDirectory = (unsigned long long)c0.x | (unsigned long long)c0.y << 32;
    const unsigned long long scanEntries = (unsigned long long)c0.z | (unsigned long long)c0.w << 32;
    unsigned long long scanTable = 0ull;   // scan: from the directory entry argument1 names
    unsigned scanWords = 0u;
    const unsigned long long tenantTable = (unsigned long long)c1.x | (unsigned long long)c1.y << 32;
    const unsigned long long tenantWords = (unsigned long long)c1.z | (unsigned long long)c1.w << 32;
    // A user opcode: its declared result words, 0 when none is installed.
    const bool user = opcode >= SLUICE_OP_USER_FIRST && opcode <= SLUICE_OP_USER_LAST;
    const unsigned userWords = user ? sluice_user_result_words(opcode) : 0u;

    // The region the chunk is in: the data region (mapped host memory) or the
    // device ingest region (device memory cuFile read into); bounds are
    // checked against the size of the one named.
    const bool onDevice = (hostFlags & SLUICE_FLAG_DEVICE_REGION) != 0u;
    const unsigned long long regionBase = onDevice ? p.deviceData : p.data;
    const unsigned long long regionBytes = onDevice ? p.deviceDataBytes : p.dataBytes;

    unsigned verdict = SLUICE_NO_SLOT;   // run it
    // A nop never gets here: the poll that saw it finished it (its cancel
    // flag is ignored, Opcode.nop), so it is no opcode of this list.
    if (hostFlags & SLUICE_FLAG_CANCEL) {
        verdict = 0u;
    } else if (user && userWords == 0u) {
        verdict = SLUICE_F_OPERATION_NOT_INSTALLED;
    } else if (!user && opcode != SLUICE_OP_COUNT && opcode != SLUICE_OP_SCAN && opcode != SLUICE_OP_CRC32C
        && !((p.flags & SLUICE_P_TEST_OPCODES) != 0ull
             && (opcode == SLUICE_OP_TEST_ILLEGAL_ADDRESS || opcode == SLUICE_OP_TEST_HANG))) {
        verdict = SLUICE_F_UNKNOWN_OPCODE;
    } else if (regionBase == 0ull) {
        verdict = SLUICE_F_REGION_UNAVAILABLE;
    } else if (bufferOffset > regionBytes || (unsigned long long)length > regionBytes - bufferOffset) {
        // 64-bit arithmetic: offset + length cannot wrap.
        verdict = SLUICE_F_BUFFER_OUT_OF_BOUNDS;
    } else if ((unsigned long long)resultOffset + resultCapacity > p.resultWordsTotal) {
        verdict = SLUICE_F_RESULT_OUT_OF_BOUNDS;
    } else if (tenantTable != 0ull
        && !sluice_tenant_permits(p, tenants, tenantTable, tenantWords, tenant, bufferOffset, length, resultOffset, resultCapacity)) {
        verdict = SLUICE_F_TENANT_VIOLATION;
    } else if (opcode == SLUICE_OP_COUNT) {
        if (resultCapacity < SLUICE_COUNT_RESULT_WORDS) {
            verdict = SLUICE_F_RESULT_OVERFLOW;
        }
    } else if (opcode == SLUICE_OP_CRC32C) {
        if (resultCapacity < SLUICE_CRC_RESULT_WORDS) {
            verdict = SLUICE_F_RESULT_OVERFLOW;
        }
    } else if (opcode == SLUICE_OP_TEST_ILLEGAL_ADDRESS || opcode == SLUICE_OP_TEST_HANG) {
        // Admitted above only with SLUICE_P_TEST_OPCODES; no arguments.
    } else if (user) {
        if (resultCapacity < userWords) {
            verdict = SLUICE_F_RESULT_OVERFLOW;
        }
        // A user operation has no scan table: the mailbox's table words
        // carry the chunk's file offset (slot words 7 and 8) instead.
        scanTable = (unsigned long long)w1.w | (unsigned long long)w2.x << 32;
    } else {   // scan: the directory entry (ScanDirectory.lookup), its owner, then the arguments
        const unsigned index = argument1 >> SLUICE_SCAN_INDEX_SHIFT;
        if ((argument1 & SLUICE_SCAN_RESERVED_BITS) != 0u || scanDirectory == 0ull || (unsigned long long)index >= scanEntries) {
            verdict = SLUICE_F_BAD_ARGUMENTS;
        } else {
            const uint4 e = sluice_device_load_v4((const unsigned*)scanDirectory + 4ull * index);
            scanTable = (unsigned long long)e.x | (unsigned long long)e.y << 32;
            scanWords = e.z;
            if (scanWords == 0u) {
                verdict = SLUICE_F_BAD_ARGUMENTS;   // an empty entry
            } else if (tenantTable != 0ull && e.w != SLUICE_SCAN_ANY_TENANT && e.w != tenant) {
                verdict = SLUICE_F_TENANT_VIOLATION;
            } else if (scanWords < SLUICE_SCAN_HEADER_TABLE_WORDS || argument0 > length) {
                verdict = SLUICE_F_BAD_ARGUMENTS;
            } else if (resultCapacity < SLUICE_SCAN_HEADER_WORDS) {
                verdict = SLUICE_F_RESULT_OVERFLOW;
            }
        }
    }

    // The dispatcher warp is the slot's only writer on the worker side until
    // it hands the slot over: a plain store.
    sluice_host_store_u32(p, s + SLUICE_W_STATUS, SLUICE_S_CLAIMED);
    if (verdict != SLUICE_NO_SLOT) {
        sluice_finish_early(p, slot, verdict, opcode);   // cancelled (0) or faulted
        return;
    }
    unsigned* m = sluice_mailbox(p, slot);
    // Workers read the chunk at p.data + the mailbox's offset; for the device
    // region hand them the offset that lands on its base (unsigned 64-bit
    // arithmetic wraps, so p.data + (base + offset - p.data) == base + offset).
    const unsigned long long workerOffset = regionBase + bufferOffset - p.data;
    sluice_store_u32(m + SLUICE_M_OPCODE, opcode);
    sluice_store_u32(m + SLUICE_M_LENGTH, length);
    sluice_store_u32(m + SLUICE_M_BUFFER_LO, (unsigned)workerOffset);
    sluice_store_u32(m + SLUICE_M_BUFFER_HI, (unsigned)(workerOffset >> 32));
    sluice_store_u32(m + SLUICE_M_RESULT_OFFSET, resultOffset);
    sluice_store_u32(m + SLUICE_M_RESULT_CAPACITY, resultCapacity);
    sluice_store_u32(m + SLUICE_M_ARGUMENT0, argument0);
    sluice_store_u32(m + SLUICE_M_ARGUMENT1, argument1);
    sluice_store_u32(m + SLUICE_M_TABLE_LO, (unsigned)scanTable);
    sluice_store_u32(m + SLUICE_M_TABLE_HI, (unsigned)(scanTable >> 32));
    sluice_store_u32(m + SLUICE_M_TABLE_WORDS, scanWords);
    if (p.flags & SLUICE_P_TRACE) {
        const unsigned long long claimed = sluice_now();
        const unsigned long long fenceNs = fencedAt - seenAt < 0xFFFFull ? fencedAt - seenAt : 0xFFFFull;
        const unsigned long long readNs = claimed - fencedAt < 0xFFFFull ? claimed - fencedAt : 0xFFFFull;
        sluice_store_u32(m + SLUICE_M_TRACE_CLAIMED_LO, (unsigned)claimed);
        sluice_store_u32(m + SLUICE_M_TRACE_CLAIMED_HI, (unsigned)(claimed >> 32));
        sluice_store_u32(m + SLUICE_M_TRACE_CLAIM_NS, (unsigned)(fenceNs << 16 | readNs));
    }
    // Release (device scope): the CLAIMED store and the job words before the
    // sequence number the worker acquires.
    __threadfence();
    sluice_store_u32(m + SLUICE_M_SEQ, seq + 1u);
}

__device__ __forceinline__ uint4 sluice_shfl_v4(uint4 v, unsigned from) {
    uint4 r;
    r.x = __shfl_sync(SLUICE_FULL_MASK, v.x, from);
    r.y = __shfl_sync(SLUICE_FULL_MASK, v.y, from);
    r.z = __shfl_sync(SLUICE_FULL_MASK, v.z, from);
    r.w = __shfl_sync(SLUICE_FULL_MASK, v.w, from);
    return r;
}

// Claims one PUBLISHED slot with the calling lane alone (the lane polls it
// and fenced after seeing PUBLISHED): its six host loads and the mailbox
// head, then sluice_claim_checked. Lanes that found slots call it at the
// same time, so a burst of slots is claimed in parallel.
__device__ void sluice_dispatch_slot_alone(
    const SluiceParams& p, unsigned slot, SluiceTenantCache& tenants, unsigned long long seenAt,
    unsigned long long fencedAt)
{
    const unsigned* s = sluice_slot(p, slot);
    const unsigned long long* control = (const unsigned long long*)p.ring;
    const uint4 w0 = sluice_host_load_v4(p, s);
    const uint4 w1 = sluice_host_load_v4(p, s + 4);
    const uint4 w2 = sluice_host_load_v4(p, s + 8);
    const uint4 w3 = sluice_host_load_v4(p, s + 12);
    const uint4 c0 = sluice_host_load_v4(p, control + SLUICE_C_SCAN_DIRECTORY_ADDRESS);
    const uint4 c1 = sluice_host_load_v4(p, control + SLUICE_C_TENANT_TABLE_ADDRESS);
    const unsigned seq = sluice_load_u32(sluice_mailbox(p, slot) + SLUICE_M_SEQ);
    sluice_claim_checked(p, slot, tenants, w0, w1, w2, w3, c0, c1, seq, seenAt, fencedAt);
}

// Claims one PUBLISHED slot with the whole dispatcher warp, converged, after
// the acquire (fence and warp barrier): the way for a lone slot. Everything
// the claim reads is one load instruction of the warp, so one round trip:
// lanes 0-3 the slot's four 16-byte quarters, lanes 4-5 control words
// 10..13, lane 6 the head of the slot's mailbox (device memory). Measured:
// the six host loads issued by one lane took 3.5-3.8 us, about three round
// trips, this 1.5 us (RESULTS.md, runs 25-30). Lane 0 then does the rest
// (sluice_claim_checked).
__device__ void sluice_dispatch_slot(
    const SluiceParams& p, unsigned slot, SluiceTenantCache& tenants, unsigned long long seenAt,
    unsigned long long fencedAt)
{
    const unsigned lane = threadIdx.x & 31u;
    const unsigned* s = sluice_slot(p, slot);
    const unsigned long long* control = (const unsigned long long*)p.ring;
    uint4 v;
    v.x = v.y = v.z = v.w = 0u;
    if (lane < 4u) {
        v = sluice_host_load_v4(p, s + 4u * lane);
    } else if (lane < 6u) {
        v = sluice_host_load_v4(p, control + SLUICE_C_SCAN_DIRECTORY_ADDRESS + 2u * (lane - 4u));
    } else if (lane == 6u) {
        asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(sluice_mailbox(p, slot)) : "memory");
    }
    const uint4 w0 = sluice_shfl_v4(v, 0u);
    const uint4 w1 = sluice_shfl_v4(v, 1u);
    const uint4 w2 = sluice_shfl_v4(v, 2u);
    const uint4 w3 = sluice_shfl_v4(v, 3u);
    const uint4 c0 = sluice_shfl_v4(v, 4u);
    const uint4 c1 = sluice_shfl_v4(v, 5u);
    const unsigned seq = __shfl_sync(SLUICE_FULL_MASK, v.x, 6u);   // SLUICE_M_SEQ is word 0
    if (lane == 0u) {
        sluice_claim_checked(p, slot, tenants, w0, w1, w2, w3, c0, c1, seq, seenAt, fencedAt);
    }
    __syncwarp(SLUICE_FULL_MASK);
}

// Block 0, warp 0: polls every slot's status and the shutdown flag until the
// host asks for shutdown; then sets the device stop flag for the workers.
__device__ void sluice_dispatcher(const SluiceParams& p) {
    const unsigned lane = threadIdx.x & 31u;
    const unsigned slotCount = (unsigned)p.slotCount;
    const unsigned perLane = (slotCount + 31u) / 32u;
    const unsigned long long* control = (const unsigned long long*)p.ring;
    const unsigned sleepCap = p.idleSleepMaxNs > 0xFFFFFFull ? 0xFFFFFFu : (unsigned)p.idleSleepMaxNs;
    unsigned sleepNs = SLUICE_MIN_SLEEP_NS;
    unsigned idleRounds = 0u;
    SluiceTenantCache tenants;
    tenants.address = 0ull;
    tenants.chunkBytes = 1ull;
    tenants.areaWords = 1ull;
    tenants.tenants = 0u;
    tenants.chunks = 0u;
    tenants.areas = 0u;
    tenants.ok = 0u;

    for (;;) {
        // Issued first, looked at last: the flag's read overlaps the statuses'.
        unsigned long long shutdown = 0ull;
        if (lane == 0u) {
            shutdown = sluice_host_load_u64(p, control + SLUICE_C_SHUTDOWN);
        }
        int found = 0;
        for (unsigned g = 0u; g < perLane; g += SLUICE_POLL_BATCH) {
            // Each load is slot words 0-1 (status and opcode) in one aligned
            // 8-byte read: one PCIe read request, as a 4-byte status was.
            unsigned long long head[SLUICE_POLL_BATCH];
#pragma unroll
            for (unsigned j = 0u; j < SLUICE_POLL_BATCH; ++j) {
                const unsigned slot = lane + 32u * (g + j);
                head[j] = SLUICE_S_EMPTY;
                if (g + j < perLane && slot < slotCount) {
                    head[j] = sluice_host_load_u64(p, (const unsigned long long*)(sluice_slot(p, slot) + SLUICE_W_STATUS));
                }
            }
            unsigned mine = 0u;
            unsigned nops = 0u;
#pragma unroll
            for (unsigned j = 0u; j < SLUICE_POLL_BATCH; ++j) {
                if ((unsigned)head[j] == SLUICE_S_PUBLISHED) {
                    if ((unsigned)(head[j] >> 32) == SLUICE_OP_NOP) {
                        nops |= 1u << j;
                    } else {
                        mine |= 1u << j;
                    }
                }
            }
            if (nops != 0u) {
                // The nop fast path: the poll read the opcode with the status,
                // and a nop reads no other word (Opcode.nop), so PUBLISHED ->
                // DONE is one store with no acquire fence and no hand-off;
                // its completion word is the 0 the host published. The
                // opcode is current: the host stores it before the status
                // with release, and an aligned 8-byte read is single-copy
                // atomic (docs/protocol.md, "The nop fast path").
                found = 1;
                const unsigned n = (unsigned)__popc(nops);
                while (nops != 0u) {
                    const unsigned j = (unsigned)(__ffs(nops) - 1);
                    nops &= nops - 1u;
                    sluice_host_store_u32(p, sluice_slot(p, lane + 32u * (g + j)) + SLUICE_W_STATUS, SLUICE_S_DONE);
                }
                // Counting is the counter publisher's: one device-scope
                // release (the DONE stores before the count it acquires; its
                // fence.sys before the epoch store carries them on to the
                // host, release being cumulative) and one atomic. No system
                // fence here: it would keep this warp from polling for as long
                // as the DONE stores take to reach host memory.
                __threadfence();
                atomicAdd(&((SluiceDeviceState*)p.state)->nopsFinished, (unsigned long long)n);
            }
            // The slots the lanes found: claimed by the whole warp when there
            // is one, by each lane when there are several.
            const unsigned pending = __ballot_sync(SLUICE_FULL_MASK, mine != 0u);
            if (pending != 0u) {
                found = 1;
                const unsigned long long seenAt = (p.flags & SLUICE_P_TRACE) ? sluice_now() : 0ull;
                // Acquire: a lane's relaxed read of PUBLISHED plus its fence
                // orders the host's payload and chunk writes before what it
                // reads next, and the warp barrier before what every lane
                // reads next.
                sluice_fence_system(p);
                __syncwarp(SLUICE_FULL_MASK);
                const unsigned long long fencedAt = (p.flags & SLUICE_P_TRACE) ? sluice_now() : 0ull;
                const unsigned owner = (unsigned)(__ffs(pending) - 1);
                const unsigned ownerMine = __shfl_sync(SLUICE_FULL_MASK, mine, owner);
                if ((p.flags & SLUICE_P_LANE_CLAIMS) == 0ull
                    && (pending & (pending - 1u)) == 0u && (ownerMine & (ownerMine - 1u)) == 0u) {
                    // A lone slot (the latency case): the warp reads it in one round trip.
                    const unsigned j = (unsigned)(__ffs(ownerMine) - 1);
                    sluice_dispatch_slot(p, owner + 32u * (g + j), tenants, seenAt, fencedAt);
                } else {
                    // Several (the throughput case): each lane claims its own,
                    // all lanes at once, as many round trips as its slots.
                    while (mine != 0u) {
                        const unsigned j = (unsigned)(__ffs(mine) - 1);
                        mine &= mine - 1u;
                        sluice_dispatch_slot_alone(p, lane + 32u * (g + j), tenants, seenAt, fencedAt);
                    }
                }
            }
        }
        const int stop = __shfl_sync(SLUICE_FULL_MASK, shutdown != 0ull ? 1 : 0, 0);
        if (stop) {
            // Release: every lane's nop counts before the flag (the warp
            // barrier orders the lanes' fenced counts before lane 0's store).
            __threadfence();
            __syncwarp(SLUICE_FULL_MASK);
            if (lane == 0u) {
                SluiceDeviceState* d = (SluiceDeviceState*)p.state;
                sluice_store_u64(&d->stop, 1ull);
                __threadfence();
            }
            __syncwarp(SLUICE_FULL_MASK);
            return;
        }
        if (__any_sync(SLUICE_FULL_MASK, found)) {
            idleRounds = 0u;
            sleepNs = SLUICE_MIN_SLEEP_NS;
        } else if (idleRounds < SLUICE_SPIN_ROUNDS) {
            ++idleRounds;
        } else if (sleepCap != 0u) {
            __nanosleep(sleepNs < sleepCap ? sleepNs : sleepCap);
            sleepNs = sleepNs * 2u < sleepCap ? sleepNs * 2u : sleepCap;
        }
    }
}

// ---- a worker's polling warp ------------------------------------------------------------

// Warp 0 of worker `w` (of `workers`): waits on the mailboxes of its slots
// (w, w + workers, ...) in device memory until one holds a job (copied into
// `job`, marked taken) or the stop flag is set with no job pending
// (job.slot = NO_SLOT).
__device__ __forceinline__ void sluice_worker_poll(
    const SluiceParams& p, SluiceJob& job, unsigned& cursor, unsigned w, unsigned workers)
{
    const unsigned lane = threadIdx.x & 31u;
    const unsigned slotCount = (unsigned)p.slotCount;
    const unsigned homeCount = w < slotCount ? (slotCount - 1u - w) / workers + 1u : 0u;
    const unsigned homeLanes = homeCount < SLUICE_HOME_LANES ? homeCount : SLUICE_HOME_LANES;
    const unsigned long long* control = (const unsigned long long*)p.ring;
    SluiceDeviceState* d = (SluiceDeviceState*)p.state;
    unsigned rounds = 0u;

    for (;;) {
        const unsigned slot = lane < homeLanes ? w + ((cursor + lane) % homeCount) * workers : SLUICE_NO_SLOT;
        int pending = 0;
        if (slot != SLUICE_NO_SLOT) {
            const unsigned* m = sluice_mailbox(p, slot);
            unsigned seq, taken;
            asm volatile("ld.volatile.global.v2.u32 {%0, %1}, [%2];" : "=r"(seq), "=r"(taken) : "l"(m) : "memory");
            pending = seq != taken ? 1 : 0;
        }
        int stop = 0;
        if (lane == SLUICE_STOP_LANE) {
            stop = sluice_load_u64(&d->stop) != 0ull ? 1 : 0;
            ++rounds;
            if (!stop && rounds % SLUICE_SAFETY_POLL_ROUNDS == 0u) {
                stop = sluice_host_load_u64(p, control + SLUICE_C_SHUTDOWN) != 0ull ? 1 : 0;
            }
        }
        stop = __shfl_sync(SLUICE_FULL_MASK, stop, SLUICE_STOP_LANE);
        const unsigned candidates = __ballot_sync(SLUICE_FULL_MASK, pending);
        if (candidates != 0u) {
            const unsigned owner = (unsigned)(__ffs(candidates) - 1);
            const unsigned candidate = __shfl_sync(SLUICE_FULL_MASK, slot, owner);
            // Next round starts after this slot, so every owned slot gets its turn.
            cursor = (cursor + owner + 1u) % homeCount;
            __threadfence();   // acquire: the job words were written before the sequence number
            unsigned* m = sluice_mailbox(p, candidate);
            unsigned word = 0u;
            if (lane < SLUICE_MAILBOX_WORDS) {
                word = sluice_load_u32(m + lane);
            }
            const unsigned seq = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_SEQ);
            const unsigned opcode = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_OPCODE);
            const unsigned length = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_LENGTH);
            const unsigned bufferLo = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_BUFFER_LO);
            const unsigned bufferHi = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_BUFFER_HI);
            const unsigned resultOffset = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_RESULT_OFFSET);
            const unsigned resultCapacity = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_RESULT_CAPACITY);
            const unsigned argument0 = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_ARGUMENT0);
            const unsigned argument1 = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_ARGUMENT1);
            const unsigned tableLo = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_TABLE_LO);
            const unsigned tableHi = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_TABLE_HI);
            const unsigned tableWords = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_TABLE_WORDS);
            const unsigned claimedLo = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_TRACE_CLAIMED_LO);
            const unsigned claimedHi = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_TRACE_CLAIMED_HI);
            const unsigned claimNs = __shfl_sync(SLUICE_FULL_MASK, word, SLUICE_M_TRACE_CLAIM_NS);
            if (lane == 0u) {
                sluice_store_u32(m + SLUICE_M_TAKEN, seq);
                job.slot = candidate;
                job.opcode = opcode;
                job.length = length;
                job.bufferOffset = (unsigned long long)bufferLo | (unsigned long long)bufferHi << 32;
                job.resultOffset = resultOffset;
                job.resultCapacity = resultCapacity;
                job.argument0 = argument0;
                job.argument1 = argument1;
                job.table = (unsigned long long)tableLo | (unsigned long long)tableHi << 32;
                job.tableWords = tableWords;
                job.traceClaimNs = claimNs;
                job.traceClaimed = (unsigned long long)claimedLo | (unsigned long long)claimedHi << 32;
            }
            __syncwarp(SLUICE_FULL_MASK);
            return;
        }
        if (stop) {
            if (lane == 0u) {
                job.slot = SLUICE_NO_SLOT;
            }
            __syncwarp(SLUICE_FULL_MASK);
            return;
        }
        if (homeCount > homeLanes) {
            cursor = (cursor + homeLanes) % homeCount;
        }
        if (SLUICE_WORKER_SLEEP_NS != 0u) {
            __nanosleep(SLUICE_WORKER_SLEEP_NS);
        }
    }
}

// ---- count -------------------------------------------------------------------------------

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

// ---- crc32c ----------------------------------------------------------------------------
//
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

// ---- scan ------------------------------------------------------------------------------
//
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
        unsigned ok = h[SLUICE_SH_MAGIC] == SLUICE_SCAN_MAGIC && h[SLUICE_SH_TOTAL_WORDS] == words
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
                const unsigned h = (k == 4u ? key : key | (k << 24)) * SLUICE_SCAN_HASH_MULTIPLIER;
                const unsigned bit = h >> filterShift;
                const unsigned filterWord = cached ? filterCache[bit >> 5] : __ldg(filter + (bit >> 5));
                if (!((filterWord >> (bit & 31u)) & 1u)) {
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

// ---- the megakernel -------------------------------------------------------------------

// Launched once with workers + 1 blocks of SLUICE_BLOCK_THREADS threads and
// SLUICE_DYNAMIC_SHARED_BYTES of dynamic shared memory; every block must be
// resident at once (the host sizes the grid from the occupancy API). Block 0
// dispatches, the others work; all leave when the host sets the shutdown flag.
extern "C" __global__ void __launch_bounds__(SLUICE_BLOCK_THREADS, 2)
sluice_megakernel(const SluiceParams p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ SluiceJob job;
    __shared__ SluiceScanInfo scanInfo;
    __shared__ unsigned long long foundShared;
    __shared__ unsigned storedShared;
    __shared__ unsigned reduce[SLUICE_WARPS];
    __shared__ unsigned char ends[32];
    __shared__ int ringOK;
    __shared__ unsigned userFault;   // a user operation's fault code (sluice_user_run), 0: none

    const unsigned tid = threadIdx.x;
    unsigned long long* control = (unsigned long long*)p.ring;

    if (tid == 0u) {
        unsigned dynamicShared;
        asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(dynamicShared));
        ringOK = p.version == SLUICE_PARAMS_VERSION
            && blockDim.x == SLUICE_BLOCK_THREADS && blockDim.y == 1u && blockDim.z == 1u
            && p.slotCount != 0ull && p.slotCount <= 0xFFFFFFFEull
            && p.workers >= 1ull && p.workers <= p.slotCount && (unsigned long long)gridDim.x == p.workers + 1ull
            && p.sharedBytes == SLUICE_DYNAMIC_SHARED_BYTES && dynamicShared >= SLUICE_DYNAMIC_SHARED_BYTES
            && p.resultsOffset >= SLUICE_SLOTS_OFFSET + p.slotCount * SLUICE_SLOT_WORDS * 4ull
            && p.resultsOffset % SLUICE_RING_ALIGNMENT == 0ull
            && sluice_load_u64(control + SLUICE_C_MAGIC) == SLUICE_MAGIC
            && sluice_load_u64(control + SLUICE_C_SLOT_COUNT) == p.slotCount
            && p.state != 0ull && p.state % 256ull == 0ull
            && (p.flags & ~SLUICE_P_ALL) == 0ull;
        if (ringOK) {
            sluice_record(p, 0u, 0ull, 0ull, 1ll, false);   // this block runs now
        }
        scanInfo.address = 0ull;
        scanInfo.words = 0u;
        scanInfo.ok = 0u;
    }
    __syncthreads();
    if (!ringOK) {
        return;   // the host sees the kernel end before shutdown and reports it
    }

    if (blockIdx.x == 0u) {
        if (tid < 32u) {
            sluice_dispatcher(p);
        } else if (tid == 32u) {
            sluice_counter_publisher(p);
        }
        if (tid == 0u) {
            sluice_fence_system(p);
            sluice_record(p, 0u, 0ull, 0ull, -1ll, false);   // the dispatcher has left
        }
        return;
    }

    const unsigned worker = blockIdx.x - 1u;
    const unsigned workers = (unsigned)p.workers;
    sluice_crc_tables(smem);
    unsigned* histogram = (unsigned*)(smem + SLUICE_SM_WORK);
    unsigned* myHistogram = histogram + (tid >> 5) * 256u;
    for (unsigned b = tid; b < SLUICE_WARPS * 256u; b += SLUICE_BLOCK_THREADS) {
        histogram[b] = 0u;
    }
    __syncthreads();

    unsigned* results = (unsigned*)(p.ring + p.resultsOffset);
    unsigned cursor = 0u;

    for (;;) {
        if (tid < 32u) {
            sluice_worker_poll(p, job, cursor, worker, workers);
        }
        __syncthreads();
        const SluiceJob mine = job;
        if (mine.slot == SLUICE_NO_SLOT) {
            break;
        }
        const bool traced = (p.flags & SLUICE_P_TRACE) != 0ull && tid == 0u;
        const unsigned long long taken = traced ? sluice_now() : 0ull;
        // Acquire for every thread of the block (the polling warp fenced; the
        // barrier passes it on): the chunk was written before PUBLISHED.
        const unsigned char* chunk = (const unsigned char*)(p.data + mine.bufferOffset);
        unsigned* out = results + mine.resultOffset;
        unsigned completion = 0u;
        unsigned fault = 0u;

        if (mine.opcode == SLUICE_OP_COUNT) {
            sluice_count(chunk, mine.length, myHistogram);
            __syncthreads();
            // One bin per thread: sum the warps' tables, write the bin, and
            // clear the tables for the next slot.
            unsigned total = 0u;
            for (unsigned w = 0u; w < SLUICE_WARPS; ++w) {
                total += histogram[w * 256u + tid];
                histogram[w * 256u + tid] = 0u;
            }
            sluice_host_store_u32(p, out + 2u + tid, total);
            if (tid == 0x0Au) {
                sluice_host_store_u32(p, out + 1, total);
            }
            if (tid == 0u) {
                sluice_host_store_u32(p, out, mine.length);
            }
            completion = SLUICE_COUNT_RESULT_WORDS;
        } else if (mine.opcode == SLUICE_OP_TEST_ILLEGAL_ADDRESS) {
            // Fault injection: a load from an address no allocation can have
            // (the first page is never mapped). The kernel dies with
            // CUDA_ERROR_ILLEGAL_ADDRESS, which is sticky: the context is lost
            // and the host must recreate it. The slot stays CLAIMED.
            if (tid == 0u) {
                unsigned junk;
                asm volatile("ld.volatile.global.u32 %0, [%1];" : "=r"(junk) : "l"(16ull) : "memory");
                sluice_host_store_u32(p, out, junk);
            }
            __syncthreads();
            continue;
        } else if (mine.opcode == SLUICE_OP_TEST_HANG) {
            // Fault injection: never finish; thread 0 reads the host's
            // shutdown flag until it is set (the host's watchdog must name
            // this slot), then the block goes back to its mailboxes with the
            // slot still CLAIMED.
            if (tid == 0u) {
                while (sluice_host_load_u64(p, control + SLUICE_C_SHUTDOWN) == 0ull) {
                    __nanosleep(100000u);
                }
            }
            __syncthreads();
            continue;
        } else if (mine.opcode == SLUICE_OP_CRC32C) {
            const unsigned crc = sluice_crc32c(chunk, mine.length, smem, reduce, ends);
            if (tid == 0u) {
                sluice_host_store_u32(p, out, crc);
                sluice_host_store_u32(p, out + 1, mine.length);
            }
            completion = SLUICE_CRC_RESULT_WORDS;
        } else if (mine.opcode >= SLUICE_OP_USER_FIRST && mine.opcode <= SLUICE_OP_USER_LAST) {
            // An installed user operation (the dispatcher admitted no other),
            // run by the whole block over the chunk; job.table is the chunk's
            // file offset. Its scratch (sluice_operation.h) is the count
            // histograms' 8 KiB of the work area, zero on entry: clear it again.
            completion = sluice_user_run(
                mine.opcode, chunk, mine.length, mine.table, mine.argument0, mine.argument1, out,
                smem + SLUICE_SM_WORK, &userFault);
            fault = userFault;   // read after sluice_user_run's closing barrier
            __syncthreads();
            for (unsigned b = tid; b < SLUICE_WARPS * 256u; b += SLUICE_BLOCK_THREADS) {
                histogram[b] = 0u;
            }
        } else {
            if (sluice_scan_load(mine, scanInfo, smem)) {
                completion = sluice_scan(p, mine, scanInfo, smem, foundShared, storedShared);
                // The tile aliases the histograms: clear them again.
                __syncthreads();
                for (unsigned b = tid; b < SLUICE_WARPS * 256u; b += SLUICE_BLOCK_THREADS) {
                    histogram[b] = 0u;
                }
            } else {
                fault = SLUICE_F_BAD_ARGUMENTS;
            }
        }
        // Every result word is written before thread 0's release: the barrier
        // orders the block's stores before its fence (the same pattern as a
        // cooperative grid barrier), and the fence orders them before DONE.
        __syncthreads();

        if (tid == 0u) {
            if (fault != 0u) {
                sluice_finish_early(p, mine.slot, fault, mine.opcode);
            } else {
                const unsigned long long worked = traced ? sluice_now() : 0ull;
                sluice_host_store_u32(p, sluice_slot(p, mine.slot) + SLUICE_W_COMPLETION, completion);
                sluice_fence_system(p);
                const unsigned long long released = traced ? sluice_now() : 0ull;
                sluice_host_store_u32(p, sluice_slot(p, mine.slot) + SLUICE_W_STATUS, SLUICE_S_DONE);
                if (traced) {
                    // The stage sums of this slot (SluiceDeviceState.trace).
                    SluiceDeviceState* d = (SluiceDeviceState*)p.state;
                    atomicAdd(&d->trace[0], 1ull);
                    atomicAdd(&d->trace[1], (unsigned long long)(mine.traceClaimNs >> 16));
                    atomicAdd(&d->trace[2], (unsigned long long)(mine.traceClaimNs & 0xFFFFu));
                    atomicAdd(&d->trace[3], taken - mine.traceClaimed);
                    atomicAdd(&d->trace[4], worked - taken);
                    atomicAdd(&d->trace[5], released - worked);
                }
                sluice_fence_system(p);
                sluice_tally(p, SLUICE_D_DONE, mine.length, 0ull, 0ll, true);
            }
        }
    }

    if (tid == 0u) {
        sluice_fence_system(p);
        sluice_record(p, 0u, 0ull, 0ull, -1ll, false);   // this block has left
    }
}

// ---- user operations: the build without any -------------------------------------
//
// What stands between the markers is the build without operations: none is
// installed, so the dispatcher faults every user opcode
// (SLUICE_F_OPERATION_NOT_INSTALLED) and no worker ever calls sluice_user_run.
// The host replaces these lines (see the declarations above); nothing of
// Sluice's own may follow them.
// SLUICE_USER_OPERATIONS_BEGIN
__device__ __forceinline__ unsigned sluice_user_result_words(unsigned opcode) {
    return 0u;
}

__device__ __forceinline__ unsigned sluice_user_run(
    unsigned opcode, const unsigned char* chunk, unsigned length, unsigned long long fileOffset,
    unsigned argument0, unsigned argument1, unsigned* results, unsigned char* scratch, unsigned* fault)
{
    if (threadIdx.x == 0u) {
        *fault = SLUICE_F_OPERATION_NOT_INSTALLED;
    }
    __syncthreads();
    return 0u;
}
// SLUICE_USER_OPERATIONS_END
