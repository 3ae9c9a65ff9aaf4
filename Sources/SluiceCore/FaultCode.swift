/// Why a worker marked a slot FAULTED (slot word 15 when the status is FAULTED).
///
/// Values are part of the wire protocol shared with the GPU kernel source;
/// `docs/protocol.md` lists them.
public enum FaultCode: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// The opcode is not one the protocol defines.
    case unknownOpcode = 1
    /// The opcode is defined but this backend does not implement it.
    case unsupportedOpcode = 2
    /// `bufferOffset + length` lies outside the data region.
    case bufferOutOfBounds = 3
    /// The result area named by the slot lies outside the result region.
    case resultOutOfBounds = 4
    /// The result area is too small for what the opcode writes.
    case resultOverflow = 5
    /// The opcode's own arguments are invalid (for example a zero length where one is required).
    case badArguments = 6
    /// The slot's tenant may not touch the memory it names.
    case tenantViolation = 7
    /// The slot names a memory region this backend does not have (the device
    /// ingest region on the CPU backend, or on a GPU started without one).
    case regionUnavailable = 8
    /// The opcode is in the user range (`Opcode.userRange`) but no operation
    /// with it was installed in this backend.
    case operationNotInstalled = 9

    /// The fault in words, for messages ("result area too small", ...).
    public var description: String {
        switch self {
        case .unknownOpcode: return "unknown opcode"
        case .unsupportedOpcode: return "opcode not supported by this backend"
        case .bufferOutOfBounds: return "chunk lies outside the data region"
        case .resultOutOfBounds: return "result area lies outside the result region"
        case .resultOverflow: return "result area too small"
        case .badArguments: return "invalid opcode arguments"
        case .tenantViolation: return "tenant may not touch this memory"
        case .regionUnavailable: return "chunk is in a memory region this backend does not have"
        case .operationNotInstalled: return "no user operation with this opcode is installed"
        }
    }
}
