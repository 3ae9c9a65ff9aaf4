#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceCPU
import SluiceIngest
import SluiceOps
import Synchronization
import Testing

@testable import Sluice
@testable import SluiceCLI
@testable import SluiceCUDA

/// A stand-in for cuFile: `pread` into host memory (the CPU backend's data
/// region), with failures injected by file offset, short transfers, and a
/// landing region the test picks.
final class FakeCuFileReader: ChunkReader, @unchecked Sendable {
    let kind = "fake cuFile"
    let readOperation = "cuFileRead"
    let landing: ChunkRegion
    let memory: UnsafeMutableRawBufferPointer
    let chunkBytes: Int
    /// "path@offset" of steps that fail with this cuFile status.
    let statusAt: [String: Int32]
    /// "path@offset" of steps that fail with this errno.
    let errnoAt: [String: Int32]
    /// At most this many bytes per call (short transfers), 0 for no limit.
    let stepLimit: Int
    let prepared = Mutex<[Int32]>([])
    let copies = Mutex<Int>(0)

    init(
        landing: ChunkRegion = .host, memory: UnsafeMutableRawBufferPointer, chunkBytes: Int,
        statusAt: [String: Int32] = [:], errnoAt: [String: Int32] = [:], stepLimit: Int = 0
    ) {
        self.landing = landing
        self.memory = memory
        self.chunkBytes = chunkBytes
        self.statusAt = statusAt
        self.errnoAt = errnoAt
        self.stepLimit = stepLimit
    }

    func prepare(_ request: ReadRequest) throws(PipelineError) {
        prepared.withLock { $0.append(request.fd.rawValue) }
    }

    func read(_ request: ReadRequest, bufferOffset: Int, fileOffset: UInt64, length: Int) -> ChunkReaderResult {
        if let code = statusAt["\(request.path)@\(fileOffset)"] {
            return .failed(errno: 0, reason: CuFileStatus(code: code).description)
        }
        if let code = errnoAt["\(request.path)@\(fileOffset)"] { return .systemError(code) }
        let n = stepLimit > 0 ? min(length, stepLimit) : length
        let target = memory.baseAddress! + request.chunkIndex * chunkBytes + bufferOffset
        let got = pread(request.fd.rawValue, target, n, off_t(fileOffset))
        return got >= 0 ? .transferred(got) : .systemError(errno)
    }

    func copyToHost(chunk: Int, into target: UnsafeMutableRawBufferPointer) throws(PipelineError) {
        copies.withLock { $0 += 1 }
        target.copyMemory(from: UnsafeRawBufferPointer(rebasing: memory[(chunk * chunkBytes)..<(chunk * chunkBytes + target.count)]))
    }
}

@Suite struct GDSCapabilityTests {
    typealias C = CuFileCapability
    static let ext4NVMe = GDSFilesystem(path: "/data", name: "ext4", blockDevice: "nvme0n1", supportsDirect: true)
    static let ext4Virtio = GDSFilesystem(path: "/data", name: "ext4", blockDevice: "vda", supportsDirect: false)

