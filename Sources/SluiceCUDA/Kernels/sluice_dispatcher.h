// sluice_dispatcher.h: block 0's dispatcher warp, the only code that polls
// the ring in host memory: it checks every published slot as the CPU
// executor does, claims it, and finishes it itself or hands it to its
// worker's mailbox. Also the declarations of the user-operation hooks.
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_DISPATCHER_H
#define SLUICE_DISPATCHER_H

#include "sluice_protocol.h"
#include "sluice_abi.h"
#include "sluice_memory.h"
#include "sluice_counters.h"

// ---- dispatcher and workers ---------------------------------------------------------
//
// The first kernel had every block poll its own slots in host memory:
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

// ---- the tenant table --------------------------------------------------------------

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
// Declared here, defined at the end of megakernel.cu: the host
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

// ---- claims and the polling loop -----------------------------------------------------

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
// trips, this 1.5 us (RESULTS.md, "dispatch latency"). Lane 0 then does the rest
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

#endif  // SLUICE_DISPATCHER_H
