import SluiceCore
import SluiceWire
import Testing

@Suite("SluiceWire: frames and messages")
struct WireCodecTests {
    @Test("every kind of message encodes to its fixed byte vector and decodes back")
    func fixedVectors() throws {
        #expect(Set(Samples.messages.map(\.message.type)) == Set(WireMessageType.allCases))
        for (name, message) in Samples.messages {
            let expected = hex(Samples.vectors[name]!)
            #expect(encode(message) == expected, "\(name)")
            #expect(try WireCodec.decode(expected) == .message(message, byteCount: expected.count), "\(name)")
        }
    }

    @Test("random messages from a seeded generator round-trip, alone and as one stream fed in random pieces")
    func randomRoundTrips() throws {
        var g = MessageGenerator(seed: 0x5EED_0001)
        var stream: [UInt8] = []
        var sent: [WireMessage] = []
        for _ in 0..<3000 {
            let m = g.message()
            let bytes = encode(m)
            #expect(try WireCodec.decode(bytes) == .message(m, byteCount: bytes.count))
            // A following frame's bytes do not change what the first decodes to.
            #expect(try WireCodec.decode(bytes + [0x53, 0x4C]) == .message(m, byteCount: bytes.count))
            stream += bytes
            sent.append(m)
        }
        var decoder = WireFrameDecoder()
        var received: [WireMessage] = []
        var offset = 0
        while offset < stream.count {
            let n = min(stream.count - offset, 1 + g.rng.below(300))
            decoder.append(stream[offset..<offset + n])
            offset += n
            while let m = try decoder.next() { received.append(m) }
        }
        #expect(received == sent)
        #expect(decoder.bufferedByteCount == 0)
        try decoder.finish()
    }

    @Test("non-UTF-8 path bytes and every byte value in literals survive the trip")
    func rawBytes() throws {
        let all = (0...255).map { UInt8($0) }
        let scan = WireMessage.request(WireRequest(
            id: 1, fileCount: 1, operation: .scan(ScanParameters(literals: [all, [], [0]]))))
        let bytes = encode(scan)
        #expect(try WireCodec.decode(bytes) == .message(scan, byteCount: bytes.count))
        let files = WireMessage.files(FileBatch(request: 1, paths: [RawPath(bytes: Array(1...255))]))
        let fb = encode(files)
        #expect(try WireCodec.decode(fb) == .message(files, byteCount: fb.count))
    }

    @Test("every prefix of a valid frame asks for the bytes still missing (of the header, then of the frame)")
    func prefixesNeedMore() throws {
        for (name, message) in Samples.messages {
            let bytes = encode(message)
            for k in 0..<bytes.count {
                // Until the header is whole, only its missing bytes are known to be needed.
                let missing = k < WireFrame.headerBytes ? WireFrame.headerBytes - k : bytes.count - k
                #expect(try WireCodec.decode(Array(bytes[..<k])) == .needMoreBytes(missing), "\(name) cut at \(k)")
            }
        }
    }

    @Test("a payload cut at every point (its length field saying so) is truncated, naming the message")
    func truncatedPayloads() {
        for (name, message) in Samples.messages {
            let full = encode(message)
            let payload = Array(full[WireFrame.headerBytes...])
            for k in 0..<payload.count {
                var frame = Array(full[..<8]) + le32(UInt32(k)) + payload[..<k]
                frame += []
                do {
                    let step = try WireCodec.decode(frame)
                    Issue.record("\(name) cut to \(k) payload bytes decoded as \(step)")
                } catch {
                    guard case .truncated(let type, _) = error else {
                        Issue.record("\(name) cut to \(k): \(error), not truncated")
                        continue
                    }
                    #expect(type == message.type)
                }
            }
        }
    }