    @Test func modes() {
        // No library: unavailable, whatever else is there.
        let none = C(libraryLoads: false, loadError: "not found", nvidiaFSLoaded: true, nvmeDevices: 2)
        #expect(none.mode == .unavailable("not found") && !none.isDirect)
        #expect(none.toEnable?.contains("libcufile") == true)
        // The GPU machine: library, no nvidia-fs, no P2PDMA, no NVMe, ext4 on virtio.
        let h100 = C(libraryLoads: true, loadError: nil, nvidiaFSLoaded: false, nvmeDevices: 0, allowCompatMode: true,
                     filesystem: Self.ext4Virtio)
        guard case .compatibility(let why) = h100.mode else { Issue.record("\(h100.mode)"); return }
        #expect(why.contains("nvidia-fs module is not loaded") && why.contains("no PCI P2PDMA"))
        #expect(h100.summary.contains("compatibility mode only") && h100.summary.contains("not direct"))
        #expect(h100.toEnable?.contains("nvidia-fs") == true)
        // Compatibility mode switched off: unusable.
        var off = h100
        off.allowCompatMode = false
        guard case .unusable(let text) = off.mode else { Issue.record("\(off.mode)"); return }
        #expect(text.contains("allow_compat_mode is false"))
        // ... unless this cuFile lets Sluice turn it on for its own process
        // (cuFileSetParameterBool, as cuFile 1.15 on the H100 machine does).
        var settable = off
        settable.canAllowCompatMode = true
        guard case .compatibility(let turnedOn) = settable.mode else { Issue.record("\(settable.mode)"); return }
        #expect(turnedOn.contains("allow_compat_mode is false") && turnedOn.contains("turns it on"))
        // nvidia-fs and ext4 on NVMe: direct.
        let direct = C(libraryLoads: true, loadError: nil, nvidiaFSLoaded: true, nvmeDevices: 1, filesystem: Self.ext4NVMe)
        guard case .direct(let how) = direct.mode else { Issue.record("\(direct.mode)"); return }
        #expect(how.contains("nvidia-fs") && how.contains("nvme0n1") && direct.toEnable == nil)
        // nvidia-fs, but the data on a virtio disk: not direct, and the hint says where to put it.
        var virtio = direct
        virtio.filesystem = Self.ext4Virtio
        guard case .compatibility(let onVirtio) = virtio.mode else { Issue.record("\(virtio.mode)"); return }
        #expect(onVirtio.contains("/data is on ext4 (vda)"))
        #expect(virtio.toEnable?.contains("NVMe") == true)
        // Without a path: an NVMe device must exist.
        let noNVMe = C(libraryLoads: true, loadError: nil, nvidiaFSLoaded: true, nvmeDevices: 0)
        #expect(noNVMe.mode == .compatibility("there is no NVMe device"))
        // Kernel P2PDMA counts only when cuFile is told to use it.
        var p2p = C(libraryLoads: true, loadError: nil, nvidiaFSLoaded: false, kernelP2PDMA: true, nvmeDevices: 1)
        #expect(!p2p.isDirect)
        p2p.usePCIP2PDMA = true
        #expect(p2p.isDirect)
        // force_compat_mode wins over everything.
        var forced = direct
        forced.forceCompatMode = true
        #expect(forced.mode == .compatibility("cuFile's force_compat_mode is true"))
        #expect(forced.toEnable?.contains("force_compat_mode") == true)
    }

    @Test func filesystems() {
        #expect(CuFileProbe.classify(path: "/d", type: "ext4", blockDevice: "nvme1n1").supportsDirect)
        #expect(CuFileProbe.classify(path: "/d", type: "xfs", blockDevice: "nvme0n1").supportsDirect)
        #expect(!CuFileProbe.classify(path: "/d", type: "ext4", blockDevice: "vda").supportsDirect)
        #expect(!CuFileProbe.classify(path: "/d", type: "xfs", blockDevice: nil).supportsDirect)
        #expect(CuFileProbe.classify(path: "/d", type: "lustre", blockDevice: nil).supportsDirect)
        #expect(!CuFileProbe.classify(path: "/d", type: "overlay", blockDevice: nil).supportsDirect)
        #expect(!CuFileProbe.classify(path: "/d", type: "tmpfs", blockDevice: nil).supportsDirect)
        // This machine's /var/tmp is found and named.
        let here = CuFileProbe.filesystem(of: "/var/tmp")
        #expect(here != nil && here?.name != "unknown")
    }

    @Test func configurationBooleans() {
        let text = """
            {
                // "allow_compat_mode": false,   a comment does not count
                "properties": {
                    "allow_compat_mode" : true,
                    "force_compat_mode":false,
                    "use_pci_p2pdma": true // trailing comment
                }
            }
            """
        #expect(jsonBool(text, key: "allow_compat_mode") == true)
        #expect(jsonBool(text, key: "force_compat_mode") == false)
        #expect(jsonBool(text, key: "use_pci_p2pdma") == true)
        #expect(jsonBool(text, key: "use_poll_mode") == nil)
    }
}

