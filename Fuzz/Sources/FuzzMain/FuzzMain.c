// The entry point of each fuzz target.
//
// SwiftPM links a debug executable with `--defsym main=<Target>_main` (so that
// tests can link the executable's module), which hides libFuzzer's own `main`
// even though -sanitize=fuzzer links it. So each target's `<Target>_main` is
// defined here and hands over to libFuzzer's driver, exactly as libFuzzer's
// `main` would. Where no such alias is made, libFuzzer's `main` runs and these
// functions are simply unused.
#include "FuzzMain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(int argc, char **argv) {
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}

int FuzzPatterns_main(int argc, char **argv) { return run(argc, argv); }
int FuzzRing_main(int argc, char **argv) { return run(argc, argv); }
int FuzzSlots_main(int argc, char **argv) { return run(argc, argv); }
int FuzzWire_main(int argc, char **argv) { return run(argc, argv); }
