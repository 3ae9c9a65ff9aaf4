#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceIngest
import SluiceOps
import Synchronization
import SystemPackage
import Testing

@testable import Sluice

/// Page-aligned memory a test owns until it is let go of.
final class OwnedRegion: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    init(_ count: Int) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0xEE)
    }
    deinit { bytes.deallocate() }
}

/// The copy engine's twin: a batch lands (its bytes are copied to the same
/// offsets of `destination`) when its fence has been polled `pollsToLand`
/// times or waited on, so that a completion returned early would show stale
/// bytes. Batches and fences can be made to fail.
final class FakeCopier: ChunkCopier, @unchecked Sendable {
    let kind = "fake copy engine"
    let landing: ChunkRegion
    let destination: UnsafeMutableRawBufferPointer
    let pollsToLand: Int
    /// 1-based batches whose `copy` throws, and whose fence reports a failure.
    let refuseBatches: Set<Int>
    let failFences: Set<Int>
    /// Kept alive as long as the copier (the host region a test stream reads into).
    let keepAlive: AnyObject?
    private(set) var batches = 0
    private(set) var landedChunks = 0

    init(
        destination: UnsafeMutableRawBufferPointer, landing: ChunkRegion = .device, pollsToLand: Int = 2,
        refuseBatches: Set<Int> = [], failFences: Set<Int> = [], keepAlive: AnyObject? = nil
    ) {
        self.destination = destination
        self.landing = landing
        self.pollsToLand = pollsToLand
        self.refuseBatches = refuseBatches
        self.failFences = failFences
        self.keepAlive = keepAlive
    }

    func copy(_ chunks: [ChunkCopy]) throws(PipelineError) -> any ChunkCopyFence {
        batches += 1
        if refuseBatches.contains(batches) { throw .gpu(call: "fakeCopy", code: 2, message: "batch \(batches) refused") }
        return Fence(copier: self, chunks: chunks, fails: failFences.contains(batches))
    }

    final class Fence: ChunkCopyFence {
        let copier: FakeCopier
        let chunks: [ChunkCopy]
        let fails: Bool
        var polls = 0
        var landed = false

        init(copier: FakeCopier, chunks: [ChunkCopy], fails: Bool) {
            self.copier = copier
            self.chunks = chunks
            self.fails = fails
        }

        func isComplete() throws(PipelineError) -> Bool {
            if landed { return true }
            polls += 1
            guard polls >= copier.pollsToLand else { return false }
            try land()
            return true
        }

        func wait() throws(PipelineError) { try land() }

        private func land() throws(PipelineError) {
            if fails { throw .gpu(call: "fakeFence", code: 700, message: "the copy failed") }
            guard !landed else { return }
            landed = true
            for c in chunks {
                UnsafeMutableRawBufferPointer(rebasing: copier.destination[c.offset..<(c.offset + c.bytes.count)])
                    .copyMemory(from: c.bytes)
                copier.landedChunks += 1
            }
        }
    }
}

@Suite struct CopyingReadStreamTests {
    static let chunk = 4096

