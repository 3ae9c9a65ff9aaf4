#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import Synchronization

/// The `--faults` checks of user operations that fault on the GPU
/// (`FaultingOperations`), each through a `Session` made with both of them:
///
/// - **traps**: a chunk's `__trap()` kills the kernel and its context; the
///   run must recover as for the built-ins (rerun on a new backend, on CUDA
///   the CPU backend, and every file equal to its direct byte sum) or end
///   with `recoveryFailed` naming the file and the chunk's offset;
/// - **spins**: a chunk that never finishes; the request must end with the
///   watchdog's `stuck` naming a slot rather than hang.
///
/// After either, the same session must serve the operation over the other
/// files and a `count`, both equal to the direct computation. On the CPU
/// backend the Swift references neither trap nor spin: there the checks show
/// the plumbing (installed, run through a session, results combined, the
/// session goes on), and say so; the faults themselves need `--backend cuda`.
///
/// Each runs in a child process where one is given (`sluice selftest
/// --fault-child NAME`): after a trap the CUDA driver refuses every new
/// context in the process, and a spinning block can never be stopped, so
/// neither may touch the parent's later checks.
enum UserFaultSelfTest {
    /// One check, by the name `--fault-child` takes.
    enum Check: String, CaseIterable, Sendable {
        case trap = "user-trap"
        case spin = "user-spin"

        /// The name the check's line starts with.
        var title: String {
            switch self {
            case .trap: return "faults: user operation that traps"
            case .spin: return "faults: user operation that spins"
            }
        }
    }

    static let chunkBytes = 64 << 10
    /// Short, so that the spinning chunk is named in seconds.
    static let watchdog: Duration = .seconds(3)
    /// A child's limit: the CUDA one compiles the megakernel with the two
    /// operations (once; the CUBIN cache serves the second child) and, after
    /// the spin, waits out two 10 s shutdowns of the kernel it cannot stop.
    static let childTimeout: Duration = .seconds(240)
    /// The chunk of the marked file that starts with the marker.
    static let markedChunk = 2

    /// The check's detail line: run in a child made by `child` when there
    /// is one; else here on the CPU backend, and skipped on any other.
    static func run(_ check: Check, backend: BackendChoice, seed: UInt64, child: SelfTestOptions.FaultChild?)
        throws(CheckFailure) -> String
    {
        guard let child else {
            guard backend == .cpu else {
                return "skipped on \(backend.rawValue): it needs a child process of its own (run it with `sluice selftest --faults`)"
            }
            return try inProcess(check, backend: backend, seed: seed).get()
        }
        return try inChild(check, arguments: child(check.rawValue, seed, backend))
    }

    /// Runs `check` in this process (what a `--fault-child` process does).
    static func inProcess(_ check: Check, backend: BackendChoice, seed: UInt64, progress: @escaping @Sendable (String) -> Void = { _ in })
        -> Result<String, CheckFailure>
    {
        waitBlocking {
            do throws(CheckFailure) {
                return .success(try await body(check, backend: backend, seed: seed, progress: progress))
            } catch {
                return .failure(error)
            }
        }
    }

    /// Runs this executable with `arguments` and takes its check line.
    static func inChild(_ check: Check, arguments: [String]) throws(CheckFailure) -> String {
        let scratch: ScratchFiles
        do { scratch = try ScratchFiles(under: "/var/tmp") } catch { throw CheckFailure(message: error.message) }
        defer { scratch.remove() }
        let outcome: ChildProcess.Outcome
        do {
            outcome = try ChildProcess.run(
                arguments: arguments, outputPath: scratch.path + "/\(check.rawValue).log", timeout: childTimeout)
        } catch {
            throw CheckFailure(message: "the child process did not start: \(error.message)")
        }
        let lines = outcome.output.split(separator: "\n").map(String.init)
        let passed = "ok    \(check.title): "
        let tail = lines.suffix(8).joined(separator: " | ")
        let seconds = Double(Int(outcome.seconds * 10)) / 10
        if outcome.timedOut {
            throw CheckFailure(message: "the child process did not end within \(childTimeout.components.seconds) s and was killed; its last lines: \(tail)")
        }
        guard outcome.status == 0, let line = lines.last(where: { $0.hasPrefix(passed) }) else {
            let failed = lines.last { $0.hasPrefix("FAIL  \(check.title): ") }
            throw CheckFailure(message: "the child process exited \(outcome.status) after \(seconds) s: \(failed ?? tail)")
        }
        return String(line.dropFirst(passed.count)) + " (in a child process, \(seconds) s)"
    }

