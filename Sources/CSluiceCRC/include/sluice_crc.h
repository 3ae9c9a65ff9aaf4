#ifndef SLUICE_CRC_H
#define SLUICE_CRC_H
#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has CRC-32C instructions (SSE4.2 on x86-64, CRC on AArch64).
int sluice_crc32c_hardware_available(void);

/// Updates a raw CRC-32C register (no initial or final inversion) with `length`
/// bytes using the hardware instructions. Only call when available.
uint32_t sluice_crc32c_hardware(uint32_t crc, const void *data, size_t length);

#endif