    /// A file of `count` bytes whose every byte is known.
    func file(_ dir: ScratchDirectory, _ count: Int) -> (path: String, bytes: [UInt8]) {
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 251) }
        return (dir.write("f", bytes), bytes)
    }

    func requests(_ fd: FileDescriptor, _ path: String, _ size: Int) -> [ReadRequest] {
        stride(from: 0, to: size, by: Self.chunk).enumerated().map { i, offset in
            ReadRequest(fd: fd, path: path, fileOffset: UInt64(offset), length: min(Self.chunk, size - offset), chunkIndex: i)
        }
    }

    func reapAll(_ stream: CopyingReadStream, polls: Int = 100) throws -> [ReadCompletion] {
        var done: [ReadCompletion] = []
        for _ in 0..<polls where stream.inflight > 0 { done += try stream.reap(waitingUpTo: nil) }
        return done
    }

    /// Nothing is reported before its copy lands, and what lands is the
    /// file's bytes at the chunk's offset.
    @Test func aChunkIsReportedOnlyOnceItsCopyHasLanded() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let size = 3 * Self.chunk + 123
        let (path, bytes) = file(dir, size)
        let host = OwnedRegion(4 * Self.chunk)
        let device = OwnedRegion(4 * Self.chunk)
        let copier = FakeCopier(destination: device.bytes, pollsToLand: 3)
        let stream = CopyingReadStream(
            inner: try ScriptedReadStream(region: host.bytes, chunkBytes: Self.chunk, chunkCount: 4), copier: copier)
        #expect(stream.landing == .device)
        #expect(!stream.readsInPlace)
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        for r in requests(fd, path, size) { try stream.submit(r) }
        #expect(try stream.reap(waitingUpTo: nil).isEmpty)  // read, copies started, none landed
        #expect(stream.inflight == 4)
        #expect(copier.landedChunks == 0)
        // A chunk under copy cannot be read into again.
        #expect(throws: PipelineError.self) { try stream.submit(requests(fd, path, size)[0]) }
        let done = try reapAll(stream)
        #expect(done.map(\.chunkIndex).sorted() == [0, 1, 2, 3])
        #expect(stream.inflight == 0)
        #expect(copier.landedChunks == 4)
        for c in done {
            guard case .success(let n) = c.result else { Issue.record("chunk \(c.chunkIndex): \(c.result)"); continue }
            let start = c.chunkIndex * Self.chunk
            #expect(Array(device.bytes[start..<(start + n)]) == Array(bytes[start..<(start + n)]))
            #expect(Array(try stream.hostBytes(ofChunk: c.chunkIndex, count: n)) == Array(bytes[start..<(start + n)]))
        }
        // The byte after the short last chunk was never copied over.
        #expect(device.bytes[size] == 0xEE)
    }

    /// Failed reads and reads of nothing need no copy: they come back at once.
    @Test func failedAndEmptyReadsPassWithoutACopy() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (path, _) = file(dir, 2 * Self.chunk)
        let host = OwnedRegion(4 * Self.chunk)
        let device = OwnedRegion(4 * Self.chunk)
        let inner = try ScriptedReadStream(region: host.bytes, chunkBytes: Self.chunk, chunkCount: 4)
        inner.inject(.errno(EIO), forChunk: 0)
        let copier = FakeCopier(destination: device.bytes, pollsToLand: 1000)
        let stream = CopyingReadStream(inner: inner, copier: copier)
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        try stream.submit(ReadRequest(fd: fd, path: path, fileOffset: 0, length: Self.chunk, chunkIndex: 0))
        // At the end of the file: 0 bytes.
        try stream.submit(ReadRequest(fd: fd, path: path, fileOffset: UInt64(2 * Self.chunk), length: Self.chunk, chunkIndex: 1))
        let first = try stream.reap(waitingUpTo: nil)
        #expect(first.map(\.chunkIndex).sorted() == [0, 1])
        for c in first {
            switch (c.chunkIndex, c.result) {
            case (0, .failure(.io(let failure))): #expect(failure.errno == EIO)
            case (1, .success(0)): break
            default: Issue.record("chunk \(c.chunkIndex): \(c.result)")
            }
        }
        #expect(copier.batches == 0)
    }

    /// A copy refused when queued, or a fence that reports a failure, fails
    /// the chunks of its batch with the copier's error; others are unharmed.
    @Test func aFailedCopyFailsTheChunksOfItsBatch() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let size = 3 * Self.chunk
        let (path, bytes) = file(dir, size)
        let host = OwnedRegion(4 * Self.chunk)
        let device = OwnedRegion(4 * Self.chunk)
        // One read per reap, so each chunk is a batch: 1 refused, 2 fails, 3 lands.
        let inner = try ScriptedReadStream(region: host.bytes, chunkBytes: Self.chunk, chunkCount: 4, stepsPerReap: 1)
        let copier = FakeCopier(destination: device.bytes, pollsToLand: 1, refuseBatches: [1], failFences: [2])
        let stream = CopyingReadStream(inner: inner, copier: copier)
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        for r in requests(fd, path, size) { try stream.submit(r) }
        let done = try reapAll(stream)
        #expect(done.count == 3)
        for c in done {
            switch (c.chunkIndex, c.result) {
            case (0, .failure(.gpu(let call, _, _))): #expect(call == "fakeCopy")
            case (1, .failure(.gpu(let call, let code, _))): #expect(call == "fakeFence" && code == 700)
            case (2, .success(let n)):
                #expect(Array(device.bytes[(2 * Self.chunk)..<(2 * Self.chunk + n)]) == Array(bytes[(2 * Self.chunk)...]))
            default: Issue.record("chunk \(c.chunkIndex): \(c.result)")
            }
        }
    }

    /// With a timeout, a reap that finds copies under way and none landed
    /// polls until the oldest lands instead of returning nothing; without
    /// one it returns at once.
    @Test func aReapWithATimeoutPollsUntilTheOldestCopyLands() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (path, bytes) = file(dir, Self.chunk)
        let host = OwnedRegion(2 * Self.chunk)
        let device = OwnedRegion(2 * Self.chunk)
        let copier = FakeCopier(destination: device.bytes, pollsToLand: 50)
        let stream = CopyingReadStream(
            inner: try ScriptedReadStream(region: host.bytes, chunkBytes: Self.chunk, chunkCount: 2), copier: copier)
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        try stream.submit(ReadRequest(fd: fd, path: path, fileOffset: 0, length: Self.chunk, chunkIndex: 0))
        #expect(try stream.reap(waitingUpTo: nil).isEmpty)
        let done = try stream.reap(waitingUpTo: .seconds(5))
        #expect(done.map(\.chunkIndex) == [0])
        #expect(Array(device.bytes[0..<Self.chunk]) == bytes)
    }

    /// Batches land in the order they were made, each completion's bytes
    /// are in place when it is handed out, and a host stream whose reap
    /// throws loses nothing: what had landed is handed out by the next reap.
    @Test func batchesLandInOrderAndAThrowingHostStreamLosesNothing() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let size = 4 * Self.chunk
        let (path, bytes) = file(dir, size)
        let host = OwnedRegion(4 * Self.chunk)
        let device = OwnedRegion(4 * Self.chunk)
        let inner = ThrowingReadStream(try ScriptedReadStream(region: host.bytes, chunkBytes: Self.chunk, chunkCount: 4, stepsPerReap: 1))
        let copier = FakeCopier(destination: device.bytes, pollsToLand: 2)
        let stream = CopyingReadStream(inner: inner, copier: copier)
        let fd = try FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        for r in requests(fd, path, size) { try stream.submit(r) }
        var order: [Int] = []
        func take(_ got: [ReadCompletion]) {
            for c in got {
                guard case .success(let n) = c.result else { Issue.record("\(c.result)"); continue }
                let start = c.chunkIndex * Self.chunk
                // In place when handed out, not only at the end.
                #expect(Array(device.bytes[start..<(start + n)]) == Array(bytes[start..<(start + n)]))
                order.append(c.chunkIndex)
            }
        }
        take(try stream.reap(waitingUpTo: nil))  // chunk 0 read, its copy started
        take(try stream.reap(waitingUpTo: nil))  // chunk 0 lands; chunk 1 read
        inner.throwOnNextReap = true
        #expect(throws: PipelineError.self) { try stream.reap(waitingUpTo: nil) }
        #expect(stream.inflight == 4 - order.count)
        for _ in 0..<50 where stream.inflight > 0 { take(try stream.reap(waitingUpTo: nil)) }
        #expect(order == [0, 1, 2, 3])
        #expect(stream.inflight == 0)
    }
}

