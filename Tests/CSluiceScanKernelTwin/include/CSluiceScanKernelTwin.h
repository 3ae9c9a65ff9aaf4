// The megakernel's scan opcode compiled for the host: the kernel's own
// sources (Sources/SluiceCUDA/Kernels/sluice_scan.h), with the few CUDA
// built-ins they use defined for the CPU, run by 256 host threads that meet
// at a barrier wherever the block calls __syncthreads. Tests compare it with
// ScanOp, so the kernel's matching logic is checked on machines without a GPU.
#ifndef C_SLUICE_SCAN_KERNEL_TWIN_H
#define C_SLUICE_SCAN_KERNEL_TWIN_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Runs one scan slot as one emulated block: `table` (a ScanTable image of
/// `tableWords` words), the chunk's `length` bytes at `chunk` (any
/// alignment: the kernel's skew paths run), start positions below
/// `startLimit`, `flags` as the slot's argument1 (bit 0: count only), into
/// `result` (`resultWords` words, at least the 4 header words). Returns the
/// completion word (result words written), or -1 when the kernel refused
/// the table (the slot would fault badArguments).
int64_t sluice_scan_kernel_twin(
    const uint32_t* table, size_t tableWords, const uint8_t* chunk, uint32_t length, uint32_t startLimit,
    uint32_t flags, uint32_t* result, uint32_t resultWords);

/// One slot for `sluice_scan_kernel_twin_jobs`: the arguments of
/// `sluice_scan_kernel_twin`.
typedef struct SluiceTwinJob {
    const uint32_t* table;
    size_t tableWords;
    const uint8_t* chunk;
    uint32_t length;
    uint32_t startLimit;
    uint32_t flags;
    uint32_t* result;
    uint32_t resultWords;
} SluiceTwinJob;

/// Runs `count` slots in order by one emulated persistent block, which keeps
/// its shared memory and its loaded table between them (a slot with another
/// table reloads it); `completions[j]` is slot j's completion word or -1.
void sluice_scan_kernel_twin_jobs(const SluiceTwinJob* jobs, size_t count, int64_t* completions);

#ifdef __cplusplus
}
#endif

#endif
