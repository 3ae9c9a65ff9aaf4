// Fuzz target: the `sluice serve` message decoder (SluiceWire).
//
// Input layout, by mode = byte 0 & 3:
//   0  a byte stream: [1] piece size - 1 for the incremental decoder, then the
//      stream, decoded frame after frame with WireCodec.decode and, fed in
//      pieces of that size, with WireFrameDecoder.
//   1  one frame with a valid header: [1] type (index into the known types,
//      or, with bit 7, a raw low byte), then the payload; the header's
//      length is the payload's.
//   2  a message built from the bytes (every kind, any field values), encoded
//      with loose limits and decoded with the input's limits.
//   3  limits from the input: [7] one byte per limit (frame bytes x 16,
//      literals, literal bytes, files, descriptors, path bytes, text bytes),
//      then as mode 1 under those limits.
//
// Properties: nothing traps, loops or allocates beyond what the bytes can
// fill; a decoded message's payload is within the frame limit; it re-encodes
// (under the same limits) to exactly the bytes it was decoded from; the
// incremental decoder finds the same messages, or the same error, as
// decoding frame by frame; a message the encoder accepts decodes to itself,
// and one it refuses is refused by the decoder with the same error.
#if canImport(Glibc)
import Glibc
#endif
import FuzzSupport
import SluiceCore
import SluiceWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var r = ByteReader(Array(UnsafeBufferPointer(start: data, count: size)))
    switch r.u8() & 3 {
    case 0:
        let piece = 1 + Int(r.u8())
        stream(r.rest(), piece: piece)
    case 1:
        checkFrame(frame(&r), limits: WireLimits())
    case 2:
        structured(&r)
    default:
        let limits = smallLimits(&r)
        checkFrame(frame(&r), limits: limits)
    }
    return 0
}

/// Limits of at most a few hundred, so every limit is reached.
func smallLimits(_ r: inout ByteReader) -> WireLimits {
    WireLimits(
        maxFrameBytes: Int(r.u8()) * 16, maxLiterals: Int(r.u8()), maxLiteralBytes: Int(r.u8()),
        maxFilesPerRequest: Int(r.u8()), maxDescriptorsPerMessage: Int(r.u8()), maxPathBytes: Int(r.u8()),
        maxTextBytes: Int(r.u8()))
}

/// A frame with a valid magic and length around the rest of the input.
func frame(_ r: inout ByteReader) -> [UInt8] {
    let t = r.u8()
    let type = t & 0x80 != 0
        ? UInt16(t & 0x7F) | (t & 0x40 != 0 ? 0x0100 : 0)
        : WireMessageType.allCases[Int(t) % WireMessageType.allCases.count].rawValue
    let payload = r.rest()
    var w = ByteWriter()
    w.u32(WireFrame.magic)
    w.u16(type)
    w.u16(0)
    w.u32(UInt32(payload.count))
    w.append(payload)
    return w.bytes
}

/// Decodes one frame and checks what it gives.
func checkFrame(_ bytes: [UInt8], limits: WireLimits) {
    do {
        switch try WireCodec.decode(bytes, limits: limits) {
        case .needMoreBytes(let n):
            require(n > 0, "needMoreBytes(\(n))")
            Stats.count("need more")
        case .message(let m, let n):
            checkDecoded(m, Array(bytes[..<n]), limits: limits)
        }
    } catch {
        Stats.count("refused: \(kind(error))")
    }
}

/// A decoded message: within the frame limit, and encoding it gives its bytes back.
func checkDecoded(_ m: WireMessage, _ bytes: [UInt8], limits: WireLimits) {
    Stats.count("decoded \(m.type)")
    require(bytes.count - WireFrame.headerBytes <= limits.maxPayloadBytes,
            "payload \(bytes.count - WireFrame.headerBytes) > limit \(limits.maxPayloadBytes)")
    do {
        let again = try WireCodec.encode(m, limits: limits)
        require(again == bytes, "re-encoding \(m.type) changed byte \(zip(again, bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1) (lengths \(again.count), \(bytes.count))")
    } catch {
        fail("the encoder refused a decoded \(m.type): \(error)")
    }
}

