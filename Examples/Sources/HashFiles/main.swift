import Glibc  // exit
import Sluice

// hash-files PATH...: prints `CRC32C  PATH` per file, as `sluice hash` does;
// a file that could not be read is named on stderr and makes the exit status 2.
let session = try await Session()
var failed = false
for try await file in session.crc32c(CommandLine.arguments.dropFirst().map { FilePath($0) }) {
    guard file.errors.isEmpty else {
        failed = true
        for error in file.errors { _ = try? FileDescriptor.standardError.writeAll("hash-files: \(SluiceError(error))\n".utf8) }
        continue
    }
    print("\(CRC32CText.format(file.crc32c, as: .hex))  \(file.path)")
}
await session.close()
if failed { exit(2) }
