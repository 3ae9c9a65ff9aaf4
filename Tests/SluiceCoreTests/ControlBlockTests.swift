import SluiceCore
import Testing

@Suite("Control block and fault records")
struct ControlBlockTests {
    /// A valid set of 16 control words, written by hand.
    static func validWords() -> [UInt64] {
        var w = [UInt64](repeating: 0, count: 16)
        w[Doc.cMagic] = 0x534C_5549_4345_0002
        w[Doc.cSlotCount] = 8
        return w
    }

    @Test("ControlWord indices match the table in docs/protocol.md")
    func controlWordIndices() {
        let documented: [(ControlWord, Int)] = [
            (.magic, 0), (.shutdown, 1), (.epoch, 2), (.slotsDone, 3), (.slotsFaulted, 4),
            (.slotsCancelled, 5), (.bytesProcessed, 6), (.lastFault, 7), (.workersRunning, 8), (.slotCount, 9),
            (.scanDirectoryAddress, 10), (.scanDirectoryEntries, 11), (.tenantTableAddress, 12), (.tenantTableWords, 13),
        ]
        for (word, index) in documented { #expect(word.rawValue == index, "\(word)") }
        #expect(ControlWord.allCases.count == documented.count)
        #expect(ControlWord.count == 16)
        #expect(ControlWord.byteCount == 128)
        #expect(ControlBlock.magic == 0x534C_5549_4345_0002)
    }

    @Test("the magic spells SLUICE and version 2 in little-endian bytes")
    func magicBytes() {
        var b = [UInt8](repeating: 0, count: 8)
        writeLE64(&b, 0, ControlBlock.magic)
        // bytes 7..2 are "SLUICE", bytes 1..0 the version 0x0002
        #expect(b == [0x02, 0x00, 0x45, 0x43, 0x49, 0x55, 0x4C, 0x53])
        #expect(String(decoding: b[2...].reversed(), as: UTF8.self) == "SLUICE")
    }

    @Test("encode puts every field at its documented word, reserved words zero")
    func encodeLayout() {
        let cb = ControlBlock(
            shutdown: true, epoch: 0x1111, slotsDone: 0x2222, slotsFaulted: 0x3333, slotsCancelled: 0x4444,
            bytesProcessed: 0x5555_0000_0000, lastFault: FaultRecord(slot: 5, code: .resultOverflow, opcodeLow16: 0x1_2345),
            workersRunning: 0x7777, slotCount: 0x8888, scanDirectoryAddress: 0x9999_0000_1000, scanDirectoryEntries: 0xAAAA,
            tenantTableAddress: 0xBBBB_0000_2000, tenantTableWords: 0xCCCC)
        let expected: [UInt64] = [
            0x534C_5549_4345_0002,  // 0 magic
            1,  // 1 shutdown
            0x1111,  // 2 epoch
            0x2222,  // 3 slotsDone
            0x3333,  // 4 slotsFaulted
            0x4444,  // 5 slotsCancelled
            0x5555_0000_0000,  // 6 bytesProcessed
            0x0000_0006_0005_2345,  // 7 lastFault: (5 + 1) << 32 | 5 << 16 | 0x2345
            0x7777,  // 8 workersRunning
            0x8888,  // 9 slotCount
            0x9999_0000_1000,  // 10 scanDirectoryAddress
            0xAAAA,  // 11 scanDirectoryEntries
            0xBBBB_0000_2000,  // 12 tenantTableAddress
            0xCCCC,  // 13 tenantTableWords
            0, 0,  // 14-15 reserved
        ]
        #expect(cb.words == expected)

        let quiet = ControlBlock()
        #expect(quiet.words == [0x534C_5549_4345_0002] + [UInt64](repeating: 0, count: 15))
    }

    @Test("decode reads every field from its documented word")
    func decodeLayout() throws {
        var w = Self.validWords()
        w[Doc.cShutdown] = 1
        w[Doc.cEpoch] = 10
        w[Doc.cSlotsDone] = 11
        w[Doc.cSlotsFaulted] = 12
        w[Doc.cSlotsCancelled] = 13
        w[Doc.cBytesProcessed] = 14
        w[Doc.cLastFault] = 0x0000_0004_0006_0003  // slot 3, badArguments, crc32c
        w[Doc.cWorkersRunning] = 15
        w[Doc.cSlotCount] = 16
        let cb = try ControlBlock(words: w)
        #expect(cb.shutdown == true)
        #expect(cb.epoch == 10)
        #expect(cb.slotsDone == 11)
        #expect(cb.slotsFaulted == 12)
        #expect(cb.slotsCancelled == 13)
        #expect(cb.bytesProcessed == 14)
        #expect(cb.lastFault == FaultRecord(slot: 3, code: .badArguments, opcodeLow16: 3))
        #expect(cb.workersRunning == 15)
        #expect(cb.slotCount == 16)

        w[Doc.cShutdown] = 0
        w[Doc.cLastFault] = 0
        let quiet = try ControlBlock(words: w)
        #expect(quiet.shutdown == false)
        #expect(quiet.lastFault == nil)
    }

    @Test("random control blocks round-trip encode -> decode (seeded)")
    func randomRoundTrip() throws {
        var rng = SplitMix64(seed: 0xC0_47_20_1)
        for _ in 0..<2_000 {
            let fault: FaultRecord? =
                Bool.random(using: &rng)
                ? FaultRecord(
                    slot: Int.random(in: 0..<(1 << 31), using: &rng),
                    code: FaultCode.allCases.randomElement(using: &rng)!, opcodeLow16: rng.u32())
                : nil
            let cb = ControlBlock(
                shutdown: Bool.random(using: &rng), epoch: rng.u64(), slotsDone: rng.u64(), slotsFaulted: rng.u64(),
                slotsCancelled: rng.u64(), bytesProcessed: rng.u64(), lastFault: fault, workersRunning: rng.u64(),
                slotCount: rng.u64())
            let words = cb.words
            #expect(words.count == 16)
            #expect(words[10...].allSatisfy { $0 == 0 })
            let back = try ControlBlock(words: words)
            #expect(back == cb)
            #expect(back.words == words)
        }
    }

    @Test("decode rejects a wrong number of words", arguments: [0, 1, 10, 15, 17, 32])
    func rejectsWrongLength(count: Int) {
        var w = Self.validWords()
        if count < 16 { w = Array(w.prefix(count)) } else { w += [UInt64](repeating: 0, count: count - 16) }
        let error = thrown { try ControlBlock(words: w) }
        guard case .malformed(let what, let detail)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(what == "control block")
        #expect(detail.contains("16"))
        #expect(detail.contains("got \(count)"))
    }

    @Test(
        "decode rejects a wrong magic (version 1, the table-address layout, included)",
        arguments: [0, 1, 0x534C_5549_4345_0000, 0x534C_5549_4345_0001, 0x534C_5549_4345_0003, 0x0100_4543_4955_4C53, UInt64.max] as [UInt64])
    func rejectsWrongMagic(magic: UInt64) {
        var w = Self.validWords()
        w[Doc.cMagic] = magic
        let error = thrown { try ControlBlock(words: w) }
        guard case .malformed(let what, let detail)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(what == "control block")
        #expect(detail.contains(String(magic, radix: 16)))
        #expect(detail.contains("534c554943450002"))
    }

    @Test("decode rejects a shutdown flag of 2 or more", arguments: [2, 3, 0x100, 1 << 63, UInt64.max] as [UInt64])
    func rejectsShutdownFlag(flag: UInt64) {
        var w = Self.validWords()
        w[Doc.cShutdown] = flag
        let error = thrown { try ControlBlock(words: w) }
        guard case .malformed(let what, let detail)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(what == "control block")
        #expect(detail.contains("\(flag)"))
    }

    @Test(
        "decode rejects a last fault with an unknown code",
        arguments: [
            (0x0000_0001_0000_0001, 0),  // code 0
            (0x0000_0001_000A_0001, 10),  // one past the last code
            (0x0000_0002_0040_0003, 0x40),
            (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF),
        ] as [(UInt64, Int)])
    func rejectsUnknownFaultCode(packed: UInt64, code: Int) {
        var w = Self.validWords()
        w[Doc.cLastFault] = packed
        let error = thrown { try ControlBlock(words: w) }
        guard case .malformed(let what, let detail)? = error else {
            Issue.record("expected .malformed, got \(String(describing: error))")
            return
        }
        #expect(what == "control block")
        #expect(detail.contains("\(code)"))
    }

    @Test("FaultRecord packs as (slot + 1) << 32 | code << 16 | opcode & 0xFFFF")
    func faultRecordPacking() throws {
        let cases: [(FaultRecord, UInt64)] = [
            (FaultRecord(slot: 0, code: .unknownOpcode, opcodeLow16: 9), 0x0000_0001_0001_0009),
            (FaultRecord(slot: 5, code: .resultOverflow, opcodeLow16: 0x1_2345), 0x0000_0006_0005_2345),
            (FaultRecord(slot: 255, code: .tenantViolation, opcodeLow16: 0xFFFF), 0x0000_0100_0007_FFFF),
            (FaultRecord(slot: 0xFFFF_FFFE, code: .bufferOutOfBounds, opcodeLow16: 0), 0xFFFF_FFFF_0003_0000),
            (FaultRecord(slot: 1 << 20, code: .unsupportedOpcode, opcodeLow16: 0xABCD_0002), 0x0010_0001_0002_0002),
        ]
        for (record, packed) in cases {
            #expect(record.packed == packed, "\(record)")
            #expect(try FaultRecord(packed: packed) == record)
        }
        // Every code lands in bits 16...31.
        for code in FaultCode.allCases {
            let r = FaultRecord(slot: 1, code: code, opcodeLow16: 0)
            #expect(r.packed == 2 << 32 | UInt64(code.rawValue) << 16)
        }
        #expect(FaultRecord(slot: 0, code: .badArguments, opcodeLow16: 0x7_0001).opcodeLow16 == 1)
        #expect(try FaultRecord(packed: 0) == nil)
        let described = FaultRecord(slot: 12, code: .resultOverflow, opcodeLow16: 1).description
        #expect(described.contains("slot 12"))
        #expect(described.contains(FaultCode.resultOverflow.description))
    }

    // MARK: defect: a last-fault word whose slot field is zero

    /// `FaultRecord(packed:)` only treats the all-zero word as "no fault". A non-zero word whose
    /// slot field (bits 32...63) is 0 decodes to `slot == -1`; `packed` then evaluates
    /// `UInt64(-1)` and traps. So a corrupt control block (or ring image) is accepted by the
    /// decoder and crashes the process when it is re-encoded.
    @Test("a last fault whose slot field is 0 is rejected by the decoder")
    func lastFaultWithZeroSlotFieldIsRejected() {
        var w = Self.validWords()
        w[Doc.cLastFault] = 0x0000_0000_0003_0001  // slot field 0, bufferOutOfBounds, count
        let error = thrown { try ControlBlock(words: w) }
        guard case .malformed(let what, _)? = error else {
            Issue.record("decoded to \(String(describing: try? ControlBlock(words: w).lastFault))")
            return
        }
        #expect(what == "control block")
    }

    @Test("re-encoding whatever the decoder accepted never traps")
    func reencodingADecodedBlockNeverTraps() async {
        await #expect(processExitsWith: .success) {
            var w = [UInt64](repeating: 0, count: 16)
            w[0] = 0x534C_5549_4345_0002
            w[7] = 0x0000_0000_0003_0001
            if let cb = try? ControlBlock(words: w) { _ = cb.words }
        }
    }
}
