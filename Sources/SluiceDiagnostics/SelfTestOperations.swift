import Sluice
import SluiceExampleOperations

/// The self-test's check of user operations: a session of the backend under
/// test with the two example operations compiled in (on CUDA: composed into
/// the megakernel by NVRTC), each run by `Session.verify(operation:)` over
/// random files, every result word of every chunk compared with the Swift
/// reference (on the CPU backend: its ring path against a direct call).
enum OperationsSelfTest {
    static func run(backend: BackendChoice, seed: UInt64, log: @escaping (String) -> Void) -> (passed: Int, failed: Int) {
        var tally = (passed: 0, failed: 0)
        let outcomes = waitBlocking { await check(backend: backend, seed: seed) }
        for (name, outcome) in outcomes {
            switch outcome {
            case .success(let detail):
                log("ok    operation \(name): \(detail)")
                tally.passed += 1
            case .failure(let failure):
                log("FAIL  operation \(name): \(failure.message) (seed \(seed))")
                tally.failed += 1
            }
        }
        return tally
    }

    private static func check(backend: BackendChoice, seed: UInt64) async -> [(String, Result<String, CheckFailure>)] {
        var c = Session.Configuration()
        c.backend = backend
        c.devices = .list([0])
        c.chunkBytes = 64 << 10
        let session: Session
        do {
            session = try await Session(c, operations: [ByteHistogram(), XXH64Blocks()])
        } catch {
            return [("examples", .failure(CheckFailure(message: "the session with the example operations did not start: \(error.message)")))]
        }
        var results: [(String, Result<String, CheckFailure>)] = []
        let backendLine = session.reasons.first { $0.hasPrefix("device 0: backend ") } ?? ""
        for (name, verify) in [
            ("byte-histogram", { () async throws(SluiceError) -> OperationVerification in
                try await session.verify(operation: ByteHistogram(), files: 14, seed: seed) }),
            ("xxh64-blocks", { () async throws(SluiceError) -> OperationVerification in
                try await session.verify(operation: XXH64Blocks(), files: 14, seed: seed &+ 1) }),
        ] {
            do {
                let r = try await verify()
                if r.passed {
                    results.append((name, .success(
                        "\(r.chunks) chunks of \(r.bytes) random bytes, \(r.words) result words equal the Swift reference (\(backendLine))")))
                } else {
                    let first = r.mismatches.first.map { "\($0)" } ?? r.errors.first.map(\.message) ?? "no chunk ran"
                    results.append((name, .failure(CheckFailure(
                        message: "\(r.mismatchCount) words differ, \(r.errors.count) files failed; first: \(first)"))))
                }
            } catch {
                results.append((name, .failure(CheckFailure(message: error.message))))
            }
        }
        await session.close()
        return results
    }
}
