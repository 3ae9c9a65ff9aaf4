// sluice_memory.h: the megakernel's loads, stores and fences: volatile ones
// of device memory, the ones of host memory whose kind the launch flags pick
// (SLUICE_P_VOLATILE_POLL, SLUICE_P_WB_STORES, SLUICE_P_SC_FENCES), and the
// addresses of a slot and of its mailbox.
// Part of the megakernel: megakernel.cu includes it, and the host hands it to
// NVRTC by name with the other headers (Megakernel.headers in KernelBuild.swift).
#ifndef SLUICE_MEMORY_H
#define SLUICE_MEMORY_H

#include "sluice_protocol.h"
#include "sluice_abi.h"

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

#endif  // SLUICE_MEMORY_H
