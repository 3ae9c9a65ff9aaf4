import SluiceCore

/// Little-endian writing of payload fields.
struct WireWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }

    /// A u32 length, then the bytes. (A length past u32 makes the frame
    /// larger than any limit allows, which the encoder then refuses.)
    mutating func counted(_ b: [UInt8]) {
        u32(UInt32(truncatingIfNeeded: b.count))
        bytes.append(contentsOf: b)
    }

    /// Text as counted UTF-8 bytes.
    mutating func text(_ s: String) { counted(Array(s.utf8)) }

    mutating func set32(_ v: UInt32, at offset: Int) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }
}

/// Little-endian reading of one payload, `bytes[index..<end]`: every read
/// checks that its bytes are there (else `truncated`, naming the field), so
/// nothing is allocated beyond what the payload holds.
struct WireReader {
    let bytes: [UInt8]
    var index: Int
    let end: Int
    let type: WireMessageType

    var remaining: Int { end - index }

    func need(_ n: Int, _ field: String) throws(WireError) {
        if n > remaining { throw .truncated(message: type, field: field) }
    }

    mutating func u8(_ field: String) throws(WireError) -> UInt8 {
        try need(1, field)
        defer { index += 1 }
        return bytes[index]
    }

    mutating func u16(_ field: String) throws(WireError) -> UInt16 {
        try need(2, field)
        defer { index += 2 }
        return UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8
    }

    mutating func u32(_ field: String) throws(WireError) -> UInt32 {
        try need(4, field)
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[index + i]) << (8 * i) }
        index += 4
        return v
    }

    mutating func u64(_ field: String) throws(WireError) -> UInt64 {
        try need(8, field)
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[index + i]) << (8 * i) }
        index += 8
        return v
    }

    mutating func i32(_ field: String) throws(WireError) -> Int32 { Int32(bitPattern: try u32(field)) }

    /// A byte that must be 0 or 1.
    mutating func bool(_ field: String) throws(WireError) -> Bool {
        let v = try u8(field)
        guard v <= 1 else { throw .malformed(message: type, field: field, detail: "\(v) is neither 0 nor 1") }
        return v == 1
    }

    /// A reserved field that must be zero.
    mutating func reserved(_ n: Int, _ field: String) throws(WireError) {
        try need(n, field)
        for i in 0..<n where bytes[index + i] != 0 {
            throw .malformed(message: type, field: field, detail: "reserved byte \(i) is \(bytes[index + i]), not 0")
        }
        index += n
    }

    /// `n` raw bytes (the caller checked `n` against its limit).
    mutating func take(_ n: Int, _ field: String) throws(WireError) -> [UInt8] {
        try need(n, field)
        defer { index += n }
        return Array(bytes[index..<(index + n)])
    }

    /// A u32 count of items of at least `bytesEach` bytes, checked against
    /// the bytes left before anything is allocated for it.
    mutating func count(_ field: String, bytesEach: Int) throws(WireError) -> Int {
        let n = Int(try u32(field))
        try need(n * bytesEach, field)
        return n
    }

    /// Counted UTF-8 text (its limit is checked by `WireCodec.validate`).
    mutating func text(_ field: String) throws(WireError) -> String {
        let n = Int(try u32(field + " length"))
        let raw = try take(n, field)
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw .malformed(message: type, field: field, detail: "not valid UTF-8")
        }
        return s
    }

    /// A counted path (its rules are checked by `WireCodec.validate`).
    mutating func path(_ field: String) throws(WireError) -> RawPath {
        let n = Int(try u32(field + " length"))
        return RawPath(bytes: try take(n, field))
    }

    /// Every byte of the payload must have been read.
    func finish() throws(WireError) {
        guard index == end else {
            throw .malformed(message: type, field: "payload", detail: "\(end - index) bytes after the last field")
        }
    }
}
