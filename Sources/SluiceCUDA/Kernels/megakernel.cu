// Sluice persistent megakernel (CUDA C++, compiled at run time by NVRTC).
//
// This file holds the kernel itself (each block's loop) and, at its end, the
// place user operations are spliced in; the parts it is made of are headers
// beside it, each included once, in this order:
//
//   sluice_protocol.h    the ring protocol's numbers (slot, control and tenant-table
//                        words, statuses, opcodes, fault codes, scan-table header)
//   sluice_abi.h         the kernel's launch ABI (launch shape and flags, dynamic shared
//                        memory layout, SluiceParams, the device state, the mailboxes)
//   sluice_memory.h      loads, stores and fences on host and device memory
//   sluice_counters.h    the counters in device memory and their copy in the control block
//   sluice_dispatcher.h  block 0's dispatcher warp: polls the ring, checks and claims slots
//   sluice_worker.h      a worker block's polling warp: takes a job from its mailboxes
//   sluice_count.h, sluice_crc32c.h, sluice_scan.h   the built-in opcodes
//
// The ring protocol's numbers are mirrored in sluice_protocol.h, the launch
// ABI in sluice_abi.h; scripts/check-kernel.py compares both with their
// source of truth in Swift.
//
// The headers are Sluice's own: the host hands them to NVRTC by name with
// this file (`Megakernel.headers` in KernelBuild.swift), nothing is read from
// the file system. No system header: NVRTC provides the CUDA builtins
// (atomics, __ldcg, __nanosleep, vector types) itself, and the CI check
// compiles these files with only the NVRTC library installed.
//
// Shape (see "dispatcher and workers" in sluice_dispatcher.h): block 0's
// first warp is the dispatcher, the only code that polls the ring in host
// memory; blocks 1..workers are workers that wait on per-slot mailboxes in
// device memory and run the slots the dispatcher hands them with all 256
// threads.
//
// Memory (see docs/protocol.md, "Memory ordering"):
// - the ring region (control block, slots, result areas), the data region and
//   the tenant table are pinned host memory mapped into the GPU; every access
//   to them crosses PCIe, so only one warp polls them while idle;
// - no atomic operation ever targets that memory: over PCIe they were seen to
//   be neither atomic nor fast (see "why no atomics touch host memory" in
//   sluice_counters.h); the counters live in device memory;
// - data bytes are read after an acquire fence with `ld.global.cv` (__ldcv):
//   for system memory it discards a matching L2 line and fetches again, so a
//   reused chunk buffer is never served from a stale L1 or L2 line;
// - scan tables live in device memory (cuMemAlloc), are immutable once
//   installed and never freed (nor their memory reused) while the kernel runs,
//   so they are read through the read-only cache (__ldg); the directory that
//   names them (device memory too) changes while the kernel runs, so its
//   entries are read with ld.volatile, never from a cached line.

#include "sluice_protocol.h"
#include "sluice_abi.h"
#include "sluice_memory.h"
#include "sluice_counters.h"
#include "sluice_dispatcher.h"
#include "sluice_worker.h"
#include "sluice_count.h"
#include "sluice_crc32c.h"
#include "sluice_scan.h"

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
// The host replaces these lines (see the declarations in sluice_dispatcher.h);
// nothing of Sluice's own may follow them.
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
