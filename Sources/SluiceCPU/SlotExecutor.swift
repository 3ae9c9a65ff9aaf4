import SluiceCore
import SluiceOps

/// Runs one claimed slot on the CPU: checks every argument against the
/// regions before touching memory, then runs the opcode. The GPU kernel
/// performs the same checks in the same order, so both fault alike.
public struct SlotExecutor: @unchecked Sendable {
    public enum Outcome: Equatable, Sendable {
        case done(resultWords: UInt32)
        case fault(FaultCode)
    }

    public let data: UnsafeRawBufferPointer
    public let results: UnsafeMutableBufferPointer<UInt32>

    public init(data: UnsafeRawBufferPointer, results: UnsafeMutableBufferPointer<UInt32>) {
        self.data = data
        self.results = results
    }

    /// Opcodes this executor implements.
    public static let supported: Set<Opcode> = [.count]

    public func execute(_ p: SlotPayload) -> Outcome {
        guard p.opcode.isDefined else { return .fault(.unknownOpcode) }
        guard SlotExecutor.supported.contains(p.opcode) else { return .fault(.unsupportedOpcode) }
        // Compare in 64 bits so that offset + length cannot wrap.
        guard p.bufferOffset <= UInt64(data.count), UInt64(p.length) <= UInt64(data.count) - p.bufferOffset else {
            return .fault(.bufferOutOfBounds)
        }
        guard UInt64(p.resultOffset) + UInt64(p.resultCapacity) <= UInt64(results.count) else {
            return .fault(.resultOutOfBounds)
        }
        let chunk = UnsafeRawBufferPointer(rebasing: data[Int(p.bufferOffset)..<(Int(p.bufferOffset) + Int(p.length))])
        let area = UnsafeMutableBufferPointer(
            rebasing: results[Int(p.resultOffset)..<(Int(p.resultOffset) + Int(p.resultCapacity))])
        switch p.opcode {
        case .count:
            guard area.count >= CountOp.resultWords else { return .fault(.resultOverflow) }
            CountOp.run(chunk, into: area)
            return .done(resultWords: UInt32(CountOp.resultWords))
        default:
            return .fault(.unsupportedOpcode)
        }
    }
}
