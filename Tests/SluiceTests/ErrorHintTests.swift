import SluiceCore
import Testing

@testable import SluiceCLI

/// The CLI's hints: what to do about each error, in the command's terms.
@Suite struct ErrorHintTests {
    @Test func everyCaseHasAHint() {
        let samples: [PipelineError] = [
            .invalidConfiguration("x"), .malformed(what: "w", detail: "d"),
            .illegalTransition(slot: 1, from: .empty, to: .done, by: .host),
            .invalidRequest(chunk: 1, slot: 2, reason: "r"),
            .io(IOFailure(operation: "read", path: "/p", errno: 5, reason: "x")),
            .slotFaulted(slot: 1, chunk: 2, path: "/p", code: .badArguments),
            .backendUnavailable(backend: "cuda", reason: "r"), .gpu(call: "cuInit", code: 100, message: "m"),
            .stuck(slots: [1], seconds: 1, runner: .cpu), .readsStuck(path: "/p", chunks: [1], seconds: 1),
            .fileChanged(path: "/p", detail: "d"), .unaccounted(path: "/p", chunks: [1]),
            .interrupted(finishedChunks: 1, pendingChunks: 2), .contextLost(backend: "cuda", reason: "r"),
            .recoveryFailed(attempts: 2, cause: "c", unfinished: []),
        ]
        for error in samples { #expect(!error.hint.isEmpty, "\(error.message)") }
    }

    @Test func ioHintsFollowTheErrno() {
        let cases: [(String, Int32, String)] = [
            ("open", 2, "path"), ("io_uring setup", 38, "io_uring"),
            ("open", 13, "permissions"), ("open", 1, "permissions"), ("open (direct I/O)", 22, "O_DIRECT"),
            ("open direct", 22, "O_DIRECT"), ("direct read", 22, "O_DIRECT"), ("read", 22, "check the file"), ("read", 5, "check the file"),
            ("read", 0, "check the file"), ("cuFileRead", 5, "sluice doctor"),
        ]
        for (operation, errno, fragment) in cases {
            let hint = PipelineError.io(IOFailure(operation: operation, path: "/z", errno: errno, reason: "x")).hint
            #expect(hint.contains(fragment), "\(operation), errno \(errno): \(hint)")
        }
        // Memory refused is known by the call's kind, not its name.
        let refused = IOFailure(operation: "mmap chunk buffers", path: "", errno: 12, reason: "x", allocatesMemory: true)
        #expect(PipelineError.io(refused).hint.contains("--slots"))
        let read = IOFailure(operation: "mmap-like read", path: "/z", errno: 12, reason: "x")
        #expect(!PipelineError.io(read).hint.contains("--slots"))
    }

    @Test func faultAndRunnerHintsNameWhatFailed() {
        #expect(PipelineError.slotFaulted(slot: 0, chunk: 0, path: nil, code: .unsupportedOpcode).hint.contains("backend"))
        #expect(PipelineError.slotFaulted(slot: 0, chunk: 0, path: nil, code: .tenantViolation).hint.contains("tenant"))
        #expect(PipelineError.stuck(slots: [], seconds: 2, runner: .gpu).hint.contains("GPU kernel"))
        #expect(!PipelineError.stuck(slots: [3], seconds: 1, runner: .cpu).hint.contains("GPU"))
        #expect(PipelineError.backendUnavailable(backend: "cuda", reason: "r").hint.contains("--backend cpu"))
    }
}
