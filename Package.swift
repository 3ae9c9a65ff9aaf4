// swift-tools-version: 6.1
import PackageDescription

// Layering (dependencies point toward SluiceCore):
//   SluiceCore   ring protocol: slot layout, lifecycle, control block, errors (no OS, no GPU)
//   SluiceWire   `sluice serve`'s messages and their binary codec (no OS, no GPU)
//   SluiceSocket Unix domain sockets: listener, SCM_RIGHTS descriptor passing, peer credentials
//   SluiceOps    the opcodes as pure functions over bytes (the CPU backend and the GPU oracle)
//   CSluiceCRC   hardware CRC-32C instructions, which Swift cannot name
//   CSluiceSys   mbind, get_mempolicy, thread affinity, fstatfs, O_TMPFILE (no callable wrapper from Swift)
//   SluiceNUMA   a GPU's NUMA node, memory placement and thread affinity on it
//   SluiceIngest file -> chunk buffers: io_uring READ_FIXED, pread fallback, scripted twin
//   SluiceCache  the cache directory and its checked files (CUBINs, Hyperscan databases, calibration)
//   SluiceHyperscan Hyperscan/Vectorscan (libhs.so.5 through dlopen) as the CPU scan engine
//   SluiceCPU    the CPU megakernel (threads polling the ring)
//   SluiceCUDA   the CUDA megakernel (driver API and NVRTC through dlopen)
//   Sluice       the pump, the scanner driver, backend selection, file walking,
//                the client of `sluice serve` (Session(connectingTo:));
//                the library product, which re-exports the modules a user needs (one import)
//   SluiceExampleOperations two example user operations (Examples/, selftest)
//   SluiceServer `sluice serve`: one Session served over a Unix socket (not in the library product)
//   SluiceDiagnostics the tool's harness: selftest, soak, bench, machine report,
//                the CUDA measurement kernels; not in the library product
//   sluice       the command-line tool, a thin shell over Sluice and SluiceDiagnostics
let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Sluice", targets: ["Sluice"]),
        // The `sluice serve` protocol, for the fuzz package (Fuzz/) and programs that speak it.
        .library(name: "SluiceWire", targets: ["SluiceWire"]),
        // The example user operations (a byte histogram, a block-wise XXH64),
        // for the Examples package and `sluice selftest`.
        .library(name: "SluiceExampleOperations", targets: ["SluiceExampleOperations"]),
        .executable(name: "sluice", targets: ["SluiceCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The request log of `sluice serve`.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // `swift package generate-documentation` (the DocC catalog in Sources/Sluice/Sluice.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .target(name: "SluiceCore"),
        // The system calls Sluice makes from several modules, wrapped once:
        // errno as text (through swift-system's Errno), anonymous mappings,
        // and the one reader of small files.
        .target(
            name: "SluiceSystem",
            dependencies: ["SluiceCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(name: "SluiceThreads", dependencies: ["SluiceSystem"]),
        // The messages between a client and `sluice serve`, and their codec (pure Swift).
        .target(name: "SluiceWire", dependencies: ["SluiceCore"]),
        // Unix domain sockets for `sluice serve`: listener, descriptor passing, peer credentials.
        .target(
            name: "SluiceSocket",
            dependencies: ["SluiceCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Hardware CRC-32C instructions (SSE4.2, Arm CRC) have no Swift spelling;
        // this C target exposes them behind a run-time CPU check.
        .target(name: "CSluiceCRC"),
        // mbind, get_mempolicy and thread affinity: system calls with no glibc
        // wrapper or only a variadic/macro one, which Swift cannot call.
        .target(name: "CSluiceSys"),
        // NUMA placement: which node a GPU is on (sysfs), mbind of its host
        // memory, and thread affinity to the node's CPUs.
        .target(name: "SluiceNUMA", dependencies: ["SluiceCore", "SluiceSystem", "CSluiceSys"]),
        .target(name: "SluiceOps", dependencies: ["SluiceCore", "CSluiceCRC"]),
        // Sluice's cache directory: compiled kernels and Hyperscan databases, the calibration.
        .target(name: "SluiceCache", dependencies: ["SluiceCore", "SluiceSystem", .product(name: "SystemPackage", package: "swift-system")]),
        .target(
            name: "SluiceIngest",
            dependencies: [
                "SluiceCore", "SluiceSystem", "SluiceThreads", "CSluiceSys",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Hyperscan is loaded at run time (dlopen), so nothing is needed to build.
        .target(name: "SluiceHyperscan", dependencies: ["SluiceCore", "SluiceSystem", "SluiceOps", "SluiceCache"]),
        .target(name: "SluiceCPU", dependencies: ["SluiceCore", "SluiceSystem", "SluiceOps", "SluiceHyperscan", "SluiceThreads"]),
        .target(
            name: "SluiceCUDA",
            dependencies: [
                "SluiceCore", "SluiceSystem", "SluiceOps", "SluiceNUMA", "SluiceThreads", "SluiceCache",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            // The megakernel (megakernel.cu and the sluice_*.h headers it includes,
            // listed in Megakernel.headers) and the header user operations include.
            resources: [
                .embedInCode("Kernels/megakernel.cu"), .embedInCode("Kernels/sluice_protocol.h"),
                .embedInCode("Kernels/sluice_abi.h"), .embedInCode("Kernels/sluice_memory.h"),
                .embedInCode("Kernels/sluice_counters.h"), .embedInCode("Kernels/sluice_dispatcher.h"),
                .embedInCode("Kernels/sluice_worker.h"), .embedInCode("Kernels/sluice_count.h"),
                .embedInCode("Kernels/sluice_crc32c.h"), .embedInCode("Kernels/sluice_scan.h"),
                .embedInCode("Kernels/sluice_operation.h"),
            ]
        ),
        .target(
            name: "Sluice",
            dependencies: [
                "SluiceCore", "SluiceSystem", "SluiceOps", "SluiceIngest", "SluiceCPU", "SluiceCUDA", "SluiceHyperscan",
                "SluiceNUMA", "SluiceThreads", "SluiceCache", "CSluiceSys", "SluiceWire", "SluiceSocket",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Two user operations (CUDA source and Swift reference each): what the
        // Examples package runs and `sluice selftest` checks on the GPU.
        .target(
            name: "SluiceExampleOperations",
            dependencies: ["Sluice"],
            resources: [.embedInCode("Kernels/byte_histogram.cu"), .embedInCode("Kernels/xxh64_blocks.cu")]
        ),
        // `sluice serve`: one Session shared by clients over a Unix socket; linked by the CLI only.
        .target(
            name: "SluiceServer",
            dependencies: [
                "Sluice", "SluiceWire", "SluiceSocket", "SluiceIngest", "SluiceThreads",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The tool's harness, linked by the CLI and not by the `Sluice` product.
        .target(
            name: "SluiceDiagnostics",
            dependencies: [
                "Sluice", "SluiceCore", "SluiceSystem", "SluiceOps", "SluiceIngest", "SluiceCPU", "SluiceCUDA",
                "SluiceHyperscan", "SluiceThreads", "SluiceExampleOperations",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            resources: [.embedInCode("Kernels/measure.cu")]
        ),
        .executableTarget(
            name: "SluiceCLI",
            dependencies: [
                "Sluice", "SluiceDiagnostics", "SluiceServer", "SluiceSocket",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "SluiceCoreTests",
            dependencies: ["SluiceCore", "SluiceSystem", "SluiceThreads", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "SluiceIngestTests",
            dependencies: [
                "SluiceIngest", "SluiceCore", "SluiceThreads", .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // SluiceWireTests imports Sluice only to check that every SluiceError.Code has a wire code.
        .testTarget(name: "SluiceWireTests", dependencies: ["SluiceWire", "SluiceCore", "Sluice"]),
        .testTarget(
            name: "SluiceSocketTests",
            dependencies: [
                "SluiceSocket", "SluiceWire", "SluiceCore", .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The megakernel's scan opcode compiled for the host (C++ with the
        // CUDA built-ins it uses defined for the CPU), checked against ScanOp.
        .target(name: "CSluiceScanKernelTwin", path: "Tests/CSluiceScanKernelTwin"),
        .testTarget(name: "SluiceCPUTests", dependencies: ["SluiceCPU", "SluiceOps", "SluiceCore", "CSluiceScanKernelTwin"]),
        // Each test target lists every module it imports (CI builds with
        // `--explicit-target-dependency-import-check error`); SluiceCLI is
        // here so that the `sluice` binary the command tests run is built.
        .testTarget(
            name: "SluiceTests",
            dependencies: [
                "Sluice", "SluiceDiagnostics", "SluiceIngest", "SluiceCPU", "SluiceCUDA", "SluiceCore", "SluiceOps", "SluiceCLI",
                "SluiceHyperscan", "SluiceNUMA", "SluiceThreads", "SluiceServer", "SluiceWire", "SluiceSocket",
                "SluiceExampleOperations",
                .product(name: "SystemPackage", package: "swift-system"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    cxxLanguageStandard: .cxx20
)
