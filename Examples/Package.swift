// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Sluice's examples, built against the repository one folder up, as a
// program of yours would be with `.package(url: ..., from: ...)`. A path
// dependency is named after its folder, whatever the clone is called.
let sluiceFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
let sluice = Target.Dependency.product(name: "Sluice", package: sluiceFolder)
// The two example user operations (their CUDA sources and Swift references).
let operations = Target.Dependency.product(name: "SluiceExampleOperations", package: sluiceFolder)

let package = Package(
    name: "SluiceExamples",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(name: "scan-tree", dependencies: [sluice], path: "Sources/ScanTree"),
        .executableTarget(name: "hash-files", dependencies: [sluice], path: "Sources/HashFiles"),
        .executableTarget(name: "pump-by-hand", dependencies: [sluice], path: "Sources/PumpByHand"),
        .executableTarget(name: "byte-histogram", dependencies: [sluice, operations], path: "Sources/ByteHistogram"),
        .executableTarget(name: "block-hash", dependencies: [sluice, operations], path: "Sources/BlockHash"),
    ]
)
