import SluiceCore
import Testing

@Suite("PipelineError messages")
struct PipelineErrorTests {
    /// One sample of every case and the fragments its message must contain. The switch is
    /// exhaustive, so a new case does not compile until it is added here.
    static func expectedFragments(_ error: PipelineError) -> [String] {
        switch error {
        case .invalidConfiguration:
            return ["invalid configuration", "slot count 0"]
        case .malformed:
            return ["slot 3", "status word is 77"]
        case .illegalTransition:
            return ["slot 5", "DONE", "PUBLISHED", "host"]
        case .invalidRequest:
            return ["chunk 7", "slot 2", "buffer still in use"]
        case .io:
            return ["/data/logs/a.log", "read", "chunk 3", "offset 4096", "1024 bytes", "Input/output error", "errno 5"]
        case .slotFaulted:
            return ["/data/logs/b.log", "chunk 9", "slot 4", FaultCode.resultOverflow.description]
        case .backendUnavailable:
            return ["cuda", "driver library missing"]
        case .gpu:
            return ["cuModuleLoadData", "218", "CUDA_ERROR_INVALID_PTX"]
        case .stuck:
            return ["slots 1, 6", "2.5", "CPU backend"]
        case .readsStuck:
            return ["/data/logs/e.log", "chunks 4, 5", "1.5"]
        case .fileChanged:
            return ["/data/logs/c.log", "size 10 -> 20"]
        case .unaccounted:
            return ["/data/logs/d.log", "chunks 3, 8"]
        case .interrupted:
            return ["12", "30"]
        case .contextLost:
            return ["lost its context", "cuda", "CUDA_ERROR_ILLEGAL_ADDRESS"]
        case .recoveryFailed:
            return ["2 backend recoveries", "/data/logs/f.log at offset 8192", "slot 3", "context lost"]
        case .insufficientMemory:
            return ["68719476736 bytes (64 GiB)", "16 slots of 4 GiB", "1024 bytes", "3 slots", "chunks of 12 KiB"]
        case .cancelled:
            return ["/data/logs/g.log", "cancelled"]
        case .operationDidNotCompile:
            return ["user operation histogram did not compile", "histogram.cu line 12", "identifier \"x\" is undefined"]
        }
    }

    static let samples: [PipelineError] = [
        .invalidConfiguration("slot count 0 must be between 1 and 1048576"),
        .malformed(what: "slot 3", detail: "status word is 77, which is no protocol state"),
        .illegalTransition(slot: 5, from: .done, to: .published, by: .host),
        .invalidRequest(chunk: 7, slot: 2, reason: "buffer still in use"),
        .io(IOFailure(
            operation: "read", path: "/data/logs/a.log", fileOffset: 4096, length: 1024, chunk: 3, errno: 5,
            reason: "Input/output error")),
        .slotFaulted(slot: 4, chunk: 9, path: "/data/logs/b.log", code: .resultOverflow),
        .backendUnavailable(backend: "cuda", reason: "driver library missing"),
        .gpu(call: "cuModuleLoadData", code: 218, message: "CUDA_ERROR_INVALID_PTX"),
        .stuck(slots: [1, 6], seconds: 2.5, runner: .cpu),
        .readsStuck(path: "/data/logs/e.log", chunks: [4, 5], seconds: 1.5),
        .fileChanged(path: "/data/logs/c.log", detail: "size 10 -> 20"),
        .unaccounted(path: "/data/logs/d.log", chunks: [3, 8]),
        .interrupted(finishedChunks: 12, pendingChunks: 30),
        .contextLost(backend: "cuda", reason: "cuStreamQuery failed with 700 CUDA_ERROR_ILLEGAL_ADDRESS"),
        .recoveryFailed(
            attempts: 2, cause: "context lost",
            unfinished: [UnfinishedChunk(path: "/data/logs/f.log", fileOffset: 8192, length: 4096, slot: 3)]),
        .insufficientMemory(MemoryShortfall(
            limit: .available, neededBytes: 1 << 36, limitBytes: 1024, slots: 16, chunkBytes: 1 << 32, rings: 1,
            fittingSlots: 3, fittingChunkBytes: 12_288, pinned: true)),
        .cancelled(path: "/data/logs/g.log"),
        .operationDidNotCompile(
            operation: "histogram", line: 12, log: "histogram.cu(12): error: identifier \"x\" is undefined"),
    ]