@Suite struct GDSPlanTests {
    static let compat = CuFileCapability(libraryLoads: true, loadError: nil, nvidiaFSLoaded: false, nvmeDevices: 0)
    static let direct = CuFileCapability(libraryLoads: true, loadError: nil, nvidiaFSLoaded: true, nvmeDevices: 1)
    static let missing = CuFileCapability(libraryLoads: false, loadError: "no libcufile", nvidiaFSLoaded: false)

    func decide(_ ingest: IngestChoice, _ backend: BackendChoice, _ c: CuFileCapability) -> Result<GDSPlan.Decision, PipelineError> {
        Result { () throws(PipelineError) in try GDSPlan.decide(ingest: ingest, backend: backend) { c } }
    }

    @Test func forcedGDS() throws {
        // Compatibility mode runs when forced, and says it is not direct.
        let d = try decide(.gds, .cuda, Self.compat).get()
        #expect(d.useGDS && d.forced)
        #expect(d.note?.contains("NOT direct") == true && d.note?.contains("forced with ingest gds in the configuration") == true)
        let dd = try decide(.gds, .auto, Self.direct).get()
        #expect(dd.useGDS && dd.note?.hasPrefix("direct GPUDirect Storage") == true)
        // No cuFile: an error naming the loader's reason.
        guard case .failure(.backendUnavailable("gds", let why)) = decide(.gds, .cuda, Self.missing) else {
            Issue.record("expected gds unavailable"); return
        }
        #expect(why.contains("no libcufile"))
        // Compatibility mode looks forbidden: forced, cuFile is tried anyway
        // (its own refusal is the error), and the note says what was read.
        var off = Self.compat
        off.allowCompatMode = false
        let forcedOff = try decide(.gds, .cuda, off).get()
        #expect(forcedOff.useGDS && forcedOff.forced)
        #expect(forcedOff.note?.contains("allow_compat_mode") == true && forcedOff.note?.contains("NOT direct") == true)
        // No udev database (the H100 VM): cuFile registers no file, so a
        // forced --ingest gds says why before it starts, and auto says so too.
        var noUdev = Self.compat
        noUdev.udevDatabase = false
        guard case .failure(.backendUnavailable("gds", let udevWhy)) = decide(.gds, .cuda, noUdev) else {
            Issue.record("expected gds refused without udev"); return
        }
        #expect(udevWhy.contains("udev") && udevWhy.contains("ID_FS_USAGE"))
        #expect(noUdev.toEnable?.contains("udev") == true)
        let autoNoUdev = try decide(.auto, .cuda, noUdev).get()
        #expect(!autoNoUdev.useGDS && autoNoUdev.note?.contains("udev") == true)
        // The CPU backend: a clear configuration error, before any probe.
        let cpu = Result { () throws(PipelineError) in
            try GDSPlan.decide(ingest: .gds, backend: .cpu) { Issue.record("probed"); return Self.direct }
        }
        guard case .failure(.invalidConfiguration(let text)) = cpu else { Issue.record("\(cpu)"); return }
        #expect(text.contains("ingest gds") && text.contains("CPU backend") && !text.contains("--"))
    }

    @Test func auto() throws {
        let d = try decide(.auto, .auto, Self.direct).get()
        #expect(d.useGDS && !d.forced && d.note?.contains("direct") == true)
        let c = try decide(.auto, .cuda, Self.compat).get()
        #expect(!c.useGDS && c.note?.contains("compatibility mode") == true && c.note?.contains("; ingest gds forces it") == true)
        let m = try decide(.auto, .cuda, Self.missing).get()
        #expect(!m.useGDS && m.note?.contains("cuFile not available") == true)
        // CPU backend and explicit paths never probe and never mention GDS.
        for (ingest, backend) in [(IngestChoice.auto, BackendChoice.cpu), (.uring, .cuda), (.pread, .auto)] {
            let r = try GDSPlan.decide(ingest: ingest, backend: backend) { Issue.record("probed"); return Self.direct }
            #expect(r == GDSPlan.Decision(useGDS: false, forced: false, note: nil))
        }
    }

