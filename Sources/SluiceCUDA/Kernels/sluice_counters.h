// sluice_counters.h: the ring's counters (slots done, faulted and cancelled,
// bytes, last fault, workers running, epoch), kept in device memory and
// copied into the host's control block; the early finish of a slot
// (cancelled or faulted); %globaltimer for the stage trace.
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_COUNTERS_H
#define SLUICE_COUNTERS_H

#include "sluice_protocol.h"
#include "sluice_abi.h"
#include "sluice_memory.h"

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

// ---- the counters -------------------------------------------------------------------

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

#endif  // SLUICE_COUNTERS_H
