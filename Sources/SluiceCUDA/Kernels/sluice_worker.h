// sluice_worker.h: the polling warp of a worker block, which waits on the
// mailboxes of the block's slots in device memory and copies the next job
// for the block (the block's loop is sluice_megakernel in megakernel.cu).
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include "sluice_protocol.h"
#include "sluice_abi.h"
#include "sluice_memory.h"

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

#endif  // SLUICE_WORKER_H
