/// The operation a worker runs on a slot's chunk (slot word 1).
///
/// A struct rather than an enum so that the ring can carry any 32-bit value:
/// an unknown opcode is a fault the worker reports, not a value that cannot
/// be represented.
public struct Opcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 32-bit value in slot word 1.
    public var rawValue: UInt32
    /// Any 32-bit value; one the protocol does not define faults with `unknownOpcode`.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Bytes, newlines and a 256-bin byte histogram of the chunk.
    public static let count = Opcode(rawValue: 1)
    /// Multi-literal scan (reserved for the scan op).
    public static let scan = Opcode(rawValue: 2)
    /// CRC-32C of the chunk (reserved for the checksum op).
    public static let crc32c = Opcode(rawValue: 3)
    /// No operation: the slot goes to DONE with completion 0 and touches no
    /// chunk, result area or tenant region. Every word but the status and
    /// the opcode is ignored, the cancel flag included, so a worker can
    /// finish it from the poll that saw it published (the GPU dispatcher
    /// does). What a queue user sends to measure or ping the queue itself,
    /// like io_uring's IORING_OP_NOP; it adds nothing to `bytesProcessed`.
    public static let nop = Opcode(rawValue: 4)

    /// Opcodes that the protocol defines. Backends may implement a subset;
    /// a defined but unimplemented opcode faults with `unsupportedOpcode`.
    public static let defined: [Opcode] = [.count, .scan, .crc32c, .nop]

    /// Whether the protocol defines this opcode (it is in `defined`).
    public var isDefined: Bool { Opcode.defined.contains(self) }

    /// The opcodes a session gives the operations its user installs
    /// (`OperationSet`): 0x10000 and on, one per operation in the order
    /// given. An opcode of this range that no installed operation has
    /// faults with `operationNotInstalled`.
    public static let userRange: ClosedRange<UInt32> = 0x0001_0000...0x0001_FFFF

    /// The opcode of the `index`th installed user operation (0-based).
    public static func user(_ index: Int) -> Opcode {
        precondition(index >= 0 && index < userRange.count, "user operation \(index) is outside the user range")
        return Opcode(rawValue: userRange.lowerBound + UInt32(index))
    }

    /// Whether the opcode lies in `userRange`.
    public var isUser: Bool { Opcode.userRange.contains(rawValue) }

    /// The index of a user opcode in `userRange` (0 for the first); nil for any other opcode.
    public var userIndex: Int? { isUser ? Int(rawValue - Opcode.userRange.lowerBound) : nil }

    /// Whether a live slot may carry this opcode: a defined one or one of
    /// the user range (installed or not: a worker faults the latter).
    public var isInProtocol: Bool { isDefined || isUser }

    /// Test only: the worker makes an illegal memory access. On the GPU that
    /// loses the CUDA context (CUDA_ERROR_ILLEGAL_ADDRESS is sticky); the CPU
    /// backend's twin marks itself dead the same way. Used to prove recovery.
    package static let testIllegalAddress = Opcode(rawValue: 0x7E57_0001)
    /// Test only: the worker never finishes the slot; it spins until the host
    /// sets the shutdown flag (the watchdog must catch it).
    package static let testHang = Opcode(rawValue: 0x7E57_0002)

    /// Opcodes that exist only to inject faults. They are not in `defined`: a
    /// backend runs them only when it was created with
    /// `BackendConfiguration.faultInjection` (the CUDA kernel gets a launch
    /// flag that no ring word can set); otherwise they fault with
    /// `unknownOpcode` like any other undefined value.
    package static let testOnly: [Opcode] = [.testIllegalAddress, .testHang]

    package var isTestOnly: Bool { Opcode.testOnly.contains(self) }

    /// The opcode's name ("count", "scan", ...), or "opcode(N)" for an undefined value.
    public var name: String {
        switch self {
        case .count: return "count"
        case .scan: return "scan"
        case .crc32c: return "crc32c"
        case .nop: return "nop"
        case .testIllegalAddress: return "test-illegal-address"
        case .testHang: return "test-hang"
        default: return userIndex.map { "user(\($0))" } ?? "opcode(\(rawValue))"
        }
    }

    /// The opcode's `name`.
    public var description: String { name }
}
