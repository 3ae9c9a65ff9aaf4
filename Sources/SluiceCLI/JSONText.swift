/// `"literal":"..."` for UTF-8 literals; `"literal":null,"literal_hex":"..."` for other bytes.
func jsonLiteralField(_ bytes: [UInt8]) -> String {
    if String(validating: bytes, as: UTF8.self) != nil {
        return "\"literal\":\(jsonString(bytes))"
    }
    let hex = bytes.map { b in
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }.joined()
    return "\"literal\":null,\"literal_hex\":\"\(hex)\""
}

/// A path as a JSON value: a string when its bytes are UTF-8, else, as
/// ripgrep writes such data, an object with the bytes in base64:
/// `{"bytes":"..."}`.
func jsonPathValue(_ bytes: [UInt8]) -> String {
    guard String(validating: bytes, as: UTF8.self) != nil else { return "{\"bytes\":\"\(base64(bytes))\"}" }
    return jsonString(bytes)
}

/// A JSON string for UTF-8 bytes (invalid sequences become U+FFFD).
func jsonString(_ bytes: [UInt8]) -> String {
    var s = "\""
    for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
        switch scalar {
        case "\"": s += "\\\""
        case "\\": s += "\\\\"
        case "\n": s += "\\n"
        case "\r": s += "\\r"
        case "\t": s += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            s += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: s.unicodeScalars.append(scalar)
        }
    }
    return s + "\""
}

/// Standard base64 (RFC 4648, with padding). Written here since the tool
/// links no Foundation, and one JSON field needs it.
func base64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i < bytes.count {
        let n = min(3, bytes.count - i)
        var group = UInt32(bytes[i]) << 16
        if n > 1 { group |= UInt32(bytes[i + 1]) << 8 }
        if n > 2 { group |= UInt32(bytes[i + 2]) }
        for k in 0..<4 {
            out.append(k <= n ? alphabet[Int((group >> (18 - 6 * UInt32(k))) & 0x3F)] : UInt8(ascii: "="))
        }
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