    @Test("a byte after the last field is refused")
    func trailingByte() {
        for (name, message) in Samples.messages {
            let full = encode(message)
            let payload = Array(full[WireFrame.headerBytes...]) + [0]
            let frame = Array(full[..<8]) + le32(UInt32(payload.count)) + payload
            #expect(throws: WireError.malformed(message: message.type, field: "payload", detail: "1 bytes after the last field"), "\(name)") {
                try WireCodec.decode(frame)
            }
        }
    }

    @Test("a wrong magic, an unknown type, a reserved header byte: each refused once its bytes are there")
    func headerErrors() throws {
        let frame = encode(Samples.messages[0].message)
        var bad = frame
        bad[0] = 0x54
        // Judged once its four bytes are there, so the error does not depend on how the bytes were split.
        #expect(try WireCodec.decode(Array(bad[..<3])) == .needMoreBytes(9))
        #expect(throws: WireError.badMagic(0x5755_4C54)) { try WireCodec.decode(Array(bad[..<4])) }
        #expect(throws: WireError.badMagic(0x5755_4C54)) { try WireCodec.decode(bad) }
        // An HTTP client, say, is refused at once.
        #expect(throws: WireError.badMagic(0x2054_4547)) { try WireCodec.decode(Array("GET / HTTP/1.1\r\n".utf8)) }
        for type: UInt16 in [0, 7, 0x0100, 0x0109, 0x8001, 0xFFFF] {
            var t = frame
            t[4] = UInt8(type & 0xFF)
            t[5] = UInt8(type >> 8)
            #expect(throws: WireError.unknownType(type)) { try WireCodec.decode(Array(t[..<6])) }
        }
        var reserved = frame
        reserved[7] = 1
        #expect(throws: WireError.malformed(message: .hello, field: "header reserved field", detail: "not zero")) {
            try WireCodec.decode(reserved)
        }
    }

    @Test("a frame flipped to another known type decodes to an error or to a message that re-encodes to the same bytes")
    func flippedTypes() {
        for (name, message) in Samples.messages {
            let frame = encode(message)
            for type in WireMessageType.allCases where type != message.type {
                var t = frame
                t[4] = UInt8(type.rawValue & 0xFF)
                t[5] = UInt8(type.rawValue >> 8)
                do {
                    guard case .message(let other, let n) = try WireCodec.decode(t) else {
                        Issue.record("\(name) as \(type): asked for more bytes")
                        continue
                    }
                    #expect(other.type == type && n == t.count)
                    #expect(encode(other) == t, "\(name) read as \(type)")
                } catch {
                    // Any typed error is fine: it did not crash or guess.
                }
            }
        }
    }

    @Test("a length over the limit is refused from the header alone; at the limit it waits for the payload")
    func oversizedLength() throws {
        let limits = WireLimits()
        let header = le32(WireFrame.magic) + [0x01, 0x00, 0x00, 0x00]
        let atLimit = header + le32(UInt32(limits.maxPayloadBytes))
        #expect(try WireCodec.decode(atLimit) == .needMoreBytes(limits.maxPayloadBytes))
        #expect(throws: WireError.oversizedPayload(length: limits.maxPayloadBytes + 1, maximum: limits.maxPayloadBytes)) {
            try WireCodec.decode(header + le32(UInt32(limits.maxPayloadBytes + 1)))
        }
        #expect(throws: WireError.oversizedPayload(length: Int(UInt32.max), maximum: limits.maxPayloadBytes)) {
            try WireCodec.decode(header + le32(UInt32.max))
        }
    }

    @Test("huge counts in a short payload are truncated before anything is allocated for them")
    func hugeCounts() {
        // 1,000,000 literals claimed in an 16-byte payload; a files batch claiming 253 entries; 2^32-1 matches.
        let scan = le32(1) + le32(0) + [0, 0, 0, 0] + le32(1_000_000)
        #expect(throws: WireError.truncated(message: .scan, field: "literal count")) { try WireCodec.decode(frame(.scan, scan)) }
        let files = le32(1) + le32(253) + le32(253)
        #expect(throws: WireError.truncated(message: .files, field: "file count")) { try WireCodec.decode(frame(.files, files)) }
        let matches = le32(1) + le32(0) + [1, 0, 0, 0] + le64(UInt64.max) + le64(0) + le32(UInt32.max)
        #expect(throws: WireError.truncated(message: .matches, field: "matches")) { try WireCodec.decode(frame(.matches, matches)) }
        let text = le32(1) + le32(65536)
        #expect(throws: WireError.truncated(message: .hello, field: "client")) { try WireCodec.decode(frame(.hello, text)) }
    }

    @Test("fields with values the format does not have are malformed, and the encoder refuses them too")
    func malformedFields() {
        func decodeError(_ type: WireMessageType, _ payload: [UInt8]) -> WireError? {
            do {
                _ = try WireCodec.decode(frame(type, payload))
                return nil
            } catch { return error }
        }
        // Invalid UTF-8 text.
        #expect(decodeError(.hello, le32(1) + le32(1) + [0xFF]) == .malformed(message: .hello, field: "client", detail: "not valid UTF-8"))
        // Unknown scan flag bits, output mode, refusal reason, error code, reserved bytes.
        #expect(decodeError(.scan, le32(1) + le32(0) + [4, 0, 0, 0] + le32(0)) == .malformed(message: .scan, field: "flags", detail: "unknown bits 0x4"))
        #expect(decodeError(.scan, le32(1) + le32(0) + [0, 3, 0, 0] + le32(0)) == .malformed(message: .scan, field: "output mode", detail: "unknown mode 3"))
        #expect(decodeError(.scan, le32(1) + le32(0) + [0, 0, 0, 9] + le32(0)) == .malformed(message: .scan, field: "reserved", detail: "reserved byte 1 is 9, not 0"))
        #expect(decodeError(.refused, [9, 0, 0, 0] + le32(1) + le32(0)) == .malformed(message: .refused, field: "reason", detail: "unknown reason 9"))
        #expect(decodeError(.fileError, le32(1) + le32(0) + [0, 0, 0, 0] + le32(0) + le32(1) + [0x41] + le32(0)) == .malformed(message: .fileError, field: "code", detail: "unknown error code 0"))
        // A matches piece: newlines without the flag; newlines on an incomplete piece; fewer counted than listed.
        let head = le32(1) + le32(0)
        #expect(decodeError(.matches, head + [1, 0, 0, 0] + le64(0) + le64(5) + le32(0)) == .malformed(message: .matches, field: "newlines", detail: "5 without the newlines flag"))
        let incomplete = MatchPiece(request: 1, file: 0, isComplete: false, count: 0, newlines: 5, matches: [])
        let undercount = MatchPiece(request: 1, file: 0, isComplete: true, count: 0, matches: [WireMatch(offset: 1, pattern: 0)])
        // Line 0 is how "no line" travels, so the encoder refuses a line set to 0 (it would come back nil).
        var zeroLine = MatchPiece(request: 1, file: 0, isComplete: true, count: 1, matches: [WireMatch(offset: 1, pattern: 0)])
        zeroLine.matches[0].line = 0
        #expect(throws: WireError.malformed(message: .matches, field: "line of match 0", detail: "lines are 1-based (nil is sent as 0)")) {
            try WireCodec.encode(.matches(zeroLine))
        }
        for piece in [incomplete, undercount] {
            // The encoder refuses it, and its bytes written by hand are refused the same way.
            var encoderError: WireError?
            do { _ = try WireCodec.encode(.matches(piece)) } catch { encoderError = error }
            let m = piece.matches
            let raw = head + [(piece.isComplete ? 1 : 0) | (piece.newlines != nil ? 2 : 0), 0, 0, 0] + le64(piece.count)
                + le64(piece.newlines ?? 0) + le32(UInt32(m.count)) + m.flatMap { le64($0.offset) + le32($0.pattern) + le64($0.line ?? 0) }
            #expect(encoderError != nil && decodeError(.matches, raw) == encoderError, "\(piece)")
        }
        // Paths: empty, or holding a NUL; a descriptor index past those attached; failed files above files.
        for (bytes, detail) in [([UInt8](), "empty"), ([0x61, 0x00, 0x62], "NUL byte at 1")] {
            let batch = FileBatch(request: 1, descriptorCount: 1, files: [WireFile(path: RawPath(bytes: bytes), descriptor: 0)])
            let expected = WireError.malformed(message: .files, field: "path of file 0", detail: detail)
            #expect(throws: expected) { try WireCodec.encode(.files(batch)) }
            #expect(decodeError(.files, le32(1) + le32(1) + le32(1) + le32(0) + le32(UInt32(bytes.count)) + bytes) == expected)
        }
        let pastAttached = WireError.malformed(message: .files, field: "descriptor index of file 0", detail: "1 but 1 descriptors are attached")
        #expect(throws: pastAttached) {
            try WireCodec.encode(.files(FileBatch(request: 1, descriptorCount: 1, files: [WireFile(path: "a", descriptor: 1)])))
        }
        #expect(decodeError(.files, le32(1) + le32(1) + le32(1) + le32(1) + le32(1) + [0x61]) == pastAttached)
        #expect(throws: WireError.malformed(message: .done, field: "failed files", detail: "2 of 1 files")) {
            try WireCodec.encode(.done(RequestDone(request: 1, files: 1, failedFiles: 2, bytes: 0, matches: 0)))
        }
        #expect(decodeError(.done, le32(1) + le64(1) + le64(2) + le64(0) + le64(0)) == .malformed(message: .done, field: "failed files", detail: "2 of 1 files"))
    }

    @Test("the stream decoder: sticky errors, end of stream inside a frame, and a buffer that stays about a frame long")
    func streamDecoder() throws {
        var d = WireFrameDecoder()
        let frame = encode(Samples.messages[1].message)
        d.append(frame[..<5])
        #expect(try d.next() == nil)
        #expect(throws: WireError.endOfStreamInFrame(bufferedBytes: 5)) { try d.finish() }
        d.append(frame[5...])
        #expect(try d.next() == Samples.messages[1].message)
        #expect(try d.next() == nil)
        try d.finish()

        var bad = WireFrameDecoder()
        bad.append([0x00, 0, 0, 0])
        #expect(throws: WireError.badMagic(0)) { try bad.next() }
        bad.append(frame)
        #expect(throws: WireError.badMagic(0)) { try bad.next() }
        #expect(throws: WireError.badMagic(0)) { try bad.finish() }

        // 10,000 frames through one decoder, a frame at a time: what stays buffered stays small.
        var long = WireFrameDecoder()
        var most = 0
        for _ in 0..<10_000 {
            long.append(frame)
            #expect(try long.next() != nil)
            most = max(most, long.bufferedByteCount)
        }
        #expect(most == 0)
    }

    @Test("random bytes never crash the decoder: it fails with a typed error, waits, or returns a message that re-encodes to those bytes")
    func randomBytes() {
        var rng = SplitMix64(seed: 77)
        let limits = WireLimits(maxFrameBytes: 4096)
        for i in 0..<20_000 {
            // Half start with a valid header prefix, so payload decoding is reached.
            var bytes = (0..<rng.below(64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if i % 2 == 0 {
                let type = WireMessageType.allCases[rng.below(WireMessageType.allCases.count)]
                bytes = le32(WireFrame.magic) + [UInt8(type.rawValue & 0xFF), UInt8(type.rawValue >> 8), 0, 0]
                    + le32(UInt32(bytes.count)) + bytes
            }
            do {
                if case .message(let m, let n) = try WireCodec.decode(bytes, limits: limits) {
                    #expect(n - WireFrame.headerBytes <= limits.maxPayloadBytes)
                    #expect((try? WireCodec.encode(m, limits: limits)) == Array(bytes[..<n]))
                }
            } catch {
                _ = error.message
            }
        }
    }

    @Test("error messages name the fields and numbers")
    func messages() {
        #expect(WireError.limitExceeded(.literals, value: 1_000_001, maximum: 1_000_000).message == "literal count 1000001 exceeds the limit of 1000000")
        #expect(WireError.truncated(message: .scan, field: "literal").message == "truncated scan message: it ends inside literal")
        #expect(WireError.badMagic(0x2054_4547).message == "not a sluice frame: magic 0x20544547 instead of 0x57554c53")
    }
}

func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

/// A frame of `type` around `payload`, header written by hand.
func frame(_ type: WireMessageType, _ payload: [UInt8]) -> [UInt8] {
    le32(WireFrame.magic) + [UInt8(type.rawValue & 0xFF), UInt8(type.rawValue >> 8), 0, 0] + le32(UInt32(payload.count)) + payload
}
