import SluiceCore
import SluiceWire
import Testing

@Suite("SluiceWire: limits at their boundary and one past it")
struct WireLimitsTests {
    static let small = WireLimits(
        maxFrameBytes: 100, maxLiterals: 3, maxLiteralBytes: 10, maxFilesPerRequest: 5, maxDescriptorsPerMessage: 4,
        maxPathBytes: 8, maxTextBytes: 6)

    /// A message exactly at a limit and one just past it, per limit.
    static func cases() -> [(limit: WireLimit, atLimit: WireMessage, past: WireMessage, value: Int, maximum: Int)] {
        func scan(_ literals: [[UInt8]], files: UInt32 = 1) -> WireMessage {
            .request(WireRequest(id: 1, fileCount: files, operation: .scan(ScanParameters(literals: literals))))
        }
        func batch(files: Int, descriptors: Int, path: [UInt8] = [0x61]) -> WireMessage {
            .files(FileBatch(
                request: 1, descriptorCount: UInt32(descriptors),
                files: (0..<files).map { _ in WireFile(path: RawPath(bytes: path), descriptor: 0) }))
        }
        func hello(_ n: Int) -> WireMessage { .hello(Hello(client: String(repeating: "x", count: n))) }
        let piece = { (n: Int) in
            WireMessage.matches(MatchPiece(
                request: 1, file: 0, isComplete: true, count: UInt64(n),
                matches: (0..<n).map { WireMatch(offset: UInt64($0), pattern: 0) }))
        }
        let perPiece = small.maxMatchesPerPiece
        return [
            (.literals, scan([[1], [2], [3]]), scan([[1], [2], [3], [4]]), 4, 3),
            (.literalBytes, scan([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]]), scan([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]]), 11, 10),
            (.filesPerRequest, scan([[1]], files: 5), scan([[1]], files: 6), 6, 5),
            (.filesPerRequest, .request(WireRequest(id: 1, fileCount: 5, operation: .count)),
             .request(WireRequest(id: 1, fileCount: 6, operation: .hash)), 6, 5),
            (.descriptorsPerMessage, batch(files: 1, descriptors: 4), batch(files: 1, descriptors: 5), 5, 4),
            (.descriptorsPerMessage, batch(files: 4, descriptors: 1), batch(files: 5, descriptors: 1), 5, 4),
            (.pathBytes, batch(files: 1, descriptors: 1, path: Array(repeating: 0x61, count: 8)),
             batch(files: 1, descriptors: 1, path: Array(repeating: 0x61, count: 9)), 9, 8),
            (.pathBytes, .fileError(FileErrorReply(request: 1, file: 0, code: .io, path: "12345678", message: "")),
             .fileError(FileErrorReply(request: 1, file: 0, code: .io, path: "123456789", message: "")), 9, 8),
            (.textBytes, hello(6), hello(7), 7, 6),
            // é is two bytes: the limit counts UTF-8 bytes, not characters.
            (.textBytes, .welcome(Welcome(server: "ééé")), .welcome(Welcome(server: "éééa")), 7, 6),
            (.textBytes, .requestFailed(RequestFailure(request: 1, code: .io, message: "m", hint: "123456")),
             .requestFailed(RequestFailure(request: 1, code: .io, message: "m", hint: "1234567")), 7, 6),
            (.frameBytes, piece(perPiece), piece(perPiece + 1), 0, 0),
        ]
    }

    @Test("at each limit the message encodes and decodes; one past it the encoder and the decoder refuse it with the same error")
    func boundaries() throws {
        let loose = WireLimits(
            maxFrameBytes: 1 << 20, maxLiterals: 100, maxLiteralBytes: 100, maxFilesPerRequest: 100,
            maxDescriptorsPerMessage: 100, maxPathBytes: 100, maxTextBytes: 100)
        for c in Self.cases() {
            let bytes = try WireCodec.encode(c.atLimit, limits: Self.small)
            #expect(try WireCodec.decode(bytes, limits: Self.small) == .message(c.atLimit, byteCount: bytes.count), "\(c.limit)")
            let pastBytes = try WireCodec.encode(c.past, limits: loose)
            let expected: WireError = c.limit == .frameBytes
                ? .oversizedPayload(length: pastBytes.count - WireFrame.headerBytes, maximum: Self.small.maxPayloadBytes)
                : .limitExceeded(c.limit, value: c.value, maximum: c.maximum)
            #expect(throws: expected, "\(c.limit) encoding") { try WireCodec.encode(c.past, limits: Self.small) }
            #expect(throws: expected, "\(c.limit) decoding") { try WireCodec.decode(pastBytes, limits: Self.small) }
        }
    }

    @Test("a message over several limits gets the same error from the encoder and the decoder (the frame size first, then field order)")
    func severalLimits() throws {
        let loose = WireLimits(maxFrameBytes: 1 << 20, maxPathBytes: 100, maxTextBytes: 100)
        let cases: [WireMessage] = [
            // Over the frame and the text limit.
            .hello(Hello(client: String(repeating: "x", count: 90))),
            // A NUL in file 0, file 1 too long.
            .files(FileBatch(request: 1, paths: [RawPath(bytes: [0x61, 0]), RawPath(bytes: Array(repeating: 0x61, count: 20))])),
            // Too many literals and too many literal bytes.
            .request(WireRequest(id: 1, fileCount: 1, operation: .scan(ScanParameters(literals: Array(repeating: [1, 2, 3, 4, 5], count: 4))))),
            // A path and a message over their limits.
            .fileError(FileErrorReply(request: 1, file: 0, code: .io, path: "123456789", message: "1234567")),
        ]
        for message in cases {
            var encoderError: WireError?
            do { _ = try WireCodec.encode(message, limits: Self.small) } catch { encoderError = error }
            var decoderError: WireError?
            do { _ = try WireCodec.decode(try WireCodec.encode(message, limits: loose), limits: Self.small) } catch { decoderError = error }
            #expect(encoderError != nil && encoderError == decoderError, "\(message.type): \(String(describing: encoderError)) vs \(String(describing: decoderError))")
        }
    }

    @Test("the default limits: a scan with the most literals and literal bytes fits a frame; the descriptor limit is SCM_MAX_FD")
    func defaults() throws {
        let limits = WireLimits()
        #expect(limits.maxDescriptorsPerMessage == 253)
        #expect(limits.maxFrameBytes == 16 << 20)
        #expect(limits.maxMatchesPerPiece == 838_858)  // (16 MiB - 12 - 32) / 20, as docs/serve-protocol.md says
        // 1,000,000 literals with 8 MiB of bytes between them: the largest request the literal limits allow.
        let each = limits.maxLiteralBytes / limits.maxLiterals
        var literals = [[UInt8]](repeating: Array(repeating: 0x61, count: each), count: limits.maxLiterals)
        literals[0] += Array(repeating: 0x62, count: limits.maxLiteralBytes - each * limits.maxLiterals)
        let scan = WireMessage.request(WireRequest(id: 1, fileCount: 1, operation: .scan(ScanParameters(literals: literals))))
        let bytes = try WireCodec.encode(scan, limits: limits)
        #expect(bytes.count <= limits.maxFrameBytes)
        #expect(try WireCodec.decode(bytes, limits: limits) == .message(scan, byteCount: bytes.count))
    }

    @Test("file batches: at most the descriptor limit each, within the frame, in order, every file once")
    func fileBatches() throws {
        var rng = SplitMix64(seed: 5)
        let limits = WireLimits(maxFrameBytes: 2000, maxDescriptorsPerMessage: 7, maxPathBytes: 300)
        for _ in 0..<200 {
            let lengths = (0..<rng.below(60)).map { _ in 1 + rng.below(rng.below(3) == 0 ? 300 : 20) }
            let batches = limits.fileBatches(pathLengths: lengths)
            #expect(batches.flatMap { Array($0) } == Array(lengths.indices))
            for b in batches {
                #expect(b.count >= 1 && b.count <= 7)
                let message = WireMessage.files(FileBatch(
                    request: 1, paths: b.map { RawPath(bytes: Array(repeating: 0x61, count: lengths[$0])) }))
                _ = try WireCodec.encode(message, limits: limits)
                // Greedy: the next file would not have fitted.
                if b.upperBound < lengths.count, b.count < 7 {
                    let bigger = WireMessage.files(FileBatch(
                        request: 1, paths: (b.lowerBound...b.upperBound).map { RawPath(bytes: Array(repeating: 0x61, count: lengths[$0])) }))
                    #expect(throws: WireError.self) { try WireCodec.encode(bigger, limits: limits) }
                }
            }
        }
        #expect(WireLimits().fileBatches(pathLengths: Array(repeating: 10, count: 600)).map(\.count) == [253, 253, 94])
        #expect(WireLimits().fileBatches(pathLengths: []) == [])
    }
}
