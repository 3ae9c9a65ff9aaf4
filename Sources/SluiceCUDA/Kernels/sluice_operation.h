// sluice_operation.h: what the CUDA source of a Sluice user operation
// includes (#include "sluice_operation.h"). Sluice hands it to NVRTC with
// the megakernel; nothing is read from the file system. The DocC article
// "Writing an operation" explains the contract; in short:
//
//   __device__ void my_operation(const SluiceOpContext& c);
//
// runs with all SLUICE_OP_THREADS threads of one worker block over one
// chunk. Every thread must return (no thread may leave early while others
// wait in a barrier), and the helpers with a barrier (sluice_op_block_*)
// must be called by every thread of the block.
#ifndef SLUICE_OPERATION_H
#define SLUICE_OPERATION_H

// Threads of the worker block that runs the operation (SLUICE_BLOCK_THREADS).
#define SLUICE_OP_THREADS 256u
// Bytes of shared memory at SluiceOpContext.scratch: zero when the operation
// starts; the block clears it again afterwards.
#define SLUICE_OP_SCRATCH_BYTES 8192u
// Fault codes an operation may leave (FaultCode in SluiceCore).
#define SLUICE_OP_FAULT_RESULT_OVERFLOW 5u
#define SLUICE_OP_FAULT_BAD_ARGUMENTS 6u

// One chunk, as the operation sees it. The CPU side is OperationChunk and
// OperationResults (the Swift reference gets the same values).
struct SluiceOpContext {
    const unsigned char* chunk;      // the chunk's bytes, 16-byte aligned, unchecked: read them with sluice_op_load_*
    unsigned length;                 // bytes in the chunk, overlap included
    unsigned ownBytes;               // slot argument0: the chunk's own bytes (the rest is overlap into the next chunk)
    unsigned argument;               // slot argument1: the operation's own argument word
    unsigned long long fileOffset;   // where chunk[0] is in its file
    unsigned* results;               // the result area, unchecked: write it only with sluice_op_write*
    unsigned capacity;               // the declared result words; every one is 0 when the operation starts
    unsigned char* scratch;          // SLUICE_OP_SCRATCH_BYTES of shared memory, zero on entry
    unsigned* fault;                 // shared: 0, or the first fault code left (sluice_op_fail, an overflow)
};

// ---- reading the chunk ------------------------------------------------------
// The chunk lies in host memory mapped into the GPU (or in GPU memory), and
// its buffer is reused for later chunks: loads must not come from a cached
// line of an earlier chunk, so they go through ld.global.cv (__ldcv).
// Checked: a read outside the chunk reads nothing, returns 0 and faults the
// slot with SLUICE_OP_FAULT_BAD_ARGUMENTS (the raw c.chunk is unchecked).

__device__ __forceinline__ void sluice_op_fail(const SluiceOpContext& c, unsigned code) {
    atomicCAS(c.fault, 0u, code);
}

// Byte i of the chunk (i < length).
__device__ __forceinline__ unsigned sluice_op_load_u8(const SluiceOpContext& c, unsigned i) {
    if (i < c.length) {
        return __ldcv(c.chunk + i);
    }
    sluice_op_fail(c, SLUICE_OP_FAULT_BAD_ARGUMENTS);
    return 0u;
}

// 16 bytes at byte i (i a multiple of 16, i + 16 <= length).
__device__ __forceinline__ uint4 sluice_op_load_v4(const SluiceOpContext& c, unsigned i) {
    if ((i & 15u) == 0u && i < c.length && c.length - i >= 16u) {
        return __ldcv((const uint4*)(c.chunk + i));
    }
    sluice_op_fail(c, SLUICE_OP_FAULT_BAD_ARGUMENTS);
    return make_uint4(0u, 0u, 0u, 0u);
}

// ---- writing results ----------------------------------------------------------
// Checked: an index at or past capacity writes nothing and faults the slot
// with SLUICE_OP_FAULT_RESULT_OVERFLOW. The area is host memory: atomics on
// it are not atomic over PCIe, so accumulate in registers or scratch and
// write each word once.

__device__ __forceinline__ void sluice_op_write(const SluiceOpContext& c, unsigned index, unsigned value) {
    if (index < c.capacity) {
        asm volatile("st.global.wt.u32 [%0], %1;" :: "l"(c.results + index), "r"(value) : "memory");
    } else {
        sluice_op_fail(c, SLUICE_OP_FAULT_RESULT_OVERFLOW);
    }
}

// Low word at index, high word at index + 1 (both checked).
__device__ __forceinline__ void sluice_op_write64(const SluiceOpContext& c, unsigned index, unsigned long long value) {
    if (index < c.capacity && index + 1u < c.capacity) {
        sluice_op_write(c, index, (unsigned)value);
        sluice_op_write(c, index + 1u, (unsigned)(value >> 32));
    } else {
        sluice_op_fail(c, SLUICE_OP_FAULT_RESULT_OVERFLOW);
    }
}

// ---- block helpers ------------------------------------------------------------
// Each is called by every thread of the block with its own value and returns
// the block's total to every thread. They hold barriers (__syncthreads).

__device__ __forceinline__ unsigned long long sluice_op_block_sum_u64(unsigned long long v) {
    __shared__ unsigned long long sluiceOpPartial[SLUICE_OP_THREADS / 32u];
    for (unsigned d = 16u; d > 0u; d >>= 1) {
        v += __shfl_down_sync(0xFFFFFFFFu, v, d);
    }
    __syncthreads();   // an earlier call's readers are done with the partials
    if ((threadIdx.x & 31u) == 0u) {
        sluiceOpPartial[threadIdx.x >> 5] = v;
    }
    __syncthreads();
    unsigned long long total = 0ull;
    for (unsigned w = 0u; w < SLUICE_OP_THREADS / 32u; ++w) {
        total += sluiceOpPartial[w];
    }
    return total;
}

__device__ __forceinline__ unsigned sluice_op_block_sum_u32(unsigned v) {
    return (unsigned)sluice_op_block_sum_u64((unsigned long long)v);
}

// ---- for the generated dispatch, not for operations ---------------------------
// Every thread of the worker block: the context of one run over the chunk,
// with its `capacity` result words zeroed and *fault set (0, or
// SLUICE_OP_FAULT_BAD_ARGUMENTS for a chunk the 16-byte loads cannot read),
// after a barrier. Here rather than generated so that it is compiled before
// any operation's source (whose macros cannot change it).
__device__ __forceinline__ SluiceOpContext sluice_op_begin(
    const unsigned char* chunk, unsigned length, unsigned long long fileOffset, unsigned argument0,
    unsigned argument1, unsigned* results, unsigned capacity, unsigned char* scratch, unsigned* fault)
{
    SluiceOpContext c;
    c.chunk = chunk;
    c.length = length;
    c.ownBytes = argument0 < length ? argument0 : length;
    c.argument = argument1;
    c.fileOffset = fileOffset;
    c.results = results;
    c.capacity = capacity;
    c.scratch = scratch;
    c.fault = fault;
    if (threadIdx.x == 0u) {
        // Every run's chunk is 4096-aligned; anything else is the host's error.
        *fault = ((unsigned long long)chunk & 15ull) != 0ull ? SLUICE_OP_FAULT_BAD_ARGUMENTS : 0u;
    }
    for (unsigned i = threadIdx.x; i < capacity; i += SLUICE_OP_THREADS) {
        asm volatile("st.global.wt.u32 [%0], %1;" :: "l"(results + i), "r"(0u) : "memory");
    }
    __syncthreads();
    return c;
}

#endif
