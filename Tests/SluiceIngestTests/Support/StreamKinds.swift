import SluiceCore
import SystemPackage
import Testing

@testable import SluiceIngest

/// Every stream implementation the shared tests run against.
enum StreamKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case uring
    /// `ParallelUringStream` with 3 rings (fewer when the region has fewer chunks).
    case parallelUring
    case pread
    case scripted
    case scriptedReverse
    case scriptedRandom

    var testDescription: String { rawValue }

    func make(region: UnsafeMutableRawBufferPointer, chunkBytes: Int) throws(PipelineError) -> any ChunkReadStream {
        switch self {
        case .uring:
            #if os(Linux) && compiler(>=6.2)
            return try UringStream(region: region, chunkBytes: chunkBytes)
            #else
            throw .backendUnavailable(backend: "io_uring", reason: "not compiled in")
            #endif
        case .parallelUring:
            #if os(Linux) && compiler(>=6.2)
            let rings = min(3, region.count / chunkBytes)
            return try ParallelUringStream(region: region, chunkBytes: chunkBytes, rings: rings)
            #else
            throw .backendUnavailable(backend: "io_uring", reason: "not compiled in")
            #endif
        case .pread:
            return try PreadStream(region: region, chunkBytes: chunkBytes, threads: 2)
        case .scripted:
            return try ScriptedReadStream(region: region, chunkBytes: chunkBytes)
        case .scriptedReverse:
            return try ScriptedReadStream(region: region, chunkBytes: chunkBytes, order: .reverse)
        case .scriptedRandom:
            return try ScriptedReadStream(region: region, chunkBytes: chunkBytes, order: .seeded(0x5111CE))
        }
    }

    /// The kinds that can run here: io_uring only where a ring can be set up.
    static let available: [StreamKind] = allCases.filter { !$0.isUring || uringAvailability == nil }
    /// The real streams (no scripted twin).
    static let real: [StreamKind] = available.filter { $0.isUring || $0 == .pread }

    var isUring: Bool { self == .uring || self == .parallelUring }
}

/// Nil when io_uring works here, else why not (the tests for it then do not run).
let uringAvailability: String? = {
    withRegion(chunkCount: 1, chunkBytes: 4096) { region -> String? in
        do {
            _ = try StreamKind.uring.make(region: region, chunkBytes: 4096)
            return nil
        } catch {
            return "\(error)"
        }
    }
}()

/// What reading a file through a stream produced.
struct StreamRead {
    /// The file's bytes as the stream delivered them, in file order.
    var bytes: [UInt8]
    /// Chunk indices in the order their completions arrived.
    var completionOrder: [Int]
    /// File offsets in the order their completions arrived.
    var offsetOrder: [UInt64]
}

/// Reads `size` bytes of `file` through `stream` with every chunk buffer
/// busy, checking each completion against what the file must yield.
///
/// - Parameter fullChunks: ask for `chunkBytes` every time (the last chunk
///   then ends early at end of file) instead of exactly what is left.
func readThrough(
    _ stream: any ChunkReadStream, file: OpenFile, size: Int, fullChunks: Bool,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> StreamRead {
    let chunkBytes = stream.chunkBytes
    // A 0-byte file still gets one request, to see end of file reported as 0 bytes.
    var offsets = Array(stride(from: 0, to: max(size, 1), by: chunkBytes)).reversed().map { UInt64($0) }
    var free = Array((0..<stream.chunkCount).reversed())
    var output = [UInt8](repeating: 0, count: size)
    var read = StreamRead(bytes: [], completionOrder: [], offsetOrder: [])
    while !offsets.isEmpty || stream.inflight > 0 {
        while let chunk = free.last, let offset = offsets.last {
            let length = fullChunks ? chunkBytes : max(1, min(chunkBytes, size - Int(offset)))
            try stream.submit(ReadRequest(
                fd: file.fd, path: file.path, fileOffset: offset, length: length, chunkIndex: chunk))
            free.removeLast()
            offsets.removeLast()
        }
        let completions = try stream.reap(waitingUpTo: .seconds(10))
        guard !completions.isEmpty else {
            throw TestFailure("no completion within 10 s with \(stream.inflight) reads in flight")
        }
        for completion in completions {
            let request = completion.request
            let expected = min(request.length, size - Int(request.fileOffset))
            let count = try completion.result.get()
            #expect(count == expected, "chunk \(request.chunkIndex) at \(request.fileOffset)", sourceLocation: sourceLocation)
            let buffer = stream.region[(request.chunkIndex * chunkBytes)...]
            for i in 0..<min(count, expected) { output[Int(request.fileOffset) + i] = buffer[buffer.startIndex + i] }
            read.completionOrder.append(request.chunkIndex)
            read.offsetOrder.append(request.fileOffset)
            free.append(request.chunkIndex)
        }
    }
    read.bytes = output
    return read
}
