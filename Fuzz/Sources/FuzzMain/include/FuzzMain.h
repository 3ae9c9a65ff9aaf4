#ifndef SLUICE_FUZZ_MAIN_H
#define SLUICE_FUZZ_MAIN_H
#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver, linked by -sanitize=fuzzer.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