/// Frame after frame, then the same stream through the incremental decoder in pieces.
func stream(_ bytes: [UInt8], piece: Int) {
    var expected: [WireMessage] = []
    var expectedError: WireError?
    var offset = 0
    while offset < bytes.count {
        do {
            guard case .message(let m, let n) = try WireCodec.decode(Array(bytes[offset...])) else { break }
            checkDecoded(m, Array(bytes[offset..<offset + n]), limits: WireLimits())
            expected.append(m)
            offset += n
        } catch {
            expectedError = error
            break
        }
    }
    var decoder = WireFrameDecoder()
    var got: [WireMessage] = []
    var gotError: WireError?
    var i = 0
    feeding: while i < bytes.count {
        decoder.append(bytes[i..<min(bytes.count, i + piece)])
        i += piece
        do {
            while let m = try decoder.next() { got.append(m) }
        } catch {
            gotError = error
            break feeding
        }
    }
    require(got == expected, "incremental decoding found \(got.count) messages, whole decoding \(expected.count)")
    require(gotError == expectedError, "incremental error \(String(describing: gotError)), whole \(String(describing: expectedError))")
    if expectedError == nil { require(decoder.bufferedByteCount == bytes.count - offset, "buffered bytes") }
    Stats.count("stream of \(min(expected.count, 3)) messages\(expectedError == nil ? "" : " then an error")")
}

/// A message of any kind from the bytes; encoded, it must decode to itself or
/// be refused by both sides alike.
func structured(_ r: inout ByteReader) {
    let limits = r.u8() & 1 == 0 ? WireLimits() : smallLimits(&r)
    let message = build(&r)
    let loose = WireLimits(
        maxFrameBytes: 1 << 24, maxLiterals: 1 << 16, maxLiteralBytes: 1 << 20, maxFilesPerRequest: Int(UInt32.max),
        maxDescriptorsPerMessage: 1 << 16, maxPathBytes: 1 << 16, maxTextBytes: 1 << 16)
    let strict: Result<[UInt8], WireError> = Result { () throws(WireError) in try WireCodec.encode(message, limits: limits) }
    switch strict {
    case .success(let bytes):
        Stats.count("built \(message.type) accepted")
        guard case .message(let decoded, let n)? = try? WireCodec.decode(bytes, limits: limits) else {
            fail("an encoded \(message.type) did not decode")
        }
        require(n == bytes.count && decoded == message, "decode(encode(\(message.type))) differs")
    case .failure(let error):
        Stats.count("built \(message.type) refused: \(kind(error))")
        // Only what the encoder can write at all is compared (a path with a
        // NUL, a zero line, too many failed files are refused by both, as are limits).
        guard let bytes = try? WireCodec.encode(message, limits: loose) else { return }
        do {
            _ = try WireCodec.decode(bytes, limits: limits)
            fail("the decoder accepted a \(message.type) the encoder refused (\(error))")
        } catch let decodeError {
            require(decodeError == error, "encoder: \(error); decoder: \(decodeError)")
        }
    }
}

func build(_ r: inout ByteReader) -> WireMessage {
    func text() -> String { String(decoding: r.take(Int(r.u8() % 24)), as: UTF8.self) }
    func path() -> RawPath { RawPath(bytes: r.take(Int(r.u8() % 24))) }
    let request = r.u32()
    switch r.u8() % 14 {
    case 0: return .hello(Hello(protocolVersion: r.u32(), client: text()))
    case 1: return .welcome(Welcome(protocolVersion: r.u32(), server: text()))
    case 2:
        return .refused(Refusal(
            reason: Refusal.Reason.allCases[Int(r.u8()) % Refusal.Reason.allCases.count], serverProtocolVersion: r.u32(),
            message: text()))
    case 3:
        let flags = r.u8()
        let literals = (0..<Int(r.u8() % 8)).map { _ in r.take(Int(r.u8() % 16)) }
        let p = ScanParameters(
            literals: literals, caseInsensitive: flags & 1 != 0,
            output: ScanOutputMode.allCases[Int(flags >> 1) % ScanOutputMode.allCases.count], lineNumbers: flags & 8 != 0)
        return .request(WireRequest(id: request, fileCount: r.u32() >> (r.u8() % 32), operation: .scan(p)))
    case 4: return .request(WireRequest(id: request, fileCount: r.u32() >> (r.u8() % 32), operation: .count))
    case 5: return .request(WireRequest(id: request, fileCount: r.u32() >> (r.u8() % 32), operation: .hash))
    case 6:
        let descriptors = UInt32(r.u8())
        let files = (0..<Int(r.u8() % 8)).map { _ in WireFile(path: path(), descriptor: UInt32(r.u8())) }
        return .files(FileBatch(request: request, descriptorCount: descriptors, files: files))
    case 7: return .cancel(request: request)
    case 8:
        let flags = r.u8()
        let matches = (0..<Int(r.u8() % 16)).map { _ in
            var m = WireMatch(offset: r.u64(), pattern: r.u32())
            m.line = r.u8() & 1 == 0 ? nil : UInt64(r.u32())
            return m
        }
        return .matches(MatchPiece(
            request: request, file: r.u32(), isComplete: flags & 1 != 0, count: UInt64(matches.count) + UInt64(r.u8()) &- UInt64(r.u8() & 1),
            newlines: flags & 2 != 0 ? r.u64() : nil, matches: matches))
    case 9: return .fileCount(FileCountReply(request: request, file: r.u32(), bytes: r.u64(), lines: r.u64()))
    case 10: return .fileHash(FileHashReply(request: request, file: r.u32(), crc32c: r.u32(), bytes: r.u64()))
    case 11:
        return .fileError(FileErrorReply(
            request: request, file: r.u32(), code: WireErrorCode.allCases[Int(r.u8()) % WireErrorCode.allCases.count],
            errno: Int32(bitPattern: r.u32()), path: path(), message: text()))
    case 12:
        return .done(RequestDone(request: request, files: UInt64(r.u16()), failedFiles: UInt64(r.u16()), bytes: r.u64(), matches: r.u64()))
    default:
        return .requestFailed(RequestFailure(
            request: request, code: WireErrorCode.allCases[Int(r.u8()) % WireErrorCode.allCases.count],
            errno: Int32(bitPattern: r.u32()), message: text(), hint: text()))
    }
}

