import Sluice
import SluiceWire
import Testing

@Suite("SluiceWire: handshake, request sequence, error codes")
struct WireHandshakeTests {
    @Test("equal versions are welcomed; a mismatch is refused and both sides name both versions")
    func versions() throws {
        let answer = WireHandshake.answer(Hello(protocolVersion: 1, client: "c"), server: "s", serverVersion: 1)
        #expect(answer == .welcome(Welcome(protocolVersion: 1, server: "s")))
        #expect(try WireHandshake.check(answer, clientVersion: 1) == Welcome(protocolVersion: 1, server: "s"))

        let refused = WireHandshake.answer(Hello(protocolVersion: 3, client: "c"), server: "s", serverVersion: 1)
        guard case .refused(let r) = refused else {
            Issue.record("not refused: \(refused)")
            return
        }
        #expect(r.reason == .versionMismatch && r.serverProtocolVersion == 1)
        #expect(r.message == "protocol version mismatch: the client speaks version 3, the server version 1")
        // Through the wire, as a client of version 3 reads it.
        let bytes = encode(refused)
        guard case .message(let received, _) = try WireCodec.decode(bytes) else { return }
        #expect(throws: WireError.versionMismatch(client: 3, server: 1)) { try WireHandshake.check(received, clientVersion: 3) }
        // A welcome of another version (a server that did not check) is a mismatch too.
        #expect(throws: WireError.versionMismatch(client: 1, server: 2)) {
            try WireHandshake.check(.welcome(Welcome(protocolVersion: 2, server: "s")), clientVersion: 1)
        }
        let uid = Refusal(reason: .uidNotAllowed, message: "uid 1001 is not served")
        #expect(throws: WireError.refused(uid)) { try WireHandshake.check(.refused(uid)) }
        #expect(throws: WireError.unexpectedMessage(.cancel, expected: "welcome or refused")) {
            try WireHandshake.check(.cancel(request: 1))
        }
        #expect(throws: WireError.unexpectedMessage(.cancel, expected: "hello")) { try WireHandshake.expectHello(.cancel(request: 1)) }
        #expect(try WireHandshake.expectHello(.hello(Hello(client: "x"))) == Hello(client: "x"))
    }

    @Test("a request opens, takes batches up to the files it declared, and refuses everything else")
    func assembly() throws {
        var a = WireRequestAssembly(limits: WireLimits(maxFilesPerRequest: 10), maxOpenRequests: 2)
        #expect(try a.open(WireRequest(id: 1, fileCount: 5, operation: .count)) == .init(request: 1, firstFile: 0, isComplete: false))
        #expect(try a.open(WireRequest(id: 2, fileCount: 0, operation: .hash)).isComplete)
        #expect(throws: WireError.requestSequence(request: 3, detail: "2 requests are already open (at most 2)")) {
            try a.open(WireRequest(id: 3, fileCount: 1, operation: .count))
        }
        a.finish(2)
        #expect(throws: WireError.requestSequence(request: 1, detail: "the identifier is already in use")) {
            try a.open(WireRequest(id: 1, fileCount: 1, operation: .count))
        }
        #expect(throws: WireError.limitExceeded(.filesPerRequest, value: 11, maximum: 10)) {
            try a.open(WireRequest(id: 4, fileCount: 11, operation: .count))
        }
        #expect(try a.add(FileBatch(request: 1, paths: ["a", "b"])) == .init(request: 1, firstFile: 0, isComplete: false))
        #expect(throws: WireError.requestSequence(request: 1, detail: "6 files sent but the request declared 5")) {
            try a.add(FileBatch(request: 1, paths: ["c", "d", "e", "f"]))
        }
        #expect(try a.add(FileBatch(request: 1, paths: ["c", "d", "e"])) == .init(request: 1, firstFile: 2, isComplete: true))
        #expect(throws: WireError.requestSequence(request: 9, detail: "files for a request that is not open")) {
            try a.add(FileBatch(request: 9, paths: ["a"]))
        }
        #expect(a.openRequests == 1)
        a.finish(1)
        #expect(a.openRequests == 0)
    }

    @Test("every SluiceError.Code has the wire code of the same name, and back; PipelineError maps to the codes SluiceError gives it")
    func errorCodes() {
        let wire = Dictionary(uniqueKeysWithValues: WireErrorCode.allCases.map { ($0.name, $0) })
        #expect(Set(wire.keys) == Set(SluiceError.Code.allCases.map(\.rawValue)))
        #expect(Set(WireErrorCode.allCases.map(\.rawValue)).count == WireErrorCode.allCases.count)
        let samples: [PipelineError] = [
            .invalidConfiguration("x"), .malformed(what: "a", detail: "b"), .illegalTransition(slot: 0, from: .empty, to: .done, by: .host),
            .invalidRequest(chunk: nil, slot: nil, reason: "r"), .io(IOFailure(operation: "open", path: "p", errno: 2, reason: "r")),
            .slotFaulted(slot: 0, chunk: 0, path: nil, code: .bufferOutOfBounds), .backendUnavailable(backend: "cuda", reason: "r"),
            .gpu(call: "c", code: 1, message: "m"), .stuck(slots: [], seconds: 1, runner: .cpu),
            .readsStuck(path: "p", chunks: [], seconds: 1), .fileChanged(path: "p", detail: "d"), .unaccounted(path: "p", chunks: []),
            .interrupted(finishedChunks: 0, pendingChunks: 0), .contextLost(backend: "b", reason: "r"),
            .recoveryFailed(attempts: 1, cause: "c", unfinished: []),
            .cancelled(path: "p"),
        ]
        for e in samples {
            #expect(WireErrorCode(e).name == SluiceError(e).code.rawValue, "\(e)")
        }
    }
}
