/// The two ways CRC-32C checksums are written out: 8 lowercase hex digits of
/// the value (big-endian, as `crc32c` tools print it), or base64 of its four
/// big-endian bytes (as cloud object stores and their tools print it:
/// "123456789" is `e3069283` or `4waSgw==`).
public enum CRC32CText {
    /// How a checksum is written out (`--encoding`).
    public enum Encoding: String, CaseIterable, Sendable {
        /// 8 lowercase hex digits, most significant first: `e3069283`.
        case hex
        /// Base64 of the 4 big-endian bytes: `4waSgw==`.
        case base64
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// `crc` written out in `encoding`.
    public static func format(_ crc: UInt32, as encoding: Encoding) -> String {
        switch encoding {
        case .hex:
            let digits = (0..<8).map { hexDigits[Int((crc >> (28 - 4 * UInt32($0))) & 0xF)] }
            return String(decoding: digits, as: UTF8.self)
        case .base64:
            return base64([UInt8(crc >> 24), UInt8(truncatingIfNeeded: crc >> 16), UInt8(truncatingIfNeeded: crc >> 8),
                           UInt8(truncatingIfNeeded: crc)])
        }
    }

    /// Standard base64 (RFC 4648, with padding) of any bytes: the checksums'
    /// form, and JSON's for paths that are not UTF-8. Written here because
    /// the tool links no Foundation.
    public static func base64(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var group = UInt32(bytes[i]) << 16
            if n > 1 { group |= UInt32(bytes[i + 1]) << 8 }
            if n > 2 { group |= UInt32(bytes[i + 2]) }
            for k in 0..<4 {
                out.append(k <= n ? base64Alphabet[Int((group >> (18 - 6 * UInt32(k))) & 0x3F)] : UInt8(ascii: "="))
            }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads a checksum in either encoding (hex in either case; base64 only in
    /// its canonical form), or nil when `text` is neither.
    public static func parse(_ text: some StringProtocol) -> (crc: UInt32, encoding: Encoding)? {
        let u = Array(text.utf8)
        guard u.count == 8 else { return nil }
        if u[6] == UInt8(ascii: "="), u[7] == UInt8(ascii: "=") {
            var bits: UInt64 = 0
            for c in u[0..<6] {
                guard let v = base64Alphabet.firstIndex(of: c) else { return nil }
                bits = bits << 6 | UInt64(v)
            }
            guard bits & 0xF == 0 else { return nil }  // non-canonical: stray bits past the 32
            return (UInt32(bits >> 4), .base64)
        }
        var value: UInt32 = 0
        for c in u {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(v)
        }
        return (value, .hex)
    }
}