extension CopyingReadStreamTests {
    /// A stream let go of with copies under way waits for them: they read
    /// the host region, which its owner may free next.
    @Test func aStreamLetGoWaitsForItsCopies() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (path, bytes) = file(dir, 2 * Self.chunk)
        let host = OwnedRegion(2 * Self.chunk)
        let device = OwnedRegion(2 * Self.chunk)
        let copier = FakeCopier(destination: device.bytes, pollsToLand: 1_000_000)
        do {
            let stream = CopyingReadStream(
                inner: try ScriptedReadStream(region: host.bytes, chunkBytes: Self.chunk, chunkCount: 2), copier: copier)
            let fd = try FileDescriptor.open(path, .readOnly)
            defer { try? fd.close() }
            for r in requests(fd, path, 2 * Self.chunk) { try stream.submit(r) }
            #expect(try stream.reap(waitingUpTo: nil).isEmpty)
            #expect(copier.landedChunks == 0)
        }
        // Dropped: deinit waited, so both copies landed.
        #expect(copier.landedChunks == 2)
        #expect(Array(device.bytes[0..<(2 * Self.chunk)]) == bytes)
    }
}

/// A host stream whose next reap can be made to throw (as io_uring's does
/// when a flush fails), around a scripted one.
final class ThrowingReadStream: ChunkReadStream {
    let inner: ScriptedReadStream
    var throwOnNextReap = false
    init(_ inner: ScriptedReadStream) { self.inner = inner }
    var kind: String { "throwing" }
    var chunkBytes: Int { inner.chunkBytes }
    var chunkCount: Int { inner.chunkCount }
    var region: UnsafeMutableRawBufferPointer { inner.region }
    var inflight: Int { inner.inflight }
    func submit(_ request: ReadRequest) throws(PipelineError) { try inner.submit(request) }
    func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        if throwOnNextReap {
            throwOnNextReap = false
            throw .io(IOFailure(operation: "io_uring_enter", path: "", errno: EBADF, reason: "a flush failed (scripted)"))
        }
        return try inner.reap(waitingUpTo: timeout)
    }
}

