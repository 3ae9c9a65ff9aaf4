import SluiceCore
import SluiceIngest
import SystemPackage

/// What `Session.verify(operation:files:seed:)` found.
public struct OperationVerification: Sendable {
    /// One result word where the backend and the reference differ.
    public struct Mismatch: Sendable, CustomStringConvertible {
        /// The random file's name (`verify-N`) and size.
        public var file: String
        /// The chunk's number in it and its offset.
        public var chunk: Int
        /// The chunk's offset in the file.
        public var fileOffset: UInt64
        /// The word's index in the result area.
        public var word: Int
        /// What the backend wrote.
        public var backend: UInt32
        /// What the Swift reference computed (nil when it faulted).
        public var reference: UInt32?

        /// "FILE chunk C (offset O) word W: backend X, reference Y".
        public var description: String {
            "\(file) chunk \(chunk) (offset \(fileOffset)) word \(word): backend \(backend), reference "
                + (reference.map(String.init) ?? "faulted")
        }
    }

    /// The operation's name.
    public var operation: String
    /// The backend that ran the chunks (`MegakernelBackend.name`: "cpu" or "cuda").
    public var backend: String
    /// Chunks compared.
    public var chunks = 0
    /// Result words compared.
    public var words = 0
    /// Bytes of random input.
    public var bytes: UInt64 = 0
    /// The words that differ (at most 100 are kept; `mismatchCount` counts all).
    public var mismatches: [Mismatch] = []
    /// Every differing word.
    public var mismatchCount = 0
    /// Files that did not finish (a faulted slot, the watchdog).
    public var errors: [PipelineError] = []
    /// The seed the files were made from.
    public var seed: UInt64

    /// No difference and no error.
    public var passed: Bool { mismatchCount == 0 && errors.isEmpty && chunks > 0 }
}

extension Session {
    /// Runs `operation` through this session's backend over `files` fresh
    /// random files (sizes a chunk and one, 1, a chunk less one, a chunk,
    /// several chunks, 0, and random ones; bytes of several distributions)
    /// and compares every result word of every chunk with the Swift
    /// reference run here on the same bytes, offset and arguments. On the
    /// CPU backend this compares the backend's path (ring, slots, executor)
    /// with a direct reference call; on CUDA it checks the device function
    /// against the reference. `files` must be at least 1 (the first file
    /// has two chunks).
    public func verify<Op: SluiceOperation>(
        operation: Op, files: Int = 12, seed: UInt64? = nil
    ) async throws(SluiceError) -> OperationVerification {
        let setup = try verificationSetup(operation, files: files, seed: seed)
        var report = OperationVerification(operation: operation.name, backend: "", seed: setup.seed)
        report.bytes = setup.sizes.reduce(0) { $0 + UInt64($1) }
        for try await outcome in runVerification(operation, setup) {
            report.add(outcome)
        }
        return report
    }

    /// What one verification runs on: the local worker, the operation's
    /// opcode, the seed and the random files.
    struct VerificationSetup {
        var worker: SessionWorker
        var opcode: Opcode
        var seed: UInt64
        var files: PassedFiles
        var sizes: [Int]
    }

    /// Checks that `operation` can be verified here and makes its files.
    private func verificationSetup<Op: SluiceOperation>(
        _ operation: Op, files: Int, seed: UInt64?
    ) throws(SluiceError) -> VerificationSetup {
        guard let worker else {
            throw SluiceError(code: .invalidRequest, message: "a session connected to a server runs no user operations")
        }
        guard let opcode = opcode(of: operation) else {
            throw SluiceError(.invalidRequest(
                chunk: nil, slot: nil,
                reason: "the operation \(operation.name) is not installed in this session; pass it to Session(_:operations:)"))
        }
        guard files >= 1 else {
            throw SluiceError(.invalidRequest(
                chunk: nil, slot: nil, reason: "verifying \(operation.name) needs at least 1 file, not \(files)"))
        }
        let seed = seed ?? UInt64.random(in: 0...UInt64.max)
        do throws(PipelineError) {
            let (passed, sizes) = try OperationVerifyFiles.make(
                count: files, chunkBytes: worker.configuration.chunkBytes, seed: seed)
            return VerificationSetup(worker: worker, opcode: opcode, seed: seed, files: passed, sizes: sizes)
        } catch {
            throw SluiceError(error)
        }
    }

    /// Runs the comparing job over the setup's files: the backend it ran
    /// on, each chunk compared, each file's errors.
    private func runVerification<Op: SluiceOperation>(
        _ operation: Op, _ setup: VerificationSetup
    ) -> SluiceResults<OperationVerifyFiles.Outcome> {
        let (opcode, passed) = (setup.opcode, setup.files)
        return setup.worker.submit(
            { pool, channel throws(PipelineError) in
                let scanner = try pool.engines[0].scanner()
                channel.send(.backend(scanner.backend.name))
                var job = OperationVerifyFiles.job(
                    operation, opcode: opcode, tenant: scanner.options.tenant, files: passed, chunkBytes: scanner.chunkBytes,
                    send: { channel.send($0) })
                job.descriptors = passed
                try scanner.run(jobs: [job])
            },
            job: { place, channel in
                channel.push(.backend(place.scanner.backend.name))
                var job = OperationVerifyFiles.job(
                    operation, opcode: opcode, tenant: place.tenant, files: passed, chunkBytes: place.scanner.chunkBytes,
                    send: { channel.push($0) })
                job.descriptors = passed
                return job
            })
    }
}