    @Test func resolveAfterTheBackend() throws {
        let forced = GDSPlan.Decision(useGDS: true, forced: true, note: "x")
        #expect(try GDSPlan.resolve(forced, backendIsCUDA: true, backendReason: "") == forced)
        let r = Result { () throws(PipelineError) in try GDSPlan.resolve(forced, backendIsCUDA: false, backendReason: "auto: no usable GPU") }
        guard case .failure(.backendUnavailable("gds", let why)) = r else { Issue.record("\(r)"); return }
        #expect(why.contains("needs the CUDA backend") && why.contains("no usable GPU"))
        let auto = GDSPlan.Decision(useGDS: true, forced: false, note: "direct")
        #expect(try GDSPlan.resolve(auto, backendIsCUDA: false, backendReason: "") == GDSPlan.Decision(useGDS: false, forced: false, note: nil))
    }
}

@Suite struct CuFileErrorMappingTests {
    @Test func statusNames() {
        #expect(CuFileStatus(code: 0).name == "CU_FILE_SUCCESS")
        #expect(CuFileStatus(code: 5001).name == "CU_FILE_DRIVER_NOT_INITIALIZED")
        #expect(CuFileStatus(code: 5011).description == "CU_FILE_CUDA_DRIVER_ERROR (5011): the CUDA driver failed")
        #expect(CuFileStatus(code: 5020).name == "CU_FILE_DIO_NOT_SET")
        #expect(CuFileStatus(code: 5034).meaning.contains("cufile.json"))
        #expect(CuFileStatus(code: 5049).name == "CU_FILE_BATCH_NOCOMPAT_ERROR")
        // A gap in the table and values past it still read as something.
        #expect(CuFileStatus(code: 5032).name == "CU_FILE_STATUS_5032")
        #expect(CuFileStatus(code: 9999).description == "CU_FILE_STATUS_9999 (9999): unknown cuFile status")
        // Names are unique and all in the CUfileOpError range.
        let names = CuFileStatus.table.values.map(\.0)
        #expect(Set(names).count == names.count)
        #expect(CuFileStatus.table.keys.allSatisfy { $0 == 0 || (5001...5049).contains($0) })
    }

    @Test func callResultDecoding() {
        // CUfileError_t { err, cu_err } comes back in one register, err in the low half.
        let ok = CuFileCallResult(raw: 0)
        #expect(ok.isSuccess && ok.cudaResult == 0)
        let cuda = CuFileCallResult(raw: UInt64(2) << 32 | 5011)
        #expect(cuda.status.code == 5011 && cuda.cudaResult == 2 && !cuda.isSuccess)
        #expect(cuda.text() == "CU_FILE_CUDA_DRIVER_ERROR (5011): the CUDA driver failed; CUDA result 2")
        let negative = CuFileCallResult(raw: UInt64(UInt32(bitPattern: -1)) << 32 | 5030)
        #expect(negative.cudaResult == -1 && negative.status.code == 5030)
        let withErrno = CuFileCallResult(raw: 5025).text(errno: EACCES)
        #expect(withErrno.contains("CU_FILE_PERMISSION_DENIED") && withErrno.contains("errno \(EACCES)"))
        guard case .gpu(let call, let code, let message) = CuFileCallResult(raw: 5001).error(call: "cuFileDriverOpen") else {
            Issue.record("not .gpu"); return
        }
        #expect(call == "cuFileDriverOpen" && code == 5001 && message.contains("nvidia-fs driver is not loaded"))
    }

