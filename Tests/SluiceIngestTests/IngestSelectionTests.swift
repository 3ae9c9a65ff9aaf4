import Glibc
import SluiceCore
import Testing

@testable import SluiceIngest

/// The path selection picks io_uring where it works, falls back to the pread
/// pool with a reason where it does not, and obeys a forced choice.
@Suite struct IngestSelectionTests {
    static let chunkBytes = 64 << 10

    func select(
        _ choice: IngestChoice, region: UnsafeMutableRawBufferPointer, sysctl: String = "/nonexistent",
        uring: @escaping (UnsafeMutableRawBufferPointer, Int, Int?) throws(PipelineError) -> any ChunkReadStream
    ) throws(PipelineError) -> IngestSelection {
        try IngestSelection.makeStream(
            choice, region: region, chunkBytes: Self.chunkBytes, chunkCount: 4, preadThreads: 2,
            disabledSysctl: sysctl, makeUring: uring)
    }

    /// A stand-in for `UringStream.init` that fails the way the kernel would.
    func failing(
        _ call: String, _ code: Int32, allocatesMemory: Bool = false
    ) -> (UnsafeMutableRawBufferPointer, Int, Int?) throws(PipelineError) -> any ChunkReadStream {
        { _, _, _ throws(PipelineError) in
            throw .io(IOFailure(
                operation: call, path: "", errno: code, reason: String(cString: strerror(code)), allocatesMemory: allocatesMemory))
        }
    }

