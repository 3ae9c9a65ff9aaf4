import Glibc  // exit
import Sluice
import SluiceExampleOperations

// block-hash [--verify] PATH...: prints `PATH: HASH` (16 hex digits) per file,
// in path order: XXH64Blocks, a 64-bit hash of the file's 4096-byte blocks
// built on XXH64 (see its documentation), run as a user operation.
// --verify first checks the backend against the Swift reference on random
// chunks (Session.verify) and exits 1 on any difference.
var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("-h") || arguments.contains("--help") {
    print("usage: block-hash [--verify] PATH...\nprints PATH: HASH (16 hex digits) per file; --verify first checks the backend against the Swift reference")
    exit(0)
}
let verify = arguments.first == "--verify"
if verify { arguments.removeFirst() }
if let unknown = arguments.first(where: { $0.hasPrefix("-") }) {
    _ = try? FileDescriptor.standardError.writeAll("block-hash: unknown option \(unknown); try --help\n".utf8)
    exit(2)
}
let session = try await Session(operations: [XXH64Blocks()])
if verify {
    let report = try await session.verify(operation: XXH64Blocks())
    print("verify: \(report.chunks) chunks, \(report.words) words on \(report.backend): "
        + (report.passed ? "equal" : "\(report.mismatchCount) differ, \(report.errors.count) errors"))
    if !report.passed { exit(1) }
}
var failed = false
for try await file in session.run(XXH64Blocks(), over: arguments.map { FilePath($0) }) {
    guard file.errors.isEmpty else {
        failed = true
        for error in file.errors { _ = try? FileDescriptor.standardError.writeAll("block-hash: \(SluiceError(error))\n".utf8) }
        continue
    }
    let hex = String(file.value.digest, radix: 16)
    print("\(file.path): \(String(repeating: "0", count: 16 - hex.count))\(hex)")
}
await session.close()
if failed { exit(2) }