    @Test func readResults() {
        #expect(CuFileReadOutcome(returned: 4096, errno: 0) == .bytes(4096))
        #expect(CuFileReadOutcome(returned: 0, errno: 0) == .bytes(0))
        #expect(CuFileReadOutcome(returned: -1, errno: EIO) == .systemError(errno: EIO))
        #expect(CuFileReadOutcome(returned: -5011, errno: 0) == .status(CuFileStatus(code: 5011)))
        #expect(CuFileReadOutcome(returned: -5022, errno: 7) == .status(CuFileStatus(code: 5022)))
    }

    @Test func hints() {
        let read = PipelineError.io(IOFailure(operation: "cuFileRead", path: "/d/f", chunk: 3, errno: 0, reason: "x"))
        #expect(read.hint.contains("sluice doctor") && read.hint.contains("--ingest uring"))
        #expect(PipelineError.backendUnavailable(backend: "gds", reason: "r").hint.contains("--ingest uring"))
        #expect(PipelineError.slotFaulted(slot: 0, chunk: 0, path: nil, code: .regionUnavailable).hint.contains("CUDA backend"))
    }
}

/// The cuFile stream's scheduling through a fake cuFile driving the CPU
/// backend: the same results as io_uring and as an independent oracle.
@Suite struct GDSStreamTests {
    static let chunk = 16 << 10
    static let sizes = [0, 1, chunk - 1, chunk, chunk + 1, 5 * chunk + 7, 300_001]

    func files(_ dir: ScratchDirectory) -> (paths: [String], contents: [[UInt8]]) {
        var rng = SeededRandom(state: 0x6D5)
        var paths: [String] = []
        var contents: [[UInt8]] = []
        for (i, size) in Self.sizes.enumerated() {
            let bytes = textLikeBytes(size, &rng)
            paths.append(dir.write("g\(i)", bytes))
            contents.append(bytes)
        }
        return (paths, contents)
    }

