// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for Sluice (issue #7, "Fuzzing"). A package of its own so
// that the main package's manifest and build are untouched: it depends on the
// main package by path, and scripts/fuzz.sh builds it with coverage
// instrumentation and AddressSanitizer for every module, the main package's
// library modules included:
//
//   swift build -c release --package-path Fuzz --scratch-path .build-fuzz \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
//       -Xcc -fsanitize=fuzzer-no-link,address
//
// (-enable-testing: FuzzSlots uses `@testable import SluiceCPU` to install scan
// and tenant tables into a bare SlotExecutor; debug builds have it anyway.)
// Each executable is one fuzz target (a libFuzzer binary); Fuzz/Corpus/<target>/
// holds its seed corpus. Built without those flags the targets do not link
// (there is no libFuzzer), so this package is only ever built by scripts/fuzz.sh.
// The targets define LLVMFuzzerTestOneInput, not top-level code: no Swift `main`.
let entry: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "SluiceFuzz",
    dependencies: [.package(name: "Sluice", path: "..")],
    targets: [
        // The process entry point SwiftPM asks executables for (see FuzzMain.c).
        .target(name: "FuzzMain"),
        // Input decoding, exactly sized buffers, reference implementations, checks.
        .target(name: "FuzzSupport", dependencies: [.product(name: "Sluice", package: "Sluice")]),
        // The pattern-list parser, the scan-table compiler and validator, the matcher.
        .executableTarget(name: "FuzzPatterns", dependencies: ["FuzzMain", "FuzzSupport"], swiftSettings: entry),
        // The ring image and control block decoders.
        .executableTarget(name: "FuzzRing", dependencies: ["FuzzMain", "FuzzSupport"], swiftSettings: entry),
        // Random slot images through the CPU megakernel (SlotExecutor and a real CPUBackend ring).
        .executableTarget(name: "FuzzSlots", dependencies: ["FuzzMain", "FuzzSupport"], swiftSettings: entry),
        // The `sluice serve` message decoder (frames, payloads, limits, the incremental decoder).
        .executableTarget(
            name: "FuzzWire",
            dependencies: ["FuzzMain", "FuzzSupport", .product(name: "SluiceWire", package: "Sluice")],
            swiftSettings: entry),
    ]
)
