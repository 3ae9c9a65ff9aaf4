/// The operation a worker runs on a slot's chunk (slot word 1).
///
/// A struct rather than an enum so that the ring can carry any 32-bit value:
/// an unknown opcode is a fault the worker reports, not a value that cannot
/// be represented.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Bytes, newlines and a 256-bin byte histogram of the chunk.
    public static let count = Opcode(rawValue: 1)
    /// Multi-literal scan (reserved for the scan op).
    public static let scan = Opcode(rawValue: 2)
    /// CRC-32C of the chunk (reserved for the checksum op).
    public static let crc32c = Opcode(rawValue: 3)

    /// Opcodes that the protocol defines. Backends may implement a subset;
    /// a defined but unimplemented opcode faults with `unsupportedOpcode`.
    public static let defined: [Opcode] = [.count, .scan, .crc32c]

    public var isDefined: Bool { Opcode.defined.contains(self) }

    public var name: String {
        switch self {
        case .count: return "count"
        case .scan: return "scan"
        case .crc32c: return "crc32c"
        default: return "opcode(\(rawValue))"
        }
    }

    public var description: String { name }
}
