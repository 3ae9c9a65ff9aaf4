#if canImport(Glibc)
import Glibc
#endif
@testable import SluiceCUDA
import SluiceExampleOperations
import Testing

@testable import Sluice

/// User operations on the CPU backend (the examples against an independent
/// Python computation, faults, verify, errors) and, where NVRTC 13 can be
/// loaded, the CUDA composition and its compile errors.
@Suite(.serialized) struct UserOperationTests {
    static let chunk = 64 << 10

    static func configuration() -> Session.Configuration {
        var c = SessionTests.cpuConfiguration(chunkBytes: chunk)
        c.watchdog = .seconds(20)
        return c
    }

    static let oracle = URLPath.root + "/scripts/example-ops-oracle.py"

    /// `PATH: VALUE` lines of the oracle script, by path.
    static func oracleLines(_ mode: String, _ paths: [String]) -> [String: String] {
        let r = run(["/usr/bin/env", "python3", oracle, mode] + paths)
        #expect(r.status == 0, "oracle: \(r.stderr)")
        var out: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            // Paths hold no ": " here; the value follows the last one.
            guard let colon = line.lastIndex(of: ":") else { continue }
            out[String(line[..<colon])] = String(line[line.index(colon, offsetBy: 2)...])
        }
        return out
    }

    /// Files of 0, 1, chunk - 1, chunk, chunk + 1 bytes and several chunks.
    static func edgeFiles(_ dir: ScratchDirectory) -> [String] {
        var rng = SeededRandom(state: 20)
        return [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 1234, 5 * chunk].enumerated().map { i, size in
            let bytes = i % 2 == 0
                ? (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) } : textLikeBytes(size, &rng)
            return dir.write("f\(i)", bytes)
        }
    }

    @Test("byte-histogram and xxh64-blocks equal the Python oracle on 0, 1, chunk-1, chunk, chunk+1 bytes and several chunks")
    func examplesMatchOracle() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let paths = Self.edgeFiles(dir)
        let session = try await Session(Self.configuration(), operations: [ByteHistogram(), XXH64Blocks()])
        defer { Task { await session.close() } }

        let histograms = Self.oracleLines("histogram", paths)
        var seen: [String] = []
        for try await file in session.run(ByteHistogram(), over: paths.map { FilePath($0) }) {
            #expect(file.errors.isEmpty, "\(file.errors)")
            seen.append(file.path.description)
            #expect(file.value.map(String.init).joined(separator: " ") == histograms[file.path.description])
            #expect(file.bytes == file.value.reduce(0, +))
        }
        #expect(seen == paths)   // path order (f0 ... f6 sort as given)

        let hashes = Self.oracleLines("xxh64-blocks", paths)
        var count = 0
        for try await file in session.run(XXH64Blocks(), over: paths.map { FilePath($0) }) {
            #expect(file.errors.isEmpty, "\(file.errors)")
            let hex = String(file.value.digest, radix: 16)
            #expect(String(repeating: "0", count: 16 - hex.count) + hex == hashes[file.path.description])
            count += 1
        }
        #expect(count == paths.count)
    }

    @Test("XXH64 gives the published test vectors")
    func xxh64Vectors() {
        #expect(XXH64.hash([]) == 0xEF46_DB37_51D8_E999)
        #expect(XXH64.hash(Array("a".utf8)) == 0xD24E_C4F1_A98C_6E5B)
        #expect(XXH64.hash(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        #expect(XXH64.hash(Array("abc".utf8), seed: 1) == 0xBEA9_CA81_9932_8908)
    }

    /// Writes word `resultWords` (one past its capacity) in the second chunk of a file only.
    struct OverflowsInSecondChunk: SluiceOperation {
        let name = "overflows"
        let cudaFunction = "overflows"
        let cudaSource = "#include \"sluice_operation.h\"\n__device__ void overflows(const SluiceOpContext& c) {\n"
            + "    if (threadIdx.x == 0u) { sluice_op_write(c, c.fileOffset == 65536ull ? 4u : 0u, 1u); }\n}\n"
        let resultWords = 4
        var initialResult: Int { 0 }

        func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {
            try results.write(1, at: chunk.fileOffset == UInt64(UserOperationTests.chunk) ? 4 : 0)
        }

        func combine(_ result: inout Int, with chunk: OperationChunkResult) { result += Int(chunk.words[0]) }
    }

    @Test("a write past the declared words faults its slot; the run names the file and chunk, and the other files go on")
    func overflowFaultsItsSlot() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let big = dir.write("a-big", [UInt8](repeating: 7, count: 3 * Self.chunk))
        let small = dir.write("b-small", [UInt8](repeating: 7, count: 100))
        let session = try await Session(Self.configuration(), operations: [OverflowsInSecondChunk()])
        defer { Task { await session.close() } }
        var files: [FileResult<Int>] = []
        for try await file in session.run(OverflowsInSecondChunk(), over: [FilePath(big), FilePath(small)]) { files.append(file) }
        #expect(files.map(\.path.description) == [big, small])
        guard files.count == 2 else { return }
        let error = files[0].errors.first.map(SluiceError.init)
        #expect(error?.code == .slotFaulted && error?.fault == .resultOverflow)
        #expect(error?.chunk == 1 && error?.path == FilePath(big) && error?.slot != nil)
        #expect(files[1].errors.isEmpty && files[1].value == 1)
    }

    @Test("verify compares every result word of random chunks with the reference: both examples pass on the CPU")
    func verifyExamples() async throws {
        let session = try await Session(Self.configuration(), operations: [ByteHistogram(), XXH64Blocks()])
        defer { Task { await session.close() } }
        for report in [
            try await session.verify(operation: ByteHistogram(), files: 10, seed: 3),
            try await session.verify(operation: XXH64Blocks(), files: 10, seed: 4),
        ] {
            #expect(report.passed, "\(report.operation): \(report.mismatches.prefix(3)) \(report.errors)")
            #expect(report.chunks >= 10 && report.words >= report.chunks * 2 && report.backend == "cpu", "\(report.chunks) chunks")
        }
    }

    /// A reference that differs between calls: what verify must catch.
    struct Unsteady: SluiceOperation {
        let name = "unsteady"
        let cudaFunction = "unsteady"
        let cudaSource = ""
        let resultWords = 1
        var initialResult: Int { 0 }
        func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {
            try results.write(UInt32.random(in: 1...UInt32.max), at: 0)
        }
        func combine(_ result: inout Int, with chunk: OperationChunkResult) {}
    }

    @Test("verify reports words that differ, naming the file, chunk and word")
    func verifyFindsDifferences() async throws {
        let session = try await Session(Self.configuration(), operations: [Unsteady()])
        defer { Task { await session.close() } }
        let report = try await session.verify(operation: Unsteady(), files: 6, seed: 9)
        #expect(!report.passed && report.mismatchCount == report.chunks && report.chunks > 0)
        #expect(report.mismatches.first?.description.contains("word 0") == true)
    }

    /// An operation that does nothing, with the name and overlap given.
    struct Renamed: SluiceOperation {
        var name: String
        var overlapBytes: Int = 0
        let cudaFunction = "renamed"
        let cudaSource = ""
        let resultWords = 1
        var initialResult: Int { 0 }
        func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {}
        func combine(_ result: inout Int, with chunk: OperationChunkResult) {}
    }

    @Test("an operation not installed, a bad name and bad overlap are refused with codes")
    func refusals() async throws {
        let session = try await Session(Self.configuration(), operations: [ByteHistogram()])
        defer { Task { await session.close() } }
        do {
            for try await _ in session.run(XXH64Blocks(), over: [FilePath("/")]) {}
            Issue.record("ran an operation that was not installed")
        } catch {
            #expect(error.code == .invalidRequest)
        }
        for op in [Renamed(name: "has space", overlapBytes: 0), Renamed(name: "fine", overlapBytes: 100),
                   Renamed(name: "fine", overlapBytes: Self.chunk)] {
            do {
                _ = try await Session(Self.configuration(), operations: [op])
                Issue.record("installed \(op.name) with overlap \(op.overlapBytes)")
            } catch {
                #expect(error.code == .invalidConfiguration)
            }
        }
    }

    @Test("names starting with sluice and the compiler's own file names are refused, naming the operation")
    func reservedNames() throws {
        // The files NVRTC's messages name besides the operations' own.
        let own = [UserOperationSource.dispatchName, Megakernel.sourceName, UserOperationSource.headerName, "measure.cu"]
        let names = own.map { String($0.prefix { $0 != "." }) } + ["sluice", "Sluice-mine", "SLUICE_x", "sluicebox"]
        for name in names {
            do throws(PipelineError) {
                _ = try Session.operationSet([Renamed(name: name)])
                Issue.record("installed an operation named \(name)")
            } catch {
                #expect(SluiceError(error).code == .invalidConfiguration)
                #expect(error.message.contains("\"\(name)\" is reserved"), "\(error.message)")
            }
        }
        // Only those: a name that merely contains them is the user's.
        let allowed = try Session.operationSet([Renamed(name: "my-megakernel"), Renamed(name: "not-sluice")])
        #expect(allowed.operations.map(\.name) == ["my-megakernel", "not-sluice"])
    }

    /// Reads one byte past its chunk, through the checked reader, in a file's second chunk only.
    struct ReadsPastItsChunk: SluiceOperation {
        let name = "reads-past"
        let cudaFunction = "reads_past"
        let cudaSource = "#include \"sluice_operation.h\"\n__device__ void reads_past(const SluiceOpContext& c) {\n"
            + "    const unsigned at = c.fileOffset == 65536ull ? c.length : 0u;\n"
            + "    const unsigned byte = sluice_op_load_u8(c, at);\n"
            + "    if (threadIdx.x == 0u) { sluice_op_write(c, 0u, byte + 1u); }\n}\n"
        let resultWords = 1
        var initialResult: Int { 0 }

        func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {
            let at = chunk.fileOffset == UInt64(UserOperationTests.chunk) ? chunk.bytes.count : 0
            try results.write(UInt32(try chunk.byte(at: at)) + 1, at: 0)
        }

        func combine(_ result: inout Int, with chunk: OperationChunkResult) { result += Int(chunk.words[0]) }
    }

    @Test("a checked read past the chunk faults its slot with badArguments; the run names the file and chunk")
    func readPastTheChunkFaults() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let big = dir.write("a-big", [UInt8](repeating: 7, count: 3 * Self.chunk))
        let small = dir.write("b-small", [UInt8](repeating: 9, count: 100))
        let session = try await Session(Self.configuration(), operations: [ReadsPastItsChunk()])
        defer { Task { await session.close() } }
        var files: [FileResult<Int>] = []
        for try await file in session.run(ReadsPastItsChunk(), over: [FilePath(big), FilePath(small)]) { files.append(file) }
        #expect(files.map(\.path.description) == [big, small])
        guard files.count == 2 else { return }
        let error = files[0].errors.first.map(SluiceError.init)
        #expect(error?.code == .slotFaulted && error?.fault == .badArguments, "\(files[0].errors)")
        #expect(error?.chunk == 1 && error?.path == FilePath(big))
        #expect(files[1].errors.isEmpty && files[1].value == 10)
    }

    @Test("verify with one file compares its two chunks (the first file is not the empty one); zero files are refused")
    func verifyOneFile() async throws {
        let session = try await Session(Self.configuration(), operations: [ByteHistogram()])
        defer { Task { await session.close() } }
        let report = try await session.verify(operation: ByteHistogram(), files: 1, seed: 5)
        #expect(report.passed && report.chunks == 2 && report.words == 2 * 256, "\(report.mismatches.prefix(3)) \(report.errors)")
        #expect(report.bytes == UInt64(Self.chunk + 1) && report.backend == "cpu")
        do {
            _ = try await session.verify(operation: ByteHistogram(), files: 0)
            Issue.record("verified over no file")
        } catch {
            #expect(error.code == .invalidRequest)
        }
    }

    @Test("NVRTC's log is read by each message's severity, not by the word error in its text")
    func logSeverities() throws {
        let log = """
            first.cu(3): warning #177-D: variable "error_count" was declared but never referenced
            second.cu(7): error: identifier "x" is undefined
            sluice_user_dispatch.cu(12): catastrophic error: cannot open source file "missing.h"
            second.cu(2): remark: no errors here
            first.cu(9): error #20: identifier "y" is undefined
            1 error detected in the compilation of "megakernel.cu".
            """
        let places = log.split(separator: "\n").compactMap(UserOperationSource.place(in:))
        #expect(places.map(\.file) == ["first.cu", "second.cu", "sluice_user_dispatch.cu", "second.cu", "first.cu"])
        #expect(places.map(\.line) == [3, 7, 12, 2, 9])
        #expect(places.map(\.isError) == [false, true, true, false, true])
        // The first error in an operation's own file names it, not the warning above it.
        let set = try Session.operationSet([Renamed(name: "first"), Renamed(name: "second")])
        let diagnosed = SluiceError(UserOperationSource.diagnose(log: log, operations: set, dispatchLines: [:]))
        #expect(diagnosed.code == .operationDidNotCompile && diagnosed.operation == "second" && diagnosed.line == 7)
        // A log that names no operation's file: still the operations' compile failure, with every name.
        let other = SluiceError(UserOperationSource.diagnose(
            log: "sluice_user_dispatch.cu(40): error: expected a \";\"", operations: set, dispatchLines: [12: "first"]))
        #expect(other.code == .operationDidNotCompile && other.operation == "first, second" && other.line == nil)
        #expect(UserOperationSource.isCompileFailure(other.underlying!))
    }

    @Test("a request stopped after its first file leaves the session serving the next")
    func cancellation() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let paths = (0..<40).map { dir.write("f\($0)", [UInt8](repeating: UInt8($0), count: 3 * Self.chunk)) }
        let session = try await Session(Self.configuration(), operations: [ByteHistogram()])
        defer { Task { await session.close() } }
        for try await first in session.run(ByteHistogram(), over: paths.map { FilePath($0) }) {
            #expect(first.value[0] == UInt64(3 * Self.chunk))
            break
        }
        var after = 0
        for try await file in session.run(ByteHistogram(), over: [FilePath(paths[5])]) {
            #expect(file.value[5] == UInt64(3 * Self.chunk))
            after += 1
        }
        #expect(after == 1)
    }

    // ---- CUDA composition, through NVRTC where it can be loaded ----------

    /// Loads libnvrtc.so.13 from the CI virtual environment (.build-ci-venv,
    /// as scripts/check-kernel.py installs it) so that NVRTC's own dlopen
    /// finds it by name; true when NVRTC is usable.
    static func nvrtcAvailable() -> Bool {
        if case .success = NVRTC.shared { return true }
        return false
    }

    static let nvrtcLoaded: Bool = {
        let venv = URLPath.root + "/.build-ci-venv/lib"
        for python in (try? directoryEntries(venv)) ?? [] where python.hasPrefix("python3") {
            let lib = "\(venv)/\(python)/site-packages/nvidia/cu13/lib"
            for name in (try? directoryEntries(lib)) ?? [] where name.hasPrefix("libnvrtc-builtins.so.") && !name.contains(".alt.") {
                _ = dlopen("\(lib)/\(name)", RTLD_NOW | RTLD_GLOBAL)
            }
            _ = dlopen("\(lib)/libnvrtc.so.13", RTLD_NOW | RTLD_GLOBAL)
        }
        return nvrtcAvailable()
    }()

    @Test(
        "the megakernel composed with both examples compiles clean under NVRTC (sm_90)",
        .enabled(if: UserOperationTests.nvrtcLoaded, "NVRTC 13 (.build-ci-venv, as CI installs it) is needed"))
    func examplesCompile() throws {
        let set = try Session.operationSet([ByteHistogram(), XXH64Blocks()])
        let log = try UserOperationSource.check(set)
        #expect(log.isEmpty, "NVRTC printed: \(log)")
    }

    /// An operation whose source has an error on `line`.
    struct Broken: SluiceOperation {
        var cudaSource: String
        var cudaFunction = "broken"
        let name = "broken-op"
        let resultWords = 1
        var initialResult: Int { 0 }
        func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {}
        func combine(_ result: inout Int, with chunk: OperationChunkResult) {}
    }

    @Test(
        "a CUDA source that does not compile reports the operation and its own line number",
        .enabled(if: UserOperationTests.nvrtcLoaded, "NVRTC 13 (.build-ci-venv, as CI installs it) is needed"))
    func compileErrorNamesTheLine() throws {
        let source = """
            #include "sluice_operation.h"

            __device__ void broken(const SluiceOpContext& c) {
                unsigned total = 0u;
                total += c.undefinedField;
                sluice_op_write(c, 0u, total);
            }
            """
        let set = try Session.operationSet([ByteHistogram(), Broken(cudaSource: source)])
        do throws(PipelineError) {
            _ = try UserOperationSource.check(set)
            Issue.record("the broken source compiled")
        } catch {
            let e = SluiceError(error)
            #expect(e.code == .operationDidNotCompile && e.operation == "broken-op" && e.line == 5, "\(error)")
            #expect(e.message.contains("broken-op.cu(5)"))
        }
        // A function name the source does not define: the operation, no line of its own.
        let fixed = source.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.contains("undefinedField") ? "    total += 1u;" : String($0) }.joined(separator: "\n")
        let misnamed = try Session.operationSet([Broken(cudaSource: fixed, cudaFunction: "not_defined")])
        do throws(PipelineError) {
            _ = try UserOperationSource.check(misnamed)
            Issue.record("the misnamed function compiled")
        } catch {
            let e = SluiceError(error)
            #expect(e.code == .operationDidNotCompile && e.operation == "broken-op" && e.line == nil, "\(error)")
        }
    }

    /// An operation named `name` whose source defines the function `name`.
    struct Sourced: SluiceOperation {
        var name: String
        var cudaSource: String
        var cudaFunction: String { name }
        let resultWords = 1
        var initialResult: Int { 0 }
        func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {}
        func combine(_ result: inout Int, with chunk: OperationChunkResult) {}
    }

    /// A source whose function `name` calls a file-local helper `mix`, as another operation's may.
    static func withHelper(_ name: String, _ tail: String = "") -> String {
        """
        #include "sluice_operation.h"
        #define MIX_PRIME 0x9E3779B1u
        static __device__ unsigned mix(unsigned x) { return x * MIX_PRIME; }
        __device__ void \(name)(const SluiceOpContext& c) {
            if (threadIdx.x == 0u) { sluice_op_write(c, 0u, mix(sluice_op_load_u8(c, 0u))); }
        }
        #undef MIX_PRIME
        \(tail)
        """
    }

    @Test(
        "two operations with helpers of the same name compile together, and an operation's macros do not reach Sluice's code",
        .enabled(if: UserOperationTests.nvrtcLoaded, "NVRTC 13 (.build-ci-venv, as CI installs it) is needed"))
    func operationsAreSeparate() throws {
        // Macros named like the megakernel's own variables, left defined at
        // the end of the last source: once they came before ~1,100 of its lines.
        let macros = """
            #define length 0
            #define chunk 1
            #define fault 2
            #define opcode 3
            #define results 4
            #define slot 5
            using namespace sluice_user_0;
            """
        let set = try Session.operationSet([
            ByteHistogram(), Sourced(name: "first", cudaSource: Self.withHelper("first")),
            Sourced(name: "second", cudaSource: Self.withHelper("second", macros)),
        ])
        let log = try UserOperationSource.check(set)
        #expect(log.isEmpty, "NVRTC printed: \(log)")
    }

    @Test(
        "an error in the second operation names its file and line; a warning whose text says error is not the error",
        .enabled(if: UserOperationTests.nvrtcLoaded, "NVRTC 13 (.build-ci-venv, as CI installs it) is needed"))
    func secondOperationsError() throws {
        // NVRTC reports the helper's warning (line 3) before the error (line 8).
        let source = """
            #include "sluice_operation.h"
            static __device__ unsigned helper(unsigned x) {
                unsigned error_count = 0u;
                return x;
            }
            __device__ void second(const SluiceOpContext& c) {
                sluice_op_write(c, 0u, helper(1u));
                const unsigned total = c.notAField;
                sluice_op_write(c, 0u, total);
            }
            """
        let set = try Session.operationSet([
            Sourced(name: "first", cudaSource: Self.withHelper("first")), Sourced(name: "second", cudaSource: source),
        ])
        do throws(PipelineError) {
            _ = try UserOperationSource.check(set)
            Issue.record("the broken source compiled")
        } catch {
            let e = SluiceError(error)
            #expect(e.code == .operationDidNotCompile && e.operation == "second" && e.line == 8, "\(error)")
            #expect(e.message.contains("second.cu(8): error"), "\(e.message)")
            #expect(e.message.contains("second.cu(3): warning"), "\(e.message)")
        }
    }

    @Test(
        "a failure outside every operation's own lines is still the operations' compile failure (no quiet CPU fallback)",
        .enabled(if: UserOperationTests.nvrtcLoaded, "NVRTC 13 (.build-ci-venv, as CI installs it) is needed"))
    func composedFailure() throws {
        // Breaks the generated dispatch after it, not the operation's own lines.
        let saboteur = Self.withHelper("saboteur", "#define __syncthreads() undefined_barrier()")
        let set = try Session.operationSet([ByteHistogram(), Sourced(name: "saboteur", cudaSource: saboteur)])
        do throws(PipelineError) {
            _ = try UserOperationSource.check(set)
            Issue.record("the sabotaged program compiled")
        } catch {
            let e = SluiceError(error)
            #expect(e.code == .operationDidNotCompile && e.line == nil && e.operation?.contains("saboteur") == true, "\(error)")
            #expect(UserOperationSource.isCompileFailure(error))
        }
    }
}

/// Paths of the repository, for the test's scripts and the CI venv.
enum URLPath {
    /// The repository root (three levels above this file).
    static let root: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()
}

/// The names in directory `path`.
func directoryEntries(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
