import Glibc
import SluiceCore
import SystemPackage
import Testing

@testable import SluiceIngest

/// Failures and short reads the kernel really produces, through the real streams.
@Suite struct RealStreamFaultTests {
    static let chunkBytes = 16 << 10

    /// read(2) on a directory fails with EISDIR: a completion, not a throw.
    @Test(arguments: StreamKind.available)
    func kernelErrorBecomesACompletion(kind: StreamKind) throws {
        let directory = try ScratchDirectory()
        let fd = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        try withRegion(chunkCount: 2, chunkBytes: Self.chunkBytes) { region in
            let stream = try kind.make(region: region, chunkBytes: Self.chunkBytes)
            try stream.submit(ReadRequest(
                fd: FileDescriptor(rawValue: fd), path: directory.path, fileOffset: 4096, length: 100, chunkIndex: 1))
            let completions = try stream.reap(waitingUpTo: .seconds(10))
            try #require(completions.count == 1)
            guard case .failure(.io(let failure)) = completions[0].result else {
                Issue.record("expected an I/O failure, got \(completions[0].result)")
                return
            }
            #expect(failure == IOFailure(
                operation: "read", path: directory.path, fileOffset: 4096, length: 100, chunk: 1, errno: EISDIR,
                reason: String(cString: strerror(EISDIR))))
            #expect(stream.inflight == 0)
        }
    }

    /// A pipe hands out only what was written so far: the io_uring stream
    /// must keep reading into the rest of the buffer until the request is met.
    @Test(.enabled(if: uringAvailability == nil))
    func uringFinishesARealShortRead() throws {
        let pipe = try Pipe()
        let data = randomBytes(3000, seed: 3)
        try withRegion(chunkCount: 2, chunkBytes: Self.chunkBytes) { region in
            let stream = try StreamKind.uring.make(region: region, chunkBytes: Self.chunkBytes)
            try pipe.write(Array(data[..<1000]))
            try stream.submit(ReadRequest(fd: pipe.reader, path: "pipe", fileOffset: 0, length: 3000, chunkIndex: 1))
            // The first read got 1000 bytes; the remainder read waits on the pipe.
            #expect(try stream.reap(waitingUpTo: .milliseconds(100)).isEmpty)
            #expect(stream.inflight == 1)
            try pipe.write(Array(data[1000...]))
            let completions = try stream.reap(waitingUpTo: .seconds(10))
            try #require(completions.count == 1)
            #expect(try completions[0].result.get() == 3000)
            #expect(Array(region[Self.chunkBytes..<(Self.chunkBytes + 3000)]) == data)
        }
    }

    /// The writer going away is end of file: the chunk completes with the bytes so far.
    @Test(.enabled(if: uringAvailability == nil))
    func uringEndOfFileAfterAShortRead() throws {
        let pipe = try Pipe()
        let data = randomBytes(500, seed: 4)
        try withRegion(chunkCount: 1, chunkBytes: Self.chunkBytes) { region in
            let stream = try StreamKind.uring.make(region: region, chunkBytes: Self.chunkBytes)
            try pipe.write(data)
            try stream.submit(ReadRequest(fd: pipe.reader, path: "pipe", fileOffset: 0, length: 3000, chunkIndex: 0))
            #expect(try stream.reap(waitingUpTo: .milliseconds(100)).isEmpty)
            pipe.closeWriter()
            let completions = try stream.reap(waitingUpTo: .seconds(10))
            try #require(completions.count == 1)
            #expect(try completions[0].result.get() == 500)
            #expect(Array(region[..<500]) == data)
        }
    }

    /// Deinit must not return while the kernel could still write into the
    /// region: a read blocked on an empty pipe is cancelled and drained.
    @Test(.enabled(if: uringAvailability == nil))
    func uringDeinitCancelsABlockedRead() throws {
        let pipe = try Pipe()
        try withRegion(chunkCount: 1, chunkBytes: Self.chunkBytes) { region in
            var stream: (any ChunkReadStream)? = try StreamKind.uring.make(region: region, chunkBytes: Self.chunkBytes)
            try stream?.submit(ReadRequest(fd: pipe.reader, path: "pipe", fileOffset: 0, length: 10, chunkIndex: 0))
            #expect(try stream?.reap(waitingUpTo: .milliseconds(20)).isEmpty == true)
            let start = ContinuousClock.now
            stream = nil
            #expect(ContinuousClock.now - start < .seconds(5))
            // The cancelled read took nothing from the pipe and wrote nothing.
            try pipe.write([1, 2, 3])
            var back = [UInt8](repeating: 0, count: 3)
            #expect(read(pipe.reader.rawValue, &back, 3) == 3)
            #expect(back == [1, 2, 3])
            #expect(region.allSatisfy { $0 == 0xEE })
        }
    }

    /// Deinit joins the threads, dropping reads that never started.
    @Test func preadDeinitStopsWithReadsQueued() throws {
        let directory = try ScratchDirectory()
        let file = try OpenFile(try directory.write("data", randomBytes(8 * Self.chunkBytes, seed: 5)))
        let start = ContinuousClock.now
        try withRegion(chunkCount: 8, chunkBytes: Self.chunkBytes) { region in
            let stream = try PreadStream(region: region, chunkBytes: Self.chunkBytes, threads: 1)
            for chunk in 0..<8 {
                try stream.submit(ReadRequest(
                    fd: file.fd, path: file.path, fileOffset: UInt64(chunk * Self.chunkBytes), length: Self.chunkBytes,
                    chunkIndex: chunk))
            }
            #expect(stream.inflight == 8)
        }
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}

/// A pipe whose ends close on deinit.
final class Pipe {
    let reader: FileDescriptor
    private var writer: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw TestFailure("pipe: errno \(errno)") }
        reader = FileDescriptor(rawValue: fds[0])
        writer = fds[1]
    }

    func write(_ bytes: [UInt8]) throws {
        guard Glibc.write(writer, bytes, bytes.count) == bytes.count else { throw TestFailure("pipe write: errno \(errno)") }
    }

    func closeWriter() {
        if writer >= 0 { close(writer) }
        writer = -1
    }

    deinit {
        closeWriter()
        close(reader.rawValue)
    }
}