    /// A CPU backend and a `ChunkReaderStream` over `FakeCuFileReader`.
    func fakeEngine(
        resultWords: Int, slots: Int = 6, make: (UnsafeMutableRawBufferPointer) -> FakeCuFileReader
    ) throws -> (ChunkScheduler, ChunkReaderStream, FakeCuFileReader, CPUBackend) {
        let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: resultWords)
        let backend = try CPUBackend(configuration: BackendConfiguration(geometry: geometry, dataBytes: slots * Self.chunk, workers: 2))
        try backend.start()
        let reader = make(backend.dataRegion)
        let stream = try ChunkReaderStream(reader: reader, region: backend.dataRegion, chunkBytes: Self.chunk, chunkCount: slots, threads: 3)
        let scanner = try ChunkScheduler(backend: backend, stream: stream)
        return (scanner, stream, reader, backend)
    }

    func counts(_ scanner: ChunkScheduler, _ paths: [String]) throws -> [FileCount] {
        var out: [FileCount] = []
        _ = try CountJob.run(scanner: scanner, paths: paths.raw, onFile: { out.append($0) })
        return out
    }

    @Test(arguments: [0, 1000])
    func countMatchesUringAndOracle(stepLimit: Int) throws {
        let dir = ScratchDirectory("sluice-gds")
        defer { dir.remove() }
        let (paths, contents) = files(dir)
        let (scanner, stream, reader, backend) = try fakeEngine(resultWords: CountOp.resultWords) {
            FakeCuFileReader(memory: $0, chunkBytes: Self.chunk, stepLimit: stepLimit)
        }
        defer { try? backend.shutdown() }
        #expect(stream.kind == "fake cuFile" && stream.landing == .host)
        let gds = try counts(scanner, paths)
        let engine = try Engine(EngineConfiguration(backend: .cpu, ingest: .uring, chunkBytes: Self.chunk), resultWordsPerSlot: CountOp.resultWords)
        defer { try? engine.close() }
        let uring = try counts(try engine.scanner(), paths)
        try #require(gds.count == paths.count && uring.count == paths.count)
        for i in paths.indices {
            let oracle = oracleCount(contents[i])
            #expect(gds[i].errors.isEmpty && gds[i].path == paths[i])
            #expect(gds[i].result.bytes == oracle.bytes && gds[i].result.newlines == oracle.lines, "\(paths[i])")
            #expect(gds[i].result.histogram == oracle.histogram)
            #expect(gds[i].result == uring[i].result)
        }
        // Every non-empty file was prepared (registered) before its reads.
        #expect(reader.prepared.withLock { $0.count } == Self.sizes.reduce(0) { $0 + ($1 + Self.chunk - 1) / Self.chunk })
    }

    @Test func scanMatchesUringWithHostRescans() throws {
        let dir = ScratchDirectory("sluice-gds")
        defer { dir.remove() }
        let (paths, contents) = files(dir)
        let patterns = try PatternSet(literals: [Array("the".utf8), Array("e".utf8), Array("ab".utf8)])
        let table = ScanTable(patterns)
        // Two records per slot: most chunks overflow and are rescanned on the host from `hostBytes`.
        let words = ScanJob.resultWords(records: 2)
        let (scanner, _, _, backend) = try fakeEngine(resultWords: words) {
            FakeCuFileReader(memory: $0, chunkBytes: Self.chunk)
        }
        defer { try? backend.shutdown() }
        var gds: [FileMatches] = []
        _ = try ScanJob.run(scanner: scanner, patterns: patterns, table: table, paths: paths.raw, onFile: { gds.append($0) })
        let engine = try Engine(EngineConfiguration(backend: .cpu, ingest: .uring, chunkBytes: Self.chunk), resultWordsPerSlot: words)
        defer { try? engine.close() }
        var uring: [FileMatches] = []
        _ = try ScanJob.run(scanner: try engine.scanner(), patterns: patterns, table: table, paths: paths.raw, onFile: { uring.append($0) })
        try #require(gds.count == paths.count && uring.count == paths.count)
        for i in paths.indices {
            // Independent oracle: every position where each literal starts.
            var expected: [ScanMatch] = []
            let bytes = contents[i]
            for start in bytes.indices {
                for (p, literal) in patterns.literals.enumerated()
                where start + literal.count <= bytes.count && Array(bytes[start..<(start + literal.count)]) == literal {
                    expected.append(ScanMatch(offset: UInt64(start), pattern: p))
                }
            }
            #expect(gds[i].errors.isEmpty, "\(gds[i].errors)")
            #expect(gds[i].matches == expected.sorted(), "\(paths[i])")
            #expect(gds[i].matches == uring[i].matches && gds[i].count == uring[i].count)
        }
    }

    @Test func cuFileFailuresNameFileChunkAndStatus() throws {
        let dir = ScratchDirectory("sluice-gds")
        defer { dir.remove() }
        let (paths, _) = files(dir)
        // The 6th file (5 chunks + 7 bytes): a cuFile status at its chunk 2, an errno at chunk 4.
        let failing = paths[5]
        let (scanner, _, _, backend) = try fakeEngine(resultWords: CountOp.resultWords) {
            FakeCuFileReader(
                memory: $0, chunkBytes: Self.chunk, statusAt: ["\(failing)@\(2 * Self.chunk)": 5011],
                errnoAt: ["\(failing)@\(4 * Self.chunk)": EIO])
        }
        defer { try? backend.shutdown() }
        let results = try counts(scanner, paths)
        for r in results where r.path != failing { #expect(r.errors.isEmpty, "\(r.path): \(r.errors)") }
        let bad = try #require(results.first { $0.path == failing })
        #expect(bad.errors.count == 2)
        let messages = bad.errors.map(\.message).sorted()
        // "chunk" names the ingest buffer, "offset" the place in the file.
        #expect(messages.contains {
            $0.hasPrefix(failing) && $0.contains("cuFileRead failed (chunk ") && $0.contains("offset \(2 * Self.chunk), \(Self.chunk) bytes)")
                && $0.contains("CU_FILE_CUDA_DRIVER_ERROR (5011)")
        })
        #expect(messages.contains {
            $0.hasPrefix(failing) && $0.contains("offset \(4 * Self.chunk),") && $0.contains("Input/output error (errno \(EIO))")
        })
        for e in bad.errors { #expect(e.hint.contains("--ingest uring")) }
    }

    @Test func deviceChunksFaultOnTheCPUBackend() throws {
        let dir = ScratchDirectory("sluice-gds")
        defer { dir.remove() }
        let path = dir.write("one", Array(repeating: 0x41, count: 3 * Self.chunk))
        let (scanner, stream, _, backend) = try fakeEngine(resultWords: CountOp.resultWords) {
            FakeCuFileReader(landing: .device, memory: $0, chunkBytes: Self.chunk)
        }
        defer { try? backend.shutdown() }
        #expect(stream.landing == .device)
        let results = try counts(scanner, [path])
        let errors = try #require(results.first).errors
        #expect(errors.count == 3)
        for e in errors {
            guard case .slotFaulted(_, _, _, let code) = e else { Issue.record("\(e)"); continue }
            #expect(code == .regionUnavailable)
            #expect(e.message.contains("memory region this backend does not have"))
        }
        #expect(try backend.ring.observe().slotsFaulted == 3)
    }

    @Test func hostBytesCopiesDeviceChunks() throws {
        let dir = ScratchDirectory("sluice-gds")
        defer { dir.remove() }
        var rng = SeededRandom(state: 5)
        let data = textLikeBytes(2 * Self.chunk, &rng)
        let path = dir.write("d", data)
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * Self.chunk, alignment: 4096)
        defer { memory.deallocate() }
        let reader = FakeCuFileReader(landing: .device, memory: memory, chunkBytes: Self.chunk)
        let stream = try ChunkReaderStream(reader: reader, region: memory, chunkBytes: Self.chunk, threads: 2)
        let fd = try openForIngest(path: path.raw, direct: false)
        defer { try? fd.close() }
        try stream.submit(ReadRequest(fd: fd, path: path, fileOffset: UInt64(Self.chunk), length: Self.chunk, chunkIndex: 1))
        // A chunk still being read cannot be copied.
        if stream.inflight > 0, case .failure(.invalidRequest) = Result(catching: { () throws(PipelineError) in
            try stream.hostBytes(ofChunk: 1, count: 10)
        }) {} else if stream.inflight > 0 { Issue.record("copied a chunk in flight") }
        var done: [ReadCompletion] = []
        while stream.inflight > 0 { done += try stream.reap(waitingUpTo: .seconds(5)) }
        #expect(try done.first?.result.get() == Self.chunk)
        let bytes = try stream.hostBytes(ofChunk: 1, count: 100)
        #expect(Array(bytes) == Array(data[Self.chunk..<(Self.chunk + 100)]))
        #expect(reader.copies.withLock { $0 } == 1)
        #expect(throws: PipelineError.self) { try stream.hostBytes(ofChunk: 2, count: 1) }
        #expect(throws: PipelineError.self) { try stream.hostBytes(ofChunk: 0, count: Self.chunk + 1) }
    }
}

@Suite struct GDSCommandTests {
    @Test func gdsWithTheCPUBackendIsAClearError() throws {
        let r = run([sluiceExecutable, "count", "--ingest", "gds", "--backend", "cpu", "/etc/hostname"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("ingest gds reads chunks into GPU memory, which the CPU backend cannot read"))
        #expect(r.stdout.isEmpty)
    }

    /// Here (no GPU, no cuFile) a forced gds run fails with what is missing; auto says nothing of GDS on the CPU.
    @Test func gdsWithoutAGPUSaysWhy() throws {
        let r = run([sluiceExecutable, "count", "--ingest", "gds", "/etc/hostname"])
        if case .failure = CuFileLibrary.shared {
            #expect(r.status == 2)
            #expect(r.stderr.contains("ingest gds needs cuFile"))
        } else {
            #expect(r.status == 2 && r.stderr.contains("needs the CUDA backend"))
        }
        let v = run([sluiceExecutable, "count", "--verbose", "/etc/hostname"])
        #expect(v.status == 0 && !v.stderr.contains("GPUDirect"))
    }
}