    /// Collects what reaches a session's `onNote`.
    final class Notes: Sendable {
        private let lines = Mutex<[String]>([])
        func add(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// Files of several sizes, one of them with the check's marker at the start of its chunk `markedChunk`.
    struct Inputs {
        var paths: [String] = []
        var contents: [[UInt8]] = []
        var marked = 0

        /// The direct byte sum of file `i`: the oracle.
        func sum(_ i: Int) -> UInt64 { contents[i].reduce(0) { $0 + UInt64($1) } }
        var unmarked: [Int] { paths.indices.filter { $0 != marked } }
    }

    static func makeInputs(_ check: Check, seed: UInt64, in scratch: ScratchFiles) throws(CheckFailure) -> Inputs {
        var rng = SplitMix64(seed: seed ^ (check == .trap ? 0x7A_9000 : 0x5B_1000))
        let marker = check == .trap ? FaultingOperations.trapMarker : FaultingOperations.spinMarker
        let sizes = [0, 1, chunkBytes - 1, (markedChunk + 1) * chunkBytes + 77, chunkBytes, chunkBytes + 1]
        var inputs = Inputs()
        inputs.marked = 3
        for (i, size) in sizes.enumerated() {
            // Lowercase letters never spell a marker (it holds ':' and '!').
            var bytes = (0..<size).map { _ in UInt8(97 + rng.below(26)) }
            if i == inputs.marked {
                let at = markedChunk * chunkBytes
                bytes.replaceSubrange(at..<(at + marker.count), with: marker)
            }
            do {
                inputs.paths.append(try scratch.write("\(check.rawValue)-\(i)", bytes))
            } catch { throw CheckFailure(message: error.message) }
            inputs.contents.append(bytes)
        }
        return inputs
    }

    /// The files' results, and the error that ended the request, if any.
    static func collect<Op: SluiceOperation>(_ session: Session, _ operation: Op, _ paths: [String]) async
        -> (files: [FileResult<Op.Result>], error: SluiceError?)
    {
        var files: [FileResult<Op.Result>] = []
        do throws(SluiceError) {
            for try await file in session.run(operation, over: paths.map { FilePath($0) }) { files.append(file) }
            return (files, nil)
        } catch {
            return (files, error)
        }
    }

    /// Throws unless each of `files` is the file of `inputs` at the same
    /// position of `expected`, with no error and its direct byte sum.
    static func compare(_ files: [FileResult<UInt64>], _ inputs: Inputs, expected: [Int]) throws(CheckFailure) {
        for (file, i) in zip(files, expected) {
            guard file.path == RawPath(inputs.paths[i]) else {
                throw CheckFailure(message: "\(file.path) reported where \(inputs.paths[i]) was due")
            }
            guard file.errors.isEmpty else { throw CheckFailure(message: "\(file.path): \(file.errors.map(\.message))") }
            guard file.value == inputs.sum(i), file.bytes == UInt64(inputs.contents[i].count) else {
                throw CheckFailure(message: "\(file.path): sum \(file.value) over \(file.bytes) bytes, the direct sum \(inputs.sum(i)) over \(inputs.contents[i].count)")
            }
        }
    }

    /// The check: the faulting request, then a normal one on the same session.
    static func body(_ check: Check, backend: BackendChoice, seed: UInt64, progress: @escaping @Sendable (String) -> Void)
        async throws(CheckFailure) -> String
    {
        let scratch: ScratchFiles
        do { scratch = try ScratchFiles(under: "/var/tmp") } catch { throw CheckFailure(message: error.message) }
        defer { scratch.remove() }
        let inputs = try makeInputs(check, seed: seed, in: scratch)
        defer { for p in inputs.paths { unlink(p) } }

        let notes = Notes()
        var c = Session.Configuration()
        c.backend = backend
        c.devices = .list([0])
        c.chunkBytes = chunkBytes
        c.slots = 8
        c.watchdog = watchdog
        c.onNote = { line in
            notes.add(line)
            progress("note: \(line)")
        }
        let session: Session
        do {
            session = try await Session(c, operations: [TrappingSum(), SpinningSum()])
        } catch {
            throw CheckFailure(message: "the session with the faulting operations did not start: \(error.message)")
        }
        let backendLine = session.reasons.first { $0.hasPrefix("device 0: backend ") } ?? "device 0: backend unknown"
        let onCPU = backendLine.hasPrefix("device 0: backend cpu")
        progress("\(check.title): \(backendLine)")

        let fault: String
        do throws(CheckFailure) {
            switch check {
            case .trap: fault = try await trap(session, inputs, onCPU: onCPU, notes: notes)
            case .spin: fault = try await spin(session, inputs, onCPU: onCPU)
            }
            progress("\(check.title): \(fault)")
            let after = try await serveNormally(session, inputs, check: check, notes: notes)
            let started = clockNow()
            await session.close()
            return "\(fault); \(after); the session closed in \(elapsedText(since: started)) (\(backendLine))"
        } catch {
            await session.close()
            throw error
        }
    }

    /// The trapping request: recovered with every file right, or `recoveryFailed` naming the marked chunk.
    static func trap(_ session: Session, _ inputs: Inputs, onCPU: Bool, notes: Notes) async throws(CheckFailure) -> String {
        let (files, error) = await collect(session, TrappingSum(), inputs.paths)
        let marked = inputs.paths[inputs.marked]
        let offset = UInt64(markedChunk * chunkBytes)
        if let error {
            guard !onCPU else { throw CheckFailure(message: "the Swift reference never traps, yet the request failed: \(error.message)") }
            guard case .recoveryFailed(let attempts, _, let unfinished)? = error.underlying else {
                throw CheckFailure(message: "expected the run to recover or end with recoveryFailed, got \(error.code.rawValue): \(error.message)")
            }
            guard unfinished.contains(where: { $0.path == marked && $0.fileOffset == offset }) else {
                throw CheckFailure(message: "recoveryFailed does not name \(marked) at offset \(offset): \(error.message)")
            }
            try compare(files, inputs, expected: Array(inputs.paths.indices))
            return "the trap lost the backend on every attempt: the request ended after \(attempts) recoveries with recoveryFailed naming \(marked) at offset \(offset) (chunk \(markedChunk)); the \(files.count) files reported before it equal their direct byte sums"
        }
        guard files.count == inputs.paths.count else {
            throw CheckFailure(message: "\(files.count) files reported of \(inputs.paths.count)")
        }
        try compare(files, inputs, expected: Array(inputs.paths.indices))
        let recoveries = notes.all.filter { $0.contains("recreating the backend") }
        if onCPU {
            guard recoveries.isEmpty else { throw CheckFailure(message: "the CPU backend was recreated: \(recoveries)") }
            return "cpu backend: the Swift reference does not trap, so this shows the plumbing only (the marked chunk ran through the session and all \(files.count) files equal their direct byte sums); the trap itself is checked with --backend cuda"
        }
        guard let recovery = recoveries.first else {
            throw CheckFailure(message: "every file is right but no recovery was noted: chunk \(markedChunk) of \(marked) did not trap")
        }
        let fallback = notes.all.contains { $0.contains("goes on the CPU backend") }
        let how = fallback ? "the unfinished chunks were finished on the CPU backend (CUDA cannot start again in this process)" : "the backend was recreated"
        return "the trap lost the context (\(recovery)); \(how), and all \(files.count) files equal their direct byte sums"
    }

    /// The spinning request: the watchdog's `stuck`, naming a slot.
    static func spin(_ session: Session, _ inputs: Inputs, onCPU: Bool) async throws(CheckFailure) -> String {
        let started = clockNow()
        let (files, error) = await collect(session, SpinningSum(), inputs.paths)
        let took = elapsedText(since: started)
        if onCPU {
            if let error { throw CheckFailure(message: "the Swift reference never spins, yet the request failed: \(error.message)") }
            guard files.count == inputs.paths.count else {
                throw CheckFailure(message: "\(files.count) files reported of \(inputs.paths.count)")
            }
            try compare(files, inputs, expected: Array(inputs.paths.indices))
            return "cpu backend: the Swift reference does not spin, so this shows the plumbing only (the marked chunk ran through the session and all \(files.count) files equal their direct byte sums); the watchdog is checked with --backend cuda"
        }
        guard let error else {
            throw CheckFailure(message: "the request finished in \(took) although chunk \(markedChunk) of \(inputs.paths[inputs.marked]) spins")
        }
        guard error.code == .stuck, case .stuck(let slots, let seconds, _)? = error.underlying, !slots.isEmpty, error.slot != nil else {
            throw CheckFailure(message: "expected the watchdog's stuck naming a slot, got \(error.code.rawValue): \(error.message)")
        }
        guard !files.contains(where: { $0.path == RawPath(inputs.paths[inputs.marked]) }) else {
            throw CheckFailure(message: "the spinning file \(inputs.paths[inputs.marked]) was reported as done")
        }
        try compare(files, inputs, expected: Array(inputs.paths.indices))
        return "the watchdog (\(seconds) s) ended the request after \(took) with stuck naming slots \(slots); the \(files.count) files reported before it equal their direct byte sums"
    }

    /// The same session runs the check's operation over the unmarked files
    /// and `count` over all of them; both must equal the direct computation.
    static func serveNormally(_ session: Session, _ inputs: Inputs, check: Check, notes: Notes) async throws(CheckFailure) -> String {
        let started = clockNow()
        let clean = inputs.unmarked
        let paths = clean.map { inputs.paths[$0] }
        let (files, error) =
            check == .trap
            ? await collect(session, TrappingSum(), paths) : await collect(session, SpinningSum(), paths)
        if let error { throw CheckFailure(message: "the next request failed: \(error.message)") }
        guard files.count == clean.count else { throw CheckFailure(message: "the next request reported \(files.count) files of \(clean.count)") }
        try compare(files, inputs, expected: clean)
        let counted: [FileCount]
        do {
            counted = try await session.count(inputs.paths.map { FilePath($0) }).collect()
        } catch {
            throw CheckFailure(message: "count after the fault failed: \(error.message)")
        }
        guard counted.count == inputs.paths.count else {
            throw CheckFailure(message: "count reported \(counted.count) files of \(inputs.paths.count)")
        }
        for (i, file) in counted.enumerated() {
            let newlines = UInt64(inputs.contents[i].filter { $0 == 0x0A }.count)
            guard file.errors.isEmpty, file.result.bytes == UInt64(inputs.contents[i].count), file.result.newlines == newlines
            else {
                throw CheckFailure(message: "count of \(file.path): \(file.result.bytes) bytes, \(file.result.newlines) newlines, errors \(file.errors.map(\.message)); expected \(inputs.contents[i].count) bytes, \(newlines) newlines")
            }
        }
        return "then the same session served the operation over the \(clean.count) other files and count over all \(inputs.paths.count), all equal to the direct computation (\(elapsedText(since: started)), \(notes.all.count) notes)"
    }
}
