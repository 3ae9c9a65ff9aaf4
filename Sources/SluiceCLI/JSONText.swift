import Sluice

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
    guard String(validating: bytes, as: UTF8.self) != nil else { return "{\"bytes\":\"\(CRC32CText.base64(bytes))\"}" }
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
