import SluiceCore

/// The literals of a scan, as byte strings, in the order the user gave them
/// (`-e` literals first, then `-f` lines). Literal i is pattern number i.
public struct PatternSet: Sendable, Hashable {
    /// The literals as given (not case-folded); pattern numbers index this.
    public private(set) var literals: [[UInt8]]
    /// Whether matching folds ASCII letters (`-i`).
    public let caseInsensitive: Bool

    /// Builds a set; rejects an empty set and empty literals.
    public init(literals: [[UInt8]], caseInsensitive: Bool = false) throws(PipelineError) {
        guard !literals.isEmpty else {
            throw .invalidConfiguration("no literals to scan for")
        }
        if let empty = literals.firstIndex(where: \.isEmpty) {
            throw .invalidConfiguration("literal \(empty) is empty, which would match at every byte; remove it")
        }
        guard literals.count <= 1 << 24 else {
            throw .invalidConfiguration("\(literals.count) literals are more than the \(1 << 24) a scan supports")
        }
        if let long = literals.firstIndex(where: { $0.count > 1 << 20 }) {
            throw .invalidConfiguration("literal \(long) is \(literals[long].count) bytes; literals are limited to 1 MiB")
        }
        self.literals = literals
        self.caseInsensitive = caseInsensitive
    }

    /// Literals in the set, duplicates included.
    public var count: Int { literals.count }
    /// Bytes of the longest literal.
    public var maxLength: Int { literals.map(\.count).max() ?? 0 }
    /// Bytes of the shortest literal.
    public var minLength: Int { literals.map(\.count).min() ?? 0 }

    /// Decodes a `-e` argument: `\xHH` is the byte 0xHH and `\\` a backslash;
    /// any other character, backslashes before other characters included,
    /// stands for its UTF-8 bytes.
    public static func decodeEscapes(_ text: String) throws(PipelineError) -> [UInt8] {
        try decodeEscapes(bytes: Array(text.utf8))
    }

    /// `decodeEscapes` over an argument's raw bytes, which need not be UTF-8.
    public static func decodeEscapes(bytes: [UInt8]) throws(PipelineError) -> [UInt8] {
        let text = String(decoding: bytes, as: UTF8.self)
        var out: [UInt8] = []
        var i = 0
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 1 < bytes.count {
                if bytes[i + 1] == UInt8(ascii: "\\") {
                    out.append(UInt8(ascii: "\\"))
                    i += 2
                    continue
                }
                if bytes[i + 1] == UInt8(ascii: "x") {
                    guard i + 3 < bytes.count, let h = hex(bytes[i + 2]), let l = hex(bytes[i + 3]) else {
                        throw .invalidConfiguration("bad escape in literal \"\(text)\": \\x needs two hex digits")
                    }
                    out.append(h << 4 | l)
                    i += 4
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return out
    }

    /// Splits a pattern file's bytes into literals like `grep -F -f`: one per
    /// line, the line's `\n` (and a `\r` before it) not included, empty lines ignored.
    public static func parseLines(_ bytes: some Collection<UInt8>) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var line: [UInt8] = []
        for b in bytes {
            if b == 0x0A {
                if line.last == 0x0D { line.removeLast() }
                if !line.isEmpty { out.append(line) }
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(b)
            }
        }
        if line.last == 0x0D { line.removeLast() }
        if !line.isEmpty { out.append(line) }
        return out
    }
}

/// ASCII case folding, the only folding `-i` does (bytes ≥ 0x80 are compared as they are).
@inline(__always)
public func foldASCII(_ b: UInt8) -> UInt8 {
    b &- 0x41 < 26 ? b | 0x20 : b
}
