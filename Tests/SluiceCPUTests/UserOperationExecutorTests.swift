import SluiceCPU
import SluiceCore
import Testing

/// The CPU executor's side of user operations: the opcode check, the region
/// checks before the operation, the zeroed and checked result area.
@Suite struct UserOperationExecutorTests {
    /// Sums the chunk's own bytes into word 0 and writes the file offset's low word into word 1.
    static let summing = InstalledOperation(
        opcode: .user(0), name: "summing", cudaFunction: "summing", cudaSource: "", resultWords: 3
    ) { chunk, results throws(OperationFault) in
        try results.write(chunk.ownBytes.reduce(0) { $0 &+ UInt32($1) }, at: 0)
        try results.write(UInt32(truncatingIfNeeded: chunk.fileOffset), at: 1)
        try results.add(chunk.argument1, at: 2)
    }

    /// Writes word `argument1` (past its 4 words when argument1 >= 4).
    static let writesAt = InstalledOperation(
        opcode: .user(1), name: "writes-at", cudaFunction: "writes_at", cudaSource: "", resultWords: 4
    ) { chunk, results throws(OperationFault) in
        try results.write(0xAAAA_AAAA, at: Int(chunk.argument1))
    }

    /// Faults its slot whenever the chunk is empty.
    static let refusesEmpty = InstalledOperation(
        opcode: .user(2), name: "refuses-empty", cudaFunction: "refuses_empty", cudaSource: "", resultWords: 1
    ) { chunk, _ throws(OperationFault) in
        if chunk.bytes.isEmpty { throw .badArguments }
    }

    /// Runs `payload` on a 4096-byte data region of bytes i % 251 and a
    /// 64-word result region of canaries; returns the outcome and the results.
    static func run(_ payload: SlotPayload, operations: OperationSet) -> (SlotExecutor.Outcome, [UInt32]) {
        let data = (0..<4096).map { UInt8($0 % 251) }
        var results = [UInt32](repeating: 0xC0FF_EE00, count: 64)
        let outcome = data.withUnsafeBytes { bytes in
            results.withUnsafeMutableBufferPointer { area in
                SlotExecutor(data: bytes, results: area, operations: operations).execute(payload)
            }
        }
        return (outcome, results)
    }

    @Test("an installed operation runs its reference on the chunk; its area is zeroed first and completion is its word count")
    func runsInstalledOperation() throws {
        let ops = try OperationSet([Self.summing, Self.writesAt, Self.refusesEmpty])
        let p = SlotPayload(
            opcode: .user(0), bufferOffset: 100, length: 50, fileOffset: 0x1_2345_6000, arguments: (40, 7),
            resultOffset: 8, resultCapacity: 5)
        let (outcome, results) = Self.run(p, operations: ops)
        #expect(outcome == .done(resultWords: 3))
        // Own bytes are the first argument0 = 40 of the chunk: data[100..<140].
        let expected = (100..<140).reduce(UInt32(0)) { $0 + UInt32($1 % 251) }
        #expect(Array(results[8..<11]) == [expected, 0x2345_6000, 7])   // word 2 was zeroed, then 7 added
        #expect(results[11] == 0xC0FF_EE00 && results[7] == 0xC0FF_EE00)   // nothing past the declared words
    }

    @Test("a user opcode that is not installed faults operationNotInstalled before any region check")
    func notInstalled() throws {
        let ops = try OperationSet([Self.summing])
        for opcode in [Opcode.user(1), .user(65535)] {
            // Out-of-bounds buffer too: the opcode is checked first.
            let p = SlotPayload(opcode: opcode, bufferOffset: 1 << 40, length: 1, resultOffset: 0, resultCapacity: 4)
            let (outcome, results) = Self.run(p, operations: ops)
            #expect(outcome == .fault(.operationNotInstalled))
            #expect(results.allSatisfy { $0 == 0xC0FF_EE00 })
        }
        let (none, _) = Self.run(SlotPayload(opcode: .user(0), bufferOffset: 0, length: 1, resultCapacity: 4), operations: OperationSet())
        #expect(none == .fault(.operationNotInstalled))
        // Outside the user range an undefined opcode is still unknownOpcode.
        let (outside, _) = Self.run(SlotPayload(opcode: Opcode(rawValue: 0x2_0000), bufferOffset: 0, length: 1), operations: ops)
        #expect(outside == .fault(.unknownOpcode))
    }