/// An error's case, for the statistics.
func kind(_ error: WireError) -> String {
    switch error {
    case .badMagic: return "bad magic"
    case .unknownType: return "unknown type"
    case .oversizedPayload: return "oversized"
    case .truncated(let m, _): return "truncated \(m)"
    case .malformed(let m, let field, _): return "malformed \(m) \(field.prefix(while: { !$0.isNumber }))"
    case .limitExceeded(let limit, _, _): return "limit \(limit.rawValue)"
    default: return "\(error)"
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzWireInitialize(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    writeSeedsIfAsked(wireSeeds)
    return 0
}

/// One valid frame of each kind (mode 1, and all of them as one stream in
/// mode 0), a stream cut mid-frame, and a structured and a small-limits seed.
func wireSeeds() -> [(name: String, bytes: [UInt8])] {
    let messages: [(String, WireMessage)] = [
        ("hello", .hello(Hello(client: "sluice"))),
        ("scan", .request(WireRequest(id: 1, fileCount: 2, operation: .scan(ScanParameters(
            literals: [Array("foo".utf8), [0xFF, 0x00], []], caseInsensitive: true, output: .matches, lineNumbers: true))))),
        ("count", .request(WireRequest(id: 2, fileCount: 1, operation: .count))),
        ("hash", .request(WireRequest(id: 3, fileCount: 0, operation: .hash))),
        ("files", .files(FileBatch(request: 1, paths: ["a/b", RawPath(bytes: [0x66, 0xFF, 0x0A])]))),
        ("cancel", .cancel(request: 1)),
        ("welcome", .welcome(Welcome(server: "cpu"))),
        ("refused", .refused(Refusal(reason: .versionMismatch, serverProtocolVersion: 2, message: "version"))),
        ("matches", .matches(MatchPiece(
            request: 1, file: 1, isComplete: true, count: 3, newlines: 9,
            matches: [WireMatch(offset: 5, pattern: 0, line: 2), WireMatch(offset: 6, pattern: 1)]))),
        ("file-count", .fileCount(FileCountReply(request: 2, file: 0, bytes: 1234, lines: 5))),
        ("file-hash", .fileHash(FileHashReply(request: 3, file: 0, crc32c: 0xE306_9283, bytes: 9))),
        ("file-error", .fileError(FileErrorReply(request: 1, file: 1, code: .io, errno: 13, path: "x", message: "denied"))),
        ("done", .done(RequestDone(request: 1, files: 2, failedFiles: 1, bytes: 100, matches: 3))),
        ("request-failed", .requestFailed(RequestFailure(request: 1, code: .invalidRequest, message: "bad", hint: "fix"))),
    ]
    var seeds: [(name: String, bytes: [UInt8])] = []
    var all: [UInt8] = []
    for (name, message) in messages {
        let bytes = try! WireCodec.encode(message)
        all += bytes
        let index = UInt8(WireMessageType.allCases.firstIndex(of: message.type)!)
        seeds.append(("frame-\(name)", [1, index] + bytes[WireFrame.headerBytes...]))
    }
    seeds.append(("stream-all", [0, 63] + all))
    seeds.append(("stream-cut", [0, 0] + all[..<(all.count - 5)]))
    seeds.append(("limits-scan", [3, 4, 2, 5, 3, 2, 4, 4, 1] + Array(try! WireCodec.encode(messages[1].1)[WireFrame.headerBytes...])))
    seeds.append(("structured-scan", [2, 1, 4, 2, 5, 3, 2, 4, 4] + [7, 0, 0, 0, 3, 0x0B, 3, 2, 0x61, 0x62, 1, 0x63, 0, 9, 0, 0, 0, 1]))
    return seeds
}
