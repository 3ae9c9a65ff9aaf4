#ifndef SLUICE_CRC_H
#define SLUICE_CRC_H
#include <stddef.h>
#include <stdint.h>

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) with the CPU's own
// instructions: SSE4.2 `crc32` on x86-64, the CRC extension (`crc32cx`) on
// AArch64. Swift cannot name these instructions; everything else about the
// checksum (software tables, combining) lives in SluiceOps.

/// Whether this CPU has CRC-32C instructions (SSE4.2 on x86-64, CRC on
/// AArch64), checked at run time once.
int sluice_crc32c_hardware_available(void);

/// "sse4.2", "armv8-crc", or "none" when the hardware path is unavailable.
const char *sluice_crc32c_hardware_name(void);

/// Updates a raw CRC-32C register (no initial or final inversion) with
/// `length` bytes using the hardware instructions, three independent streams
/// at a time (combined with a shift by the stream length). Only call when
/// `sluice_crc32c_hardware_available()` is nonzero.
uint32_t sluice_crc32c_hardware(uint32_t crc, const void *data, size_t length);

/// The same with one dependent chain of 8-byte instructions: for measuring
/// what the three streams buy, and as a second hardware result in tests.
uint32_t sluice_crc32c_hardware_serial(uint32_t crc, const void *data, size_t length);

#endif
