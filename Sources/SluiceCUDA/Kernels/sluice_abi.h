// sluice_abi.h: the megakernel's launch ABI, mirrored by `Megakernel` in
// Sources/SluiceCUDA/KernelBuild.swift: launch shape and flags, the dynamic
// shared memory layout, the by-value parameter (SluiceParams), and the
// device-memory state with the slots' mailboxes, and a worker's copy of one
// (SluiceJob) (scripts/check-kernel.py compares the constants KernelBuild.swift
// mirrors). No device code: the scan kernel's host twin includes it too.
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

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
// again. The host's default (about 1 us sooner per dispatch on the
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
//   filter cache   the scan table's short and long filters, back to back, when
//                  they fit (68 KiB: 2^19 + 2^15 bits, so that a full 2^19-bit
//                  filter fits beside a small one)
//   crc tables     16 x 256 slicing tables, 4 x 256 "shift by 4096 bytes"
//                  table, 256 powers x^(128 d), 64 powers x^(2^k)
//   work area      per-warp count histograms, or the staged scan tile
// Two blocks of 256 threads fit a multiprocessor of 228 KiB (H100).
#define SLUICE_FILTER_CACHE_WORDS  17408u
#define SLUICE_SCAN_TILE           16384u
#define SLUICE_SCAN_OVERLAP        240u
#define SLUICE_SM_FILTER           0u
#define SLUICE_SM_CRC_SLICES       69632u
#define SLUICE_SM_CRC_SHIFT        86016u
#define SLUICE_SM_CRC_XD           90112u
#define SLUICE_SM_CRC_POW          91136u
#define SLUICE_SM_WORK             91392u
#define SLUICE_SM_WORK_BYTES       16896u
#define SLUICE_DYNAMIC_SHARED_BYTES 108288u
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

#endif  // SLUICE_ABI_H