    @Test("region, result and tenant checks run before the operation, as for the built-ins")
    func regionChecksFirst() throws {
        let ops = try OperationSet([Self.summing])
        let cases: [(SlotPayload, FaultCode)] = [
            (SlotPayload(opcode: .user(0), bufferOffset: 4000, length: 97, resultOffset: 0, resultCapacity: 3), .bufferOutOfBounds),
            (SlotPayload(opcode: .user(0), bufferOffset: 0, length: 1, resultOffset: 62, resultCapacity: 3), .resultOutOfBounds),
            (SlotPayload(opcode: .user(0), bufferOffset: 0, length: 1, resultOffset: 0, resultCapacity: 2), .resultOverflow),
            (SlotPayload(opcode: .user(0), bufferOffset: 0, length: 1, resultOffset: 0, resultCapacity: 3, region: .device), .regionUnavailable),
        ]
        for (p, code) in cases {
            let (outcome, results) = Self.run(p, operations: ops)
            #expect(outcome == .fault(code))
            #expect(results.allSatisfy { $0 == 0xC0FF_EE00 })
        }
    }

    @Test("a write at or past the declared words faults resultOverflow and writes nothing outside the area",
          arguments: [0, 3, 4, 5, 1000] as [UInt32])
    func checkedWriter(index: UInt32) throws {
        let ops = try OperationSet([Self.summing, Self.writesAt])
        // The slot's area is larger than the declared 4 words: the capacity is the declaration.
        let p = SlotPayload(opcode: .user(1), bufferOffset: 0, length: 16, arguments: (16, index), resultOffset: 20, resultCapacity: 40)
        let (outcome, results) = Self.run(p, operations: ops)
        if index < 4 {
            #expect(outcome == .done(resultWords: 4))
            #expect(results[20 + Int(index)] == 0xAAAA_AAAA)
        } else {
            #expect(outcome == .fault(.resultOverflow))
        }
        for i in results.indices where !(20..<24).contains(i) { #expect(results[i] == 0xC0FF_EE00) }
    }

    @Test("an operation that refuses its input faults badArguments")
    func operationFault() throws {
        let ops = try OperationSet([Self.summing, Self.writesAt, Self.refusesEmpty])
        let (outcome, _) = Self.run(SlotPayload(opcode: .user(2), bufferOffset: 0, length: 0, resultCapacity: 1), operations: ops)
        #expect(outcome == .fault(.badArguments))
        let (fine, _) = Self.run(SlotPayload(opcode: .user(2), bufferOffset: 0, length: 1, resultCapacity: 1), operations: ops)
        #expect(fine == .done(resultWords: 1))
    }

    @Test("an operation set refuses opcodes out of order, bad names, duplicates and result words out of range")
    func setValidation() {
        func refused(_ ops: [InstalledOperation]) -> Bool {
            do { _ = try OperationSet(ops); return false } catch { return true }
        }
        var wrongOpcode = Self.summing
        wrongOpcode.opcode = .user(1)
        #expect(refused([wrongOpcode]))
        var badName = Self.summing
        badName.name = "no spaces"
        #expect(refused([badName]))
        var badFunction = Self.summing
        badFunction.cudaFunction = "sluice_reserved"
        #expect(refused([badFunction]))
        var same = Self.writesAt
        same.name = "summing"
        #expect(refused([Self.summing, same]))
        var zero = Self.summing
        zero.resultWords = 0
        #expect(refused([zero]))
        #expect(!refused([Self.summing, Self.writesAt]))
    }
}
