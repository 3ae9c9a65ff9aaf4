import Glibc  // exit
import Sluice
import SluiceExampleOperations

// byte-histogram [--backend auto|cpu|cuda] PATH...: prints `PATH: N0 N1 ... N255`
// per file, in path order, the decimal count of each byte value. The counting
// is a user operation (ByteHistogram: a CUDA device function and its Swift
// reference) compiled into the session's megakernel; a file that could not be
// read is named on stderr and makes the exit status 2.
var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("-h") || arguments.contains("--help") {
    print("usage: byte-histogram [--backend auto|cpu|cuda] PATH...\nprints PATH: N0 N1 ... N255 per file (the count of each byte value)")
    exit(0)
}
var configuration = Session.Configuration()
if let flag = arguments.firstIndex(of: "--backend"), flag + 1 < arguments.count {
    guard let choice = BackendChoice(rawValue: arguments[flag + 1]) else {
        _ = try? FileDescriptor.standardError.writeAll("byte-histogram: --backend takes auto, cpu or cuda\n".utf8)
        exit(2)
    }
    configuration.backend = choice
    arguments.removeSubrange(flag...(flag + 1))
}
if let unknown = arguments.first(where: { $0.hasPrefix("-") }) {
    _ = try? FileDescriptor.standardError.writeAll("byte-histogram: unknown option \(unknown); try --help\n".utf8)
    exit(2)
}
let session: Session
do {
    session = try await Session(configuration, operations: [ByteHistogram()])
} catch {
    // A compile error names the operation's file and line (error.operation, error.line).
    _ = try? FileDescriptor.standardError.writeAll("byte-histogram: \(error)\n".utf8)
    exit(2)
}
var failed = false
for try await file in session.run(ByteHistogram(), over: arguments.map { FilePath($0) }) {
    guard file.errors.isEmpty else {
        failed = true
        for error in file.errors { _ = try? FileDescriptor.standardError.writeAll("byte-histogram: \(SluiceError(error))\n".utf8) }
        continue
    }
    print("\(file.path): " + file.value.map(String.init).joined(separator: " "))
}
await session.close()
if failed { exit(2) }
