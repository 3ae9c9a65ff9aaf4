import SluiceCore
import SluiceWire

/// One message of each kind, with its bytes written out by hand (computed
/// with Python's `struct.pack`, independently of the encoder).
enum Samples {
    static let messages: [(name: String, message: WireMessage)] = [
        ("hello", .hello(Hello(protocolVersion: 1, client: "sluice 1.0"))),
        ("scan", .request(WireRequest(id: 7, fileCount: 2, operation: .scan(ScanParameters(
            literals: [Array("foo".utf8), [0xFF, 0x00]], caseInsensitive: true, output: .count, lineNumbers: true))))),
        ("count", .request(WireRequest(id: 8, fileCount: 1, operation: .count))),
        ("hash", .request(WireRequest(id: 9, fileCount: 0, operation: .hash))),
        ("files", .files(FileBatch(request: 7, descriptorCount: 2, files: [
            WireFile(path: "a/b", descriptor: 0), WireFile(path: RawPath(bytes: [0x66, 0xFF, 0x0A]), descriptor: 1),
        ]))),
        ("cancel", .cancel(request: 7)),
        ("welcome", .welcome(Welcome(protocolVersion: 1, server: "cpu"))),
        ("refused", .refused(Refusal(reason: .versionMismatch, serverProtocolVersion: 2, message: "v"))),
        ("matches", .matches(MatchPiece(
            request: 7, file: 1, isComplete: true, count: 3, newlines: 10,
            matches: [WireMatch(offset: 5, pattern: 0, line: 2), WireMatch(offset: 6, pattern: 1)]))),
        ("fileCount", .fileCount(FileCountReply(request: 8, file: 0, bytes: 1234, lines: 5))),
        ("fileHash", .fileHash(FileHashReply(request: 9, file: 3, crc32c: 0xE306_9283, bytes: 9))),
        ("fileError", .fileError(FileErrorReply(
            request: 7, file: 1, code: .io, errno: 13, path: "x", message: "x: open failed"))),
        ("done", .done(RequestDone(request: 7, files: 2, failedFiles: 1, bytes: 100, matches: 3))),
        ("requestFailed", .requestFailed(RequestFailure(request: 7, code: .invalidRequest, message: "bad", hint: "fix"))),
    ]

    static let vectors: [String: String] = [
        "hello": "534c55570100000012000000010000000a000000736c7569636520312e30",
        "scan": "534c5557020000001d0000000700000002000000030100000200000003000000666f6f02000000ff00",
        "count": "534c555703000000080000000800000001000000",
        "hash": "534c555704000000080000000900000000000000",
        "files": "534c555705000000220000000700000002000000020000000000000003000000612f62010000000300000066ff0a",
        "cancel": "534c5557060000000400000007000000",
        "welcome": "534c5557010100000b0000000100000003000000637075",
        "refused": "534c5557020100000d00000001000000020000000100000076",
        "matches": "534c5557030100004800000007000000010000000300000003000000000000000a0000000000000002000000050000000000"
            + "00000000000002000000000000000600000000000000010000000000000000000000",
        "fileCount": "534c555704010000180000000800000000000000d2040000000000000500000000000000",
        "fileHash": "534c555705010000140000000900000003000000839206e30900000000000000",
        "fileError": "534c555706010000270000000700000001000000050000000d00000001000000780e000000783a206f70656e206661696c6564",
        "done": "534c55570701000024000000070000000200000000000000010000000000000064000000000000000300000000000000",
        "requestFailed": "534c5557080100001a0000000700000002000000000000000300000062616403000000666978",
    ]
}

/// The bytes a hex string spells.
func hex(_ s: String) -> [UInt8] {
    let digits = Array(s.utf8)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
}

/// Encodes with limits that cannot fail for the tests' messages.
func encode(_ m: WireMessage, _ limits: WireLimits = WireLimits()) -> [UInt8] {
    do { return try WireCodec.encode(m, limits: limits) } catch { fatalError("encode(\(m)) threw \(error)") }
}