/// The engine's copy path, run on the CPU backend: reads land in a separate
/// host region and reach the workers' buffers only through the copier, so
/// any chunk published before its copy landed, and any pack written where
/// the workers do not read, would change the matches.
@Suite struct CopyEngineScanTests {
    @Test(arguments: [ScanMode.matches, .count])
    func aScanThroughCopiedChunksEqualsTheOracle(mode: ScanMode) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 8192
        let (paths, texts) = writePackingTree(dir, seed: 31, files: 250, chunk: chunk)
        let literals = PackingTests.literals
        let copiers = Mutex<[FakeCopier]>([])
        var c = EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: chunk, slots: 4, workers: 2)
        c.deviceStreamForTests = { backend, chunkBytes, chunkCount throws(PipelineError) in
            let host = OwnedRegion(chunkBytes * chunkCount)
            let copier = FakeCopier(destination: backend.dataRegion, landing: .host, pollsToLand: 3, keepAlive: host)
            copiers.withLock { $0.append(copier) }
            let inner = try PreadStream(region: host.bytes, chunkBytes: chunkBytes, chunkCount: chunkCount, threads: 2)
            return CopyingReadStream(inner: inner, copier: copier)
        }
        let engine = try Engine(c, resultWordsPerSlot: ScanJob.resultWords(records: 64))
        defer { try? engine.close() }
        #expect(!engine.stream.readsInPlace)
        let patterns = try PatternSet(literals: literals)
        var got: [FileMatches] = []
        _ = try ScanJob.run(
            scanner: try engine.makeScanner(), patterns: patterns, table: ScanTable(patterns), paths: paths.raw, mode: mode,
            packing: true, onFile: { got.append($0) })
        #expect(got.map(\.path) == paths)
        guard got.count == paths.count else { return }
        for (i, text) in texts.enumerated() {
            let expected = naiveMatches(text, literals)
            #expect(got[i].errors.isEmpty, "\(paths[i]): \(got[i].errors)")
            #expect(got[i].count == UInt64(expected.count), "\(paths[i]) (\(text.count) bytes)")
            if mode == .matches { expectSameMatches(got[i].matches, expected, "oracle \(paths[i])") }
        }
        // Every non-empty file went through a copy (none was packed in place).
        let nonEmpty = texts.filter { !$0.isEmpty }.count
        #expect(copiers.withLock { $0.reduce(0) { $0 + $1.landedChunks } } >= nonEmpty)
    }
}

