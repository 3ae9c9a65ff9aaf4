/// Why bytes from a peer, or a message to send, were refused. Every case
/// names what is wrong with its numbers; a connection that gets one from its
/// decoder is closed (the stream cannot be resynchronised).
public enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The frame does not start with `WireFrame.magic` (the value found).
    case badMagic(UInt32)
    /// The frame's type is not one of `WireMessageType`.
    case unknownType(UInt16)
    /// The frame's payload is longer than the limit allows (header included in neither).
    case oversizedPayload(length: Int, maximum: Int)
    /// The payload ended inside `field` of a `message`.
    case truncated(message: WireMessageType, field: String)
    /// `field` of a `message` holds a value the format does not allow.
    case malformed(message: WireMessageType, field: String, detail: String)
    /// A length or count above one of `WireLimits`' bounds.
    case limitExceeded(WireLimit, value: Int, maximum: Int)
    /// The stream ended with `bufferedBytes` of an unfinished frame.
    case endOfStreamInFrame(bufferedBytes: Int)
    /// The client and server speak different protocol versions.
    case versionMismatch(client: UInt32, server: UInt32)
    /// The server refused the connection for another reason.
    case refused(Refusal)
    /// A message arrived where the conversation expects another.
    case unexpectedMessage(WireMessageType, expected: String)
    /// A request's messages break its sequence (a batch for a request never
    /// opened, more files than it declared, an identifier used twice).
    case requestSequence(request: UInt32, detail: String)

    /// The error in one line.
    public var message: String {
        switch self {
        case .badMagic(let value):
            return "not a sluice frame: magic 0x\(String(value, radix: 16)) instead of 0x\(String(WireFrame.magic, radix: 16))"
        case .unknownType(let type):
            return "unknown message type 0x\(String(type, radix: 16))"
        case .oversizedPayload(let length, let maximum):
            return "frame payload of \(length) bytes exceeds the limit of \(maximum) bytes"
        case .truncated(let message, let field):
            return "truncated \(message) message: it ends inside \(field)"
        case .malformed(let message, let field, let detail):
            return "malformed \(message) message: \(field): \(detail)"
        case .limitExceeded(let limit, let value, let maximum):
            return "\(limit.description) \(value) exceeds the limit of \(maximum)"
        case .endOfStreamInFrame(let bytes):
            return "the connection ended inside a frame (\(bytes) bytes of it received)"
        case .versionMismatch(let client, let server):
            return "protocol version mismatch: the client speaks version \(client), the server version \(server)"
        case .refused(let refusal):
            return "the server refused the connection: \(refusal.message)"
        case .unexpectedMessage(let type, let expected):
            return "unexpected \(type) message (expected \(expected))"
        case .requestSequence(let request, let detail):
            return "request \(request): \(detail)"
        }
    }

    /// The same text as `message`.
    public var description: String { message }
}

extension WireLimit: CustomStringConvertible {
    /// What is counted, for messages ("literal count").
    public var description: String {
        switch self {
        case .frameBytes: return "frame size in bytes"
        case .literals: return "literal count"
        case .literalBytes: return "literal bytes"
        case .filesPerRequest: return "files in one request"
        case .descriptorsPerMessage: return "descriptors in one message"
        case .pathBytes: return "path length in bytes"
        case .textBytes: return "text length in bytes"
        }
    }
}