    @Test("every case's message names its context and no command-line flag", arguments: samples)
    func messageNamesItsContext(error: PipelineError) {
        let message = error.message
        for fragment in Self.expectedFragments(error) {
            #expect(message.contains(fragment), "\(message) should contain \(fragment)")
        }
        #expect(error.description == message)
        #expect(!message.contains("--"), "\(message) names a flag")
    }

    @Test("the samples cover every case once")
    func samplesCoverEveryCase() {
        // expectedFragments is exhaustive (a new case stops this file compiling until it is
        // added); make sure no sample is a duplicate case.
        let firstFragments = Set(Self.samples.map { Self.expectedFragments($0)[0] })
        #expect(firstFragments.count == 18)
        #expect(Set(Self.samples).count == 18)
    }

    @Test("illegalTransition names the slot, both states and the actor, for every pair")
    func illegalTransitionMessages() {
        for actor in [SlotStatus.Actor.host, .worker] {
            for from in SlotStatus.allCases {
                for to in SlotStatus.allCases {
                    let m = PipelineError.illegalTransition(slot: 12, from: from, to: to, by: actor).message
                    #expect(m == "slot 12: illegal transition \(from.description) -> \(to.description) by the \(actor.description)")
                }
            }
        }
    }

    @Test("stuck names the runner: a slow CPU backend is not called a hung GPU kernel")
    func stuckNamesItsRunner() {
        let cpu = PipelineError.stuck(slots: [3], seconds: 1, runner: .cpu)
        #expect(cpu.message.contains("CPU backend") && cpu.message.contains("slots 3"))
        #expect(!cpu.description.contains("GPU"))
        let gpu = PipelineError.stuck(slots: [], seconds: 2, runner: .gpu)
        #expect(gpu.message.contains("GPU kernel"))
        #expect(!gpu.description.contains("CPU"))
    }

    @Test("invalidRequest names only the places it has")
    func invalidRequestPlaces() {
        let both = PipelineError.invalidRequest(chunk: 7, slot: 2, reason: "r").message
        #expect(both == "chunk 7, slot 2: request rejected: r")
        let slotOnly = PipelineError.invalidRequest(chunk: nil, slot: 2, reason: "r").message
        #expect(slotOnly == "slot 2: request rejected: r")
        let chunkOnly = PipelineError.invalidRequest(chunk: 7, slot: nil, reason: "r").message
        #expect(chunkOnly == "chunk 7: request rejected: r")
        let neither = PipelineError.invalidRequest(chunk: nil, slot: nil, reason: "r").message
        #expect(neither == "request rejected: r")
    }

    @Test("io: path, chunk and errno appear only when known")
    func ioMessagesAndHints() {
        let noChunk = PipelineError.io(IOFailure(operation: "open", path: "/x", errno: 2, reason: "No such file or directory"))
        #expect(noChunk.message == "/x: open failed: No such file or directory (errno 2)")

        let noPath = PipelineError.io(IOFailure(operation: "io_uring setup", path: "", errno: 38, reason: "Function not implemented"))
        #expect(noPath.message == "io_uring setup failed: Function not implemented (errno 38)")

        let noErrno = PipelineError.io(IOFailure(operation: "read", path: "/y", fileOffset: 8, length: 4, chunk: 0, errno: 0, reason: "short read"))
        #expect(noErrno.message == "/y: read failed (chunk 0, offset 8, 4 bytes): short read")
        #expect(!noErrno.message.contains("errno"))
    }

    @Test("slotFaulted: every fault code gives a message with its description")
    func slotFaultedEveryCode() {
        for code in FaultCode.allCases {
            let withPath = PipelineError.slotFaulted(slot: 1, chunk: 2, path: "/p", code: code)
            #expect(withPath.message == "/p: chunk 2 in slot 1 faulted: \(code.description)")
            let noPath = PipelineError.slotFaulted(slot: 1, chunk: 2, path: nil, code: code)
            #expect(noPath.message == "chunk 2 in slot 1 faulted: \(code.description)")
        }
    }
}