/// Random messages of every kind from a seeded generator, with the values a
/// format's edges are made of (0, maxima, non-UTF-8 bytes, empty lists).
struct MessageGenerator {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func u32() -> UInt32 { pick([0, 1, UInt32.max, UInt32(truncatingIfNeeded: rng.next())]) }
    mutating func u64() -> UInt64 { pick([0, 1, UInt64.max, rng.next(), rng.next() >> 40]) }
    mutating func bool() -> Bool { rng.next() & 1 == 1 }
    mutating func pick<T>(_ values: [T]) -> T { values[rng.below(values.count)] }

    mutating func bytes(max: Int, allowNUL: Bool = true) -> [UInt8] {
        (0..<rng.below(max + 1)).map { _ in
            let b = UInt8(truncatingIfNeeded: rng.next())
            return !allowNUL && b == 0 ? 1 : b
        }
    }

    mutating func path() -> RawPath {
        var b = bytes(max: 40, allowNUL: false)
        if b.isEmpty { b = [0x2F] }
        return RawPath(bytes: b)
    }

    /// Valid UTF-8 of several widths (ASCII, Latin, CJK, emoji).
    mutating func text() -> String {
        String((0..<rng.below(20)).map { _ in pick(["a", "é", "漢", "🙂", "\n", ":", "\u{0}"] as [Character]) })
    }

    mutating func message() -> WireMessage {
        switch rng.below(14) {
        case 0: return .hello(Hello(protocolVersion: u32(), client: text()))
        case 1:
            let literals = (0..<rng.below(6)).map { _ in bytes(max: 12) }
            let p = ScanParameters(
                literals: literals, caseInsensitive: bool(), output: pick(ScanOutputMode.allCases), lineNumbers: bool())
            return .request(WireRequest(id: u32(), fileCount: UInt32(rng.below(1000)), operation: .scan(p)))
        case 2: return .request(WireRequest(id: u32(), fileCount: UInt32(rng.below(1 << 20)), operation: pick([.count, .hash])))
        case 3:
            let descriptors = rng.below(254)
            let files = (0..<(descriptors == 0 ? 0 : rng.below(descriptors + 1))).map { _ in
                WireFile(path: path(), descriptor: UInt32(rng.below(descriptors)))
            }
            return .files(FileBatch(request: u32(), descriptorCount: UInt32(descriptors), files: files))
        case 4: return .cancel(request: u32())
        case 5: return .welcome(Welcome(protocolVersion: u32(), server: text()))
        case 6: return .refused(Refusal(reason: pick(Refusal.Reason.allCases), serverProtocolVersion: u32(), message: text()))
        case 7:
            let matches = (0..<rng.below(50)).map { _ in WireMatch(offset: u64(), pattern: u32(), line: bool() ? u64() : nil) }
            let complete = bool()
            return .matches(MatchPiece(
                request: u32(), file: u32(), isComplete: complete, count: UInt64(matches.count) + (bool() ? 0 : u64() >> 1),
                newlines: complete && bool() ? u64() : nil, matches: matches))
        case 8: return .fileCount(FileCountReply(request: u32(), file: u32(), bytes: u64(), lines: u64()))
        case 9: return .fileHash(FileHashReply(request: u32(), file: u32(), crc32c: u32(), bytes: u64()))
        case 10:
            return .fileError(FileErrorReply(
                request: u32(), file: u32(), code: pick(WireErrorCode.allCases), errno: Int32(bitPattern: u32()),
                path: path(), message: text()))
        case 11:
            let files = u64()
            return .done(RequestDone(request: u32(), files: files, failedFiles: files == 0 ? 0 : files / UInt64(1 + rng.below(3)), bytes: u64(), matches: u64()))
        case 12:
            return .requestFailed(RequestFailure(
                request: u32(), code: pick(WireErrorCode.allCases), errno: Int32(bitPattern: u32()), message: text(), hint: text()))
        default:
            return .request(WireRequest(id: u32(), fileCount: 0, operation: .scan(ScanParameters(literals: []))))
        }
    }
}
