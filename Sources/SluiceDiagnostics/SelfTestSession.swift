#if canImport(Glibc)
import Glibc
#endif
import Sluice
import Synchronization

/// The self-test's checks of the library's `Session` on the backend under
/// test: two scans made at the same time give what two sequential scans on a
/// CPU session give, line for line; a request abandoned after its first file
/// leaves the session serving the next one correctly.
enum SessionSelfTest {
    static func run(backend: BackendChoice, seed: UInt64, log: @escaping (String) -> Void) -> (passed: Int, failed: Int) {
        let outcome = waitBlocking { await check(backend: backend, seed: seed) }
        switch outcome {
        case .success(let detail):
            log("ok    session: \(detail)")
            return (1, 0)
        case .failure(let failure):
            log("FAIL  session: \(failure.message) (seed \(seed))")
            return (0, 1)
        }
    }

    private static func check(backend: BackendChoice, seed: UInt64) async -> Result<String, CheckFailure> {
        let tree: SessionTestTree
        do { tree = try SessionTestTree(seed: seed) } catch {
            return .failure(CheckFailure(message: "could not write the test files: \(error)"))
        }
        defer { tree.remove() }
        do {
            let reference = try await Session(configuration(.cpu))
            let expected = [try await tree.lines(reference, tree.literalsA), try await tree.lines(reference, tree.literalsB)]
            await reference.close()
            let subject = try await Session(configuration(backend))
            async let first = tree.lines(subject, tree.literalsA)
            async let second = tree.lines(subject, tree.literalsB)
            let concurrent = [try await first, try await second]
            for (i, (got, want)) in zip(concurrent, expected).enumerated() where got != want {
                return .failure(CheckFailure(message: "concurrent scan \(i) differs from the CPU session's: \(firstDifference(got, want))"))
            }
            for try await piece in subject.scan([FilePath(tree.root)], literals: tree.literalsA) where piece.isComplete { break }
            let again = try await tree.lines(subject, tree.literalsA)
            await subject.close()
            guard again == expected[0] else {
                return .failure(CheckFailure(message: "after an abandoned request: \(firstDifference(again, expected[0]))"))
            }
            return .success("two concurrent scans (\(expected[0].count) and \(expected[1].count) matches over \(tree.files) files) equal the CPU session's; an abandoned request left it serving (\(subject.reasons.first { $0.contains("backend") } ?? ""))")
        } catch let error as SluiceError {
            return .failure(CheckFailure(message: error.message))
        } catch {
            return .failure(CheckFailure(message: "\(error)"))
        }
    }

    private static func configuration(_ backend: BackendChoice) -> Session.Configuration {
        var c = Session.Configuration()
        c.backend = backend
        c.devices = .list([0])
        c.chunkBytes = 64 << 10
        return c
    }

    private static func firstDifference(_ got: [String], _ want: [String]) -> String {
        guard let i = zip(got, want).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset else {
            return "\(got.count) lines, expected \(want.count)"
        }
        return "line \(i): \(got[i]) (expected \(want[i]))"
    }
}

/// Text files under a temporary directory, some spanning several 64 KiB
/// chunks, and two literal sets drawn from their words.
private struct SessionTestTree {
    let scratch: ScratchFiles
    let paths: [String]
    var root: String { scratch.path }
    var files: Int { paths.count }
    let literalsA: [[UInt8]]
    let literalsB: [[UInt8]]

    init(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed ^ 0x5E55_1011)
        scratch = try ScratchFiles(under: "/var/tmp")
        let words = ["river", "sluice", "gate", "flow", "stone", "mill", "weir", "reed", "\n"].map { Array($0.utf8) }
        var paths: [String] = []
        for i in 0..<24 {
            var bytes: [UInt8] = []
            let target = Int(rng.next() % 300_000)
            while bytes.count < target { bytes += words[Int(rng.next() % UInt64(words.count))] + [32] }
            paths.append(try scratch.write("f\(i)", bytes))
        }
        self.paths = paths
        literalsA = [Array("sluice".utf8), Array("gate flow".utf8), Array("e\nr".utf8)]
        literalsB = [Array("mill".utf8), Array("reed".utf8), Array("w".utf8), Array("stone mill weir".utf8)]
    }

    /// `PATH:OFFSET:PATTERN` for every match, in the order the session gives them.
    func lines(_ session: Session, _ literals: [[UInt8]]) async throws -> [String] {
        var out: [String] = []
        for try await piece in session.scan([FilePath(root)], literals: literals) {
            if let error = piece.errors.first { throw SluiceError(error) }
            out += piece.matches.map { "\(piece.path):\($0.offset):\($0.pattern)" }
        }
        return out
    }

    func remove() {
        for path in paths { unlink(path) }
        scratch.remove()
    }
}