@Suite struct CopyEnginePlanTests {
    func facts(
        backend: BackendChoice = .cuda, gds: Bool = false, gdsForced: Bool = false, packing: Bool = false, mean: Int? = 1 << 30,
        measured: Bool? = nil
    ) -> CopyEnginePlan.Facts {
        var f = CopyEnginePlan.Facts(
            backend: backend, gds: gds, packing: packing, meanFileBytes: mean, chunkBytes: 4 << 20, engineMeasuredFaster: measured,
            measuredBy: "a test model")
        f.gdsForced = gdsForced
        return f
    }

    @Test func askedForPathsAreTakenWhereCUDARuns() throws {
        let engine = try CopyEnginePlan.decide(.engine, facts: facts(measured: false))
        #expect(engine.useEngine && engine.forced)
        #expect(engine.note?.contains("ingest-copy engine in the configuration") == true)
        let mapped = try CopyEnginePlan.decide(.mapped, facts: facts(measured: true))
        #expect(!mapped.useEngine)
        #expect(mapped.note?.contains("ingest-copy mapped") == true)
    }

    @Test func autoFollowsTheMeasurementAndLeavesPackedTreesMapped() throws {
        #expect(try CopyEnginePlan.decide(.auto, facts: facts(measured: true)).useEngine)
        #expect(try !CopyEnginePlan.decide(.auto, facts: facts(measured: false)).useEngine)
        let unmeasured = try CopyEnginePlan.decide(.auto, facts: facts(measured: nil))
        #expect(!unmeasured.useEngine && !unmeasured.forced)
        #expect(unmeasured.note?.contains("not measured") == true)
        // Small files packed into host buffers: mapped, whatever was measured.
        let packed = try CopyEnginePlan.decide(.auto, facts: facts(packing: true, mean: 16 << 10, measured: true))
        #expect(!packed.useEngine)
        #expect(packed.note?.contains("packed") == true)
        // Packing on, but files larger than a chunk: the measurement decides.
        #expect(try CopyEnginePlan.decide(.auto, facts: facts(packing: true, mean: 64 << 20, measured: true)).useEngine)
    }

    @Test func theEngineWithTheCPUBackendOrCuFileIsAnError() throws {
        #expect(throws: PipelineError.self) { try CopyEnginePlan.decide(.engine, facts: facts(backend: .cpu)) }
        #expect(throws: PipelineError.self) { try CopyEnginePlan.decide(.engine, facts: facts(gds: true, gdsForced: true)) }
        // Not asked for: no copy and nothing to say on the CPU; nothing to copy with cuFile.
        #expect(try CopyEnginePlan.decide(.auto, facts: facts(backend: .cpu, measured: true))
            == CopyEnginePlan.Decision(useEngine: false, forced: false, note: nil))
        #expect(try !CopyEnginePlan.decide(.auto, facts: facts(gds: true, measured: true)).useEngine)
    }

    /// Only one of cuFile and the copy engine fills the device ingest region:
    /// an engine asked for wins over a cuFile that auto chose; otherwise cuFile runs.
    @Test func cuFileAndTheCopyEngineAreReconciled() throws {
        let autoGDS = GDSPlan.Decision(useGDS: true, forced: false, note: "auto: direct")
        let forcedEngine = try CopyEnginePlan.decide(.engine, facts: facts(gds: true))
        #expect(forcedEngine.useEngine)
        let (copy, gds) = CopyEnginePlan.reconcile(forcedEngine, autoGDS)
        #expect(copy.useEngine && !gds.useGDS)
        #expect(gds.note?.contains("copy engine was asked for") == true)
        let autoEngine = try CopyEnginePlan.decide(.auto, facts: facts(measured: true))
        let kept = CopyEnginePlan.reconcile(autoEngine, autoGDS)
        #expect(!kept.copy.useEngine && kept.gds.useGDS)
        let none = GDSPlan.Decision(useGDS: false, forced: false, note: nil)
        #expect(CopyEnginePlan.reconcile(autoEngine, none).copy == autoEngine)
    }

    /// Once the backend exists: `auto` on the CPU backend copies nothing; an
    /// engine asked for where CUDA did not start is an error naming why.
    @Test func resolvingAgainstTheBackendThatStarted() throws {
        let auto = try CopyEnginePlan.decide(.auto, facts: facts(backend: .auto, measured: true))
        #expect(try !CopyEnginePlan.resolve(auto, backendIsCUDA: false, backendReason: "no GPU").useEngine)
        #expect(try CopyEnginePlan.resolve(auto, backendIsCUDA: true, backendReason: "").useEngine)
        let forced = try CopyEnginePlan.decide(.engine, facts: facts(backend: .auto))
        do {
            _ = try CopyEnginePlan.resolve(forced, backendIsCUDA: false, backendReason: "no GPU here")
            Issue.record("an engine asked for without CUDA was taken")
        } catch {
            guard case .backendUnavailable(let backend, let reason) = error else { Issue.record("\(error)"); return }
            #expect(backend == "cuda")
            #expect(reason.contains("no GPU here"))
        }
    }

    /// The plan carries the decision and its reason to the engine.
    @Test func thePlanSaysWhichCopyPathRuns() throws {
        var c = EngineConfiguration(backend: .cuda)
        c.ingestCopy = .engine
        var machine = ExecutionPlanTests.gpu
        let plan = try ExecutionPlan.make(configuration: c, input: .unknown(.scan), machine: machine)
        #expect(plan.ingest.value.copy.useEngine)
        #expect(plan.configure(c).plannedCopy?.useEngine == true)
        #expect(plan.ingest.reason.contains("copy engine"))
        machine.costModel.cudaCopyEngineFaster = true
        c.ingestCopy = .auto
        let measured = try ExecutionPlan.make(configuration: c, input: .unknown(.scan), machine: machine)
        #expect(measured.ingest.value.copy.useEngine)
        #expect(measured.ingest.reason.contains("measured faster"))
    }
}