extension OperationVerification {
    /// Counts one outcome of the comparing job.
    mutating func add(_ outcome: OperationVerifyFiles.Outcome) {
        switch outcome {
        case .backend(let name):
            backend = name
        case .chunk(let compared, let differing):
            chunks += 1
            words += compared
            mismatchCount += differing.count
            mismatches += differing.prefix(max(0, 100 - mismatches.count))
        case .file(let errors):
            self.errors += errors
        }
    }
}

/// The random files of a verification and the job that compares their chunks.
enum OperationVerifyFiles {
    /// What the comparing job reports.
    enum Outcome: Sendable {
        /// The backend that runs the chunks (`MegakernelBackend.name`).
        case backend(String)
        /// One chunk compared: its word count and the words that differ.
        case chunk(compared: Int, mismatches: [OperationVerification.Mismatch])
        /// One file ended, with its errors.
        case file(errors: [PipelineError])
    }

    /// `count` unlinked temporary files of random sizes and contents, passed by descriptor.
    static func make(count: Int, chunkBytes: Int, seed: UInt64) throws(PipelineError) -> (PassedFiles, [Int]) {
        var rng = SplitMix64(seed: seed)
        // Nonempty first, so that even one file has chunks to compare.
        let fixed = [chunkBytes + 1, 1, chunkBytes - 1, chunkBytes, 3 * chunkBytes + 4095, 0]
        var sizes: [Int] = []
        var descriptors: [FileDescriptor] = []
        var names: [RawPath] = []
        for i in 0..<count {
            let size = i < fixed.count ? fixed[i] : Int(rng.next() % UInt64(4 * chunkBytes))
            let bytes = randomBytes(size, kind: i % 4, rng: &rng)
            let name = "verify-\(i) (\(size) bytes)"
            let fd: FileDescriptor
            do {
                fd = try StreamSpool.temporaryFile(for: name)
            } catch {
                for d in descriptors { try? d.close() }
                throw error
            }
            descriptors.append(fd)
            do {
                _ = try fd.writeAll(bytes)
            } catch {
                for d in descriptors { try? d.close() }
                let code = (error as? Errno)?.rawValue ?? 0
                throw .io(IOFailure(
                    operation: "write a verification file", path: name, errno: code, reason: "\(error)"))
            }
            sizes.append(size)
            names.append(RawPath(name))
        }
        return (try PassedFiles(paths: names, descriptors: descriptors), sizes)
    }

    /// Uniform bytes, text-like bytes, long runs, or mostly zeros.
    static func randomBytes(_ n: Int, kind: Int, rng: inout SplitMix64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var run: UInt8 = 0
        for i in 0..<n {
            let r = rng.next()
            switch kind {
            case 0: out[i] = UInt8(truncatingIfNeeded: r)
            case 1: out[i] = r % 17 == 0 ? 0x0A : UInt8(0x20 + r % 95)
            case 2:
                if r % 64 == 0 { run = UInt8(truncatingIfNeeded: r >> 8) }
                out[i] = run
            default: out[i] = r % 97 == 0 ? UInt8(truncatingIfNeeded: r >> 16) : 0
            }
        }
        return out
    }

    /// The job that runs `operation` over `files` and compares each chunk's
    /// words with the reference run on the chunk's bytes here.
    static func job<Op: SluiceOperation>(
        _ operation: Op, opcode: Opcode, tenant: UInt32, files: PassedFiles, chunkBytes: Int,
        send: @escaping (Outcome) -> Void
    ) -> ChunkScheduler.Job {
        let stride = chunkBytes - operation.overlapBytes
        return ChunkScheduler.Job(
            tenant: tenant, paths: files.paths, opcode: opcode, flags: operation.argument, overlap: operation.overlapBytes,
            onChunk: { chunk in
                var expected = [UInt32](repeating: 0, count: operation.resultWords)
                var referenceFaulted = false
                do {
                    let bytes = try chunk.bytes
                    let input = OperationChunk(
                        bytes: bytes, fileOffset: chunk.fileOffset, argument0: UInt32(min(chunk.length, stride)),
                        argument1: operation.argument)
                    try expected.withUnsafeMutableBufferPointer { area throws(OperationFault) in
                        try operation.reference(input, results: OperationResults(area: area))
                    }
                } catch {
                    referenceFaulted = true
                }
                var differing: [OperationVerification.Mismatch] = []
                let count = max(chunk.words.count, expected.count)
                for w in 0..<count {
                    let got = w < chunk.words.count ? chunk.words[w] : 0
                    let want: UInt32? = referenceFaulted || w >= expected.count ? nil : expected[w]
                    if got != want || w >= chunk.words.count {
                        differing.append(OperationVerification.Mismatch(
                            file: chunk.path.description, chunk: chunk.chunkNumber, fileOffset: chunk.fileOffset, word: w,
                            backend: got, reference: want))
                    }
                }
                send(.chunk(compared: count, mismatches: differing))
            },
            onFile: { outcome in send(.file(errors: outcome.errors)) })
    }
}
