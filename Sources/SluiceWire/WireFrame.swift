/// The frame every message travels in: a 12-byte header, then the payload.
///
/// ```
/// offset 0  u32  magic 0x57554C53 (the bytes "SLUW")
///        4  u16  message type (WireMessageType)
///        6  u16  reserved, 0
///        8  u32  payload length in bytes
///       12  ...  payload
/// ```
/// All integers are little-endian. The header does not change between
/// protocol versions, so any version can read a `hello` and answer it.
public enum WireFrame {
    /// The first four bytes of every frame, "SLUW" read as a little-endian u32.
    public static let magic: UInt32 = 0x5755_4C53
    /// Bytes in a frame header.
    public static let headerBytes = 12
}

/// What one decoding step found at the start of the bytes it was given.
public enum WireDecodeStep: Hashable, Sendable {
    /// The bytes hold no whole frame yet; at least this many more are needed.
    case needMoreBytes(Int)
    /// One message, decoded from the first `byteCount` bytes.
    case message(WireMessage, byteCount: Int)
}

/// Encoding and decoding of messages, one frame at a time.
public enum WireCodec {
    /// The frame of `message`: header and payload. Throws the error the
    /// decoder would give for it (a limit exceeded, a path with a NUL, a frame
    /// larger than `limits.maxFrameBytes`), so nothing it returns is refused
    /// by a decoder with the same limits.
    public static func encode(_ message: WireMessage, limits: WireLimits = WireLimits()) throws(WireError) -> [UInt8] {
        // The decoder's order: the frame's size (from the header), then the payload's rules.
        var w = WireWriter()
        w.u32(WireFrame.magic)
        w.u16(message.type.rawValue)
        w.u16(0)
        w.u32(0)  // the length, set below
        writePayload(message, into: &w)
        let payload = w.bytes.count - WireFrame.headerBytes
        guard payload <= limits.maxPayloadBytes else {
            throw .oversizedPayload(length: payload, maximum: limits.maxPayloadBytes)
        }
        try validate(message, limits: limits)
        w.set32(UInt32(payload), at: 8)
        return w.bytes
    }

    /// Decodes the frame at the start of `bytes`: a message and how many
    /// bytes it took, or how many more bytes are needed, or why the bytes
    /// can never be a frame. Header fields are checked as soon as their bytes
    /// are there (a wrong magic or type before the rest of the header, an
    /// oversized length before any payload arrives), so the error is the same
    /// however the bytes were split. Every count is checked against the bytes
    /// present before anything is allocated for it; the limits are checked
    /// once the payload is read, by the rules the encoder applies, in the
    /// same order, so both name the same error for the same message.
    public static func decode(_ bytes: [UInt8], limits: WireLimits = WireLimits()) throws(WireError) -> WireDecodeStep {
        try decode(bytes, from: 0, limits: limits)
    }

    /// `decode(_:limits:)` of `bytes[start...]`.
    static func decode(_ bytes: [UInt8], from start: Int, limits: WireLimits) throws(WireError) -> WireDecodeStep {
        let available = bytes.count - start
        guard available >= 4 else { return .needMoreBytes(WireFrame.headerBytes - available) }
        var magic: UInt32 = 0
        for i in 0..<4 { magic |= UInt32(bytes[start + i]) << (8 * i) }
        guard magic == WireFrame.magic else { throw .badMagic(magic) }
        guard available >= 6 else { return .needMoreBytes(WireFrame.headerBytes - available) }
        let rawType = UInt16(bytes[start + 4]) | UInt16(bytes[start + 5]) << 8
        guard let type = WireMessageType(rawValue: rawType) else { throw .unknownType(rawType) }
        guard available >= 8 else { return .needMoreBytes(WireFrame.headerBytes - available) }
        guard bytes[start + 6] == 0 && bytes[start + 7] == 0 else {
            throw .malformed(message: type, field: "header reserved field", detail: "not zero")
        }
        guard available >= WireFrame.headerBytes else { return .needMoreBytes(WireFrame.headerBytes - available) }
        var length = 0
        for i in 0..<4 { length |= Int(bytes[start + 8 + i]) << (8 * i) }
        guard length <= limits.maxPayloadBytes else {
            throw .oversizedPayload(length: length, maximum: limits.maxPayloadBytes)
        }
        let total = WireFrame.headerBytes + length
        guard available >= total else { return .needMoreBytes(total - available) }
        var r = WireReader(bytes: bytes, index: start + WireFrame.headerBytes, end: start + total, type: type)
        let message = try readPayload(&r)
        try r.finish()
        try validate(message, limits: limits)
        return .message(message, byteCount: total)
    }
}

/// Decodes a byte stream as it arrives: append what the socket delivered,
/// then take messages until `next()` says more bytes are needed. After an
/// error every call throws it again: the stream cannot be resynchronised,
/// and the connection is to be closed.
public struct WireFrameDecoder: Sendable {
    /// The limits every frame is checked against.
    public let limits: WireLimits
    private var buffer: [UInt8] = []
    private var start = 0
    private var failure: WireError?

    /// A decoder with no bytes yet.
    public init(limits: WireLimits = WireLimits()) { self.limits = limits }

    /// Bytes received and not yet part of a decoded message.
    public var bufferedByteCount: Int { buffer.count - start }

    /// Adds bytes the socket delivered.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// The next whole message, or nil when more bytes are needed for it.
    public mutating func next() throws(WireError) -> WireMessage? {
        if let failure { throw failure }
        do {
            switch try WireCodec.decode(buffer, from: start, limits: limits) {
            case .needMoreBytes:
                return nil
            case .message(let message, let byteCount):
                start += byteCount
                return message
            }
        } catch {
            failure = error
            throw error
        }
    }

    /// Call when the stream ended: throws when it ended inside a frame.
    public func finish() throws(WireError) {
        if let failure { throw failure }
        if bufferedByteCount > 0 { throw .endOfStreamInFrame(bufferedBytes: bufferedByteCount) }
    }

    /// Drops consumed bytes once they are most of the buffer, so it stays
    /// about one frame (plus one read) long however long the stream is.
    private mutating func compact() {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}