extension CopyEnginePlanTests {
    /// With `--ingest-copy engine`, `auto` never sends the run to the CPU
    /// backend (which cannot read GPU memory): not for a tree of small files,
    /// not for a checksum, not where the CPU is estimated cheaper.
    @Test func anEngineAskedForKeepsAutoOnCUDA() throws {
        var c = EngineConfiguration(backend: .auto)
        c.ingestCopy = .engine
        var machine = ExecutionPlanTests.gpu
        machine.costModel = .defaults  // the CPU is cheaper for small inputs
        let inputs = [
            ExecutionPlan.Input(work: .scan, files: 40_000, bytes: 40_000 << 14, literals: 100),
            ExecutionPlan.Input(work: .hash, files: 1, bytes: 1 << 30),
            ExecutionPlan.Input(work: .scan, files: 1, bytes: 64 << 20, literals: 1000),
        ]
        for input in inputs {
            let plan = try ExecutionPlan.make(configuration: c, input: input, machine: machine)
            #expect(plan.backend.value != .cpu, "\(input): \(plan.backend.reason)")
            #expect(plan.ingest.value.copy.useEngine)
            c.ingestCopy = .auto
            #expect(try ExecutionPlan.make(configuration: c, input: input, machine: machine).backend.value == .cpu, "\(input)")
            c.ingestCopy = .engine
        }
    }
}

extension CopyEnginePlanTests {
    /// After a lost CUDA context the run goes on on the CPU backend with
    /// host reads only: cuFile and the copy engine are off, and the forced
    /// settings that would refuse the CPU backend are relaxed to auto.
    @Test func goingOnOnTheCPUTurnsEveryGPUMemoryPathOff() throws {
        var c = EngineConfiguration(backend: .cuda, ingest: .gds)
        c.ingestCopy = .engine
        let (cpu, gds, copy) = Engine.onTheCPU(c)
        #expect(cpu.backend == .cpu && cpu.ingest == .auto && cpu.ingestCopy == .auto)
        #expect(!gds.useGDS && !copy.useEngine)
        // The relaxed configuration is one the CPU backend accepts.
        #expect(try !CopyEnginePlan.decide(cpu.ingestCopy, facts: facts(backend: .cpu)).useEngine)
        #expect(try CopyEnginePlan.resolve(copy, backendIsCUDA: false, backendReason: "lost").useEngine == false)
    }
}