    @Test func forcedPread() throws {
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let selection = try IngestSelection.makeStream(.pread, region: region, chunkBytes: Self.chunkBytes)
            #expect(selection.stream.kind == "pread")
            #expect(selection.stream is PreadStream)
            #expect(selection.stream.chunkCount == 4)
            #expect(selection.reason == "pread thread pool (2 threads, forced)")
        }
    }

    /// The pread path, forced, really reads.
    @Test func forcedPreadReads() throws {
        let directory = try ScratchDirectory()
        let data = randomBytes(5 * Self.chunkBytes + 9, seed: 31)
        let file = try OpenFile(try directory.write("data", data))
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let selection = try IngestSelection.makeStream(
                .pread, region: region, chunkBytes: Self.chunkBytes, preadThreads: 3)
            #expect(selection.reason == "pread thread pool (3 threads, forced)")
            let read = try readThrough(selection.stream, file: file, size: data.count, fullChunks: true)
            #expect(read.bytes == data)
        }
    }

    @Test(.enabled(if: uringAvailability == nil))
    func forcedUring() throws {
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let selection = try IngestSelection.makeStream(.uring, region: region, chunkBytes: Self.chunkBytes)
            #expect(selection.stream.kind == "io_uring")
            // One ring per core, at most one per two chunks: 2 here (with at least 2 cores).
            let rings = IngestSelection.defaultUringRings(chunkCount: 4)
            let spread = rings > 1 ? "\(rings) rings on \(rings) threads, " : ""
            #expect(selection.reason == "io_uring (READ_FIXED, \(spread)4 registered buffers of 64 KiB)")
            let single = try IngestSelection.makeStream(.uring, region: region, chunkBytes: 4 * Self.chunkBytes)
            #expect(single.reason == "io_uring (READ_FIXED, 1 registered buffer of 256 KiB)")
        }
    }

    /// Here (io_uring enabled and working) auto takes io_uring; elsewhere it
    /// must say why not.
    @Test func autoOnThisMachine() throws {
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let selection = try IngestSelection.makeStream(.auto, region: region, chunkBytes: Self.chunkBytes)
            if uringAvailability == nil, IngestSelection.readSysctl(IngestSelection.disabledSysctl) ?? 0 == 0 {
                #expect(selection.stream.kind == "io_uring")
                #expect(selection.reason.hasPrefix("io_uring (READ_FIXED"))
            } else {
                #expect(selection.stream.kind == "pread")
                #expect(selection.reason.hasPrefix("pread thread pool (2 threads): "))
                #expect(!selection.reason.hasSuffix("))"))
            }
        }
    }

    @Test func autoHonoursTheKernelSwitch() throws {
        let directory = try ScratchDirectory()
        let sysctl = try directory.write("io_uring_disabled", Array("2\n".utf8))
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let selection = try select(.auto, region: region, sysctl: sysctl) { _, _, _ throws(PipelineError) in
                Issue.record("io_uring must not be tried when the kernel disabled it")
                throw .invalidConfiguration("unreachable")
            }
            #expect(selection.stream.kind == "pread")
            #expect(selection.reason
                == "pread thread pool (2 threads): io_uring is disabled by the kernel (kernel.io_uring_disabled = 2)")
        }
    }

    @Test(arguments: [
        ("io_uring_setup", EPERM, "io_uring_setup returned EPERM (blocked by seccomp or a container policy?)"),
        ("io_uring_setup", EACCES, "io_uring_setup returned EACCES (blocked by seccomp or a container policy?)"),
        ("io_uring_setup", ENOSYS, "io_uring_setup returned ENOSYS (the kernel has no io_uring)"),
        ("io_uring_setup", EOPNOTSUPP,
         "io_uring_setup returned EOPNOTSUPP (built without io_uring headers, or the kernel is too old?)"),
        ("io_uring_setup", EMFILE, "io_uring_setup returned EMFILE (Too many open files)"),
        ("io_uring_register(buffers)", EFAULT, "io_uring_register(buffers) returned EFAULT (Bad address)"),
    ])
    func autoFallsBackWithTheReason(call: String, code: Int32, reason: String) throws {
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let selection = try select(.auto, region: region, uring: failing(call, code))
            #expect(selection.stream.kind == "pread")
            #expect(selection.reason == "pread thread pool (2 threads): " + reason)
        }
    }

    /// Pinning more than RLIMIT_MEMLOCK allows (unprivileged users, 8 MiB by
    /// default) fails registration with ENOMEM; the reason says what to raise.
    @Test func memlockFallbackSaysWhatToRaise() throws {
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let selection = try select(
                .auto, region: region, uring: failing("io_uring_register(buffers)", ENOMEM, allocatesMemory: true))
            let reason = selection.reason
            #expect(reason.hasPrefix(
                "pread thread pool (2 threads): io_uring_register(buffers) returned ENOMEM (pinning 256 KiB exceeds RLIMIT_MEMLOCK "),
                "\(reason)")
            #expect(reason.hasSuffix("; raise ulimit -l)"), "\(reason)")
            // ENOMEM from a call that pins nothing says nothing of the limit.
            let other = try select(.auto, region: region, uring: failing("io_uring_setup", ENOMEM))
            #expect(!other.reason.contains("RLIMIT_MEMLOCK"), "\(other.reason)")
        }
    }

    /// Forcing io_uring means its failure is the caller's to see.
    @Test func forcedUringDoesNotFallBack() {
        withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region -> Void in
            #expect(throws: PipelineError.io(IOFailure(
                operation: "io_uring_setup", path: "", errno: EPERM, reason: String(cString: strerror(EPERM))))
            ) {
                _ = try select(.uring, region: region, uring: failing("io_uring_setup", EPERM))
            }
        }
    }

    /// A layout that cannot work is reported as such, not as a reason to fall back.
    @Test func badLayoutIsNotAFallback() {
        withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region -> Void in
            #expect {
                _ = try IngestSelection.makeStream(.auto, region: region, chunkBytes: 1000)
            } throws: { error in
                if case .invalidConfiguration = error as? PipelineError { return true }
                return false
            }
        }
    }

    @Test func choicesParseFromTheirNames() {
        #expect(IngestChoice(rawValue: "auto") == .auto)
        #expect(IngestChoice(rawValue: "uring") == .uring)
        #expect(IngestChoice(rawValue: "pread") == .pread)
        #expect(IngestChoice(rawValue: "gds") == .gds)
        #expect(IngestChoice.allCases.map(\.description) == ["auto", "uring", "pread", "gds"])
    }

    /// The cuFile stream needs GPU memory only the engine can set up: makeStream refuses it.
    @Test func gdsIsNotMadeHere() throws {
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * 4096, alignment: 4096)
        defer { region.deallocate() }
        do {
            _ = try IngestSelection.makeStream(.gds, region: region, chunkBytes: 4096, chunkCount: 2)
            Issue.record("made a gds stream")
        } catch {
            guard case .invalidConfiguration(let text) = error else { Issue.record("\(error)"); return }
            #expect(text.contains("ingest gds") && !text.contains("--") && text.contains("CUDA backend"))
        }
    }

    @Test func sysctlAndSizeFormatting() throws {
        let directory = try ScratchDirectory()
        #expect(IngestSelection.readSysctl(try directory.write("zero", Array("0\n".utf8))) == 0)
        #expect(IngestSelection.readSysctl(try directory.write("junk", Array("x".utf8))) == nil)
        #expect(IngestSelection.readSysctl(directory.path + "/missing") == nil)
        #expect(byteCountText(4096) == "4 KiB")
        #expect(byteCountText(4 << 20) == "4 MiB")
        #expect(byteCountText(1536 << 20) == "1.5 GiB")
        #expect(byteCountText(100) == "100 bytes")
    }
}
