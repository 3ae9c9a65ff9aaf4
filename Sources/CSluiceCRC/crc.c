// Placeholder until the CRC-32C helper lands: no hardware path yet.
#include "sluice_crc.h"

int sluice_crc32c_hardware_available(void) { return 0; }

uint32_t sluice_crc32c_hardware(uint32_t crc, const void *data, size_t length) {
    (void)data;
    (void)length;
    return crc;
}
