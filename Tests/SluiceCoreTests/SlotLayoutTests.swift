import SluiceCore
import Testing

@Suite("Slot layout: SlotWord, SlotPayload, SlotRecord")
struct SlotLayoutTests {
    @Test("SlotWord indices match the table in docs/protocol.md")
    func wordIndicesMatchTheDocumentedTable() {
        let documented: [(SlotWord, Int)] = [
            (.status, 0), (.opcode, 1), (.tenant, 2), (.priority, 3),
            (.bufferOffsetLow, 4), (.bufferOffsetHigh, 5), (.length, 6),
            (.fileOffsetLow, 7), (.fileOffsetHigh, 8), (.chunkIndex, 9),
            (.argument0, 10), (.argument1, 11), (.resultOffset, 12), (.resultCapacity, 13),
            (.hostFlags, 14), (.completion, 15),
        ]
        for (word, index) in documented {
            #expect(word.rawValue == index, "\(word)")
        }
        #expect(SlotWord.allCases.count == 16)
        #expect(Set(SlotWord.allCases.map(\.rawValue)) == Set(0..<16))
        #expect(SlotWord.count == 16)
        #expect(SlotWord.bytesPerSlot == 64)
        #expect(SlotHostFlag.cancelRequested == 1)
        #expect(SlotHostFlag.deviceRegion == 2)
    }

    @Test("the region is host flags bit 1, written with the payload and read back")
    func regionBit() {
        var p = SlotPayload(opcode: .count, bufferOffset: 4096, length: 10, chunkIndex: 1)
        #expect(p.region == .host)
        #expect(p.words[SlotWord.hostFlags.rawValue] == 0)
        p.region = .device
        #expect(p.words[SlotWord.hostFlags.rawValue] == 2)
        // Only the host flags word differs between the two regions.
        var host = p
        host.region = .host
        #expect(zip(p.words, host.words).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset) == [14])
        #expect(SlotPayload(words: p.words) == p)
        #expect(SlotPayload(words: p.words).region == .device)
        // A cancel request next to the region bit reads as both.
        var words = p.words
        words[SlotWord.hostFlags.rawValue] |= SlotHostFlag.cancelRequested
        #expect(SlotPayload(words: words).region == .device)
        let record = SlotRecord(status: .published, payload: p, hostFlags: SlotHostFlag.cancelRequested)
        #expect(record.words[SlotWord.hostFlags.rawValue] == 3)
        // Other bits of the word do not select the device region.
        words[SlotWord.hostFlags.rawValue] = 0xFFFF_FFFD
        #expect(SlotPayload(words: words).region == .host)
    }

    @Test("each payload field lands at its documented word")
    func payloadFieldsLandAtDocumentedWords() {
        let p = SlotPayload(
            opcode: Opcode(rawValue: 0xA1A1_0001), tenant: 0xB2B2_0002, priority: 0xC3C3_0003,
            bufferOffset: 0x0123_4567_89AB_CDEF, length: 0xD4D4_0006,
            fileOffset: 0xFEDC_BA98_7654_3210, chunkIndex: 0xE5E5_0009,
            arguments: (0xF6F6_000A, 0x0707_000B), resultOffset: 0x1818_000C, resultCapacity: 0x2929_000D)
        // Written out by hand from the table: status, host flags and completion are zero.
        let expected: [UInt32] = [
            0,  // 0 status
            0xA1A1_0001,  // 1 opcode
            0xB2B2_0002,  // 2 tenant
            0xC3C3_0003,  // 3 priority
            0x89AB_CDEF,  // 4 bufferOffset lo
            0x0123_4567,  // 5 bufferOffset hi
            0xD4D4_0006,  // 6 length
            0x7654_3210,  // 7 fileOffset lo
            0xFEDC_BA98,  // 8 fileOffset hi
            0xE5E5_0009,  // 9 chunkIndex
            0xF6F6_000A,  // 10 argument0
            0x0707_000B,  // 11 argument1
            0x1818_000C,  // 12 resultOffset
            0x2929_000D,  // 13 resultCapacity
            0,  // 14 hostFlags
            0,  // 15 completion
        ]
        #expect(p.words == expected)
    }

    @Test(
        "64-bit offsets split into lo, hi words",
        arguments: [
            (UInt64(0), UInt32(0), UInt32(0)),
            (0xFFFF_FFFF, 0xFFFF_FFFF, 0),
            (0x1_0000_0000, 0, 1),
            (0x1_0000_0001, 1, 1),
            (0x8000_0000_0000_0000, 0, 0x8000_0000),
            (UInt64.max, 0xFFFF_FFFF, 0xFFFF_FFFF),
            (0x0000_0012_3456_789A, 0x3456_789A, 0x12),
        ] as [(UInt64, UInt32, UInt32)])
    func offsetsSplitLowHigh(value: UInt64, lo: UInt32, hi: UInt32) {
        let p = SlotPayload(opcode: .count, bufferOffset: value, length: 0, fileOffset: value)
        let w = p.words
        #expect(w[4] == lo)
        #expect(w[5] == hi)
        #expect(w[7] == lo)
        #expect(w[8] == hi)
        // And back: the two halves are joined in the right order.
        var words = [UInt32](repeating: 0, count: 16)
        words[4] = lo
        words[5] = hi
        words[7] = hi  // swapped on purpose for fileOffset: hi in the lo word
        words[8] = lo
        let back = SlotPayload(words: words)
        #expect(back.bufferOffset == value)
        #expect(back.fileOffset == UInt64(hi) | UInt64(lo) << 32)
    }

    @Test("words -> payload reads each field from its documented word")
    func payloadFromWordsReadsEachField() {
        let words: [UInt32] = (0..<16).map { 0x1000_0000 &* UInt32($0) &+ UInt32($0) &+ 0x77 }
        let p = SlotPayload(words: words)
        #expect(p.opcode.rawValue == words[1])
        #expect(p.tenant == words[2])
        #expect(p.priority == words[3])
        #expect(p.bufferOffset == UInt64(words[4]) + UInt64(words[5]) * 0x1_0000_0000)
        #expect(p.length == words[6])
        #expect(p.fileOffset == UInt64(words[7]) + UInt64(words[8]) * 0x1_0000_0000)
        #expect(p.chunkIndex == words[9])
        #expect(p.arguments.0 == words[10])
        #expect(p.arguments.1 == words[11])
        #expect(p.resultOffset == words[12])
        #expect(p.resultCapacity == words[13])
    }

    @Test("payload init(words:) accepts any random-access collection, e.g. an ArraySlice")
    func payloadFromSlice() {
        let backing: [UInt32] = [0xDEAD, 0xBEEF] + (0..<16).map { UInt32($0) * 3 } + [0xF00D]
        let slice = backing[2..<18]
        let p = SlotPayload(words: slice)
        #expect(p.opcode.rawValue == 3)
        #expect(p.tenant == 6)
        #expect(p.resultCapacity == 39)
        #expect(p.bufferOffset == 12 | 15 << 32)
    }

    @Test("random payloads round-trip words -> payload -> words (seeded)")
    func randomRoundTrip() {
        var rng = SplitMix64(seed: 0x5_11CE)
        for _ in 0..<2_000 {
            var words = (0..<16).map { _ in rng.u32() }
            let payload = SlotPayload(words: words)
            // status and completion are not payload: they come back zero; of
            // the host flags only the region bit (bit 1) is payload.
            words[0] = 0
            words[14] &= SlotHostFlag.deviceRegion
            words[15] = 0
            #expect(payload.words == words)
            // and payload -> words -> payload is the identity
            #expect(SlotPayload(words: payload.words) == payload)
        }
    }

    @Test("random payloads built field by field round-trip payload -> words -> payload (seeded)")
    func randomFieldRoundTrip() {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2_000 {
            let p = SlotPayload(
                opcode: Opcode(rawValue: rng.u32()), tenant: rng.u32(), priority: rng.u32(),
                bufferOffset: rng.u64(), length: rng.u32(), fileOffset: rng.u64(), chunkIndex: rng.u32(),
                arguments: (rng.u32(), rng.u32()), resultOffset: rng.u32(), resultCapacity: rng.u32())
            let back = SlotPayload(words: p.words)
            #expect(back.opcode == p.opcode)
            #expect(back.tenant == p.tenant)
            #expect(back.priority == p.priority)
            #expect(back.bufferOffset == p.bufferOffset)
            #expect(back.length == p.length)
            #expect(back.fileOffset == p.fileOffset)
            #expect(back.chunkIndex == p.chunkIndex)
            #expect(back.arguments.0 == p.arguments.0)
            #expect(back.arguments.1 == p.arguments.1)
            #expect(back.resultOffset == p.resultOffset)
            #expect(back.resultCapacity == p.resultCapacity)
        }
    }

    @Test("payload equality and hashing see every field, including both arguments")
    func payloadEqualityCoversEveryField() {
        let base = SlotPayload(
            opcode: .count, tenant: 1, priority: 2, bufferOffset: 3, length: 4, fileOffset: 5, chunkIndex: 6,
            arguments: (7, 8), resultOffset: 9, resultCapacity: 10)
        var variants: [SlotPayload] = []
        func vary(_ change: (inout SlotPayload) -> Void) {
            var p = base
            change(&p)
            variants.append(p)
        }
        vary { $0.opcode = .scan }
        vary { $0.tenant = 100 }
        vary { $0.priority = 100 }
        vary { $0.bufferOffset = 3 | 1 << 32 }
        vary { $0.length = 100 }
        vary { $0.fileOffset = 5 | 1 << 40 }
        vary { $0.chunkIndex = 100 }
        vary { $0.arguments.0 = 100 }
        vary { $0.arguments.1 = 100 }
        vary { $0.resultOffset = 100 }
        vary { $0.resultCapacity = 100 }
        for v in variants { #expect(v != base) }
        #expect(Set(variants + [base]).count == variants.count + 1)
        var same = base
        same.arguments = (7, 8)
        #expect(same == base)
        #expect(same.hashValue == base.hashValue)
    }

    @Test("SlotRecord puts status, host flags and completion at words 0, 14, 15")
    func recordWords() {
        let payload = SlotPayload(opcode: .crc32c, bufferOffset: 0x1_0000_0010, length: 99)
        let r = SlotRecord(status: .faulted, payload: payload, hostFlags: 1, completion: 5)
        let w = r.words
        #expect(w[0] == 4)  // FAULTED
        #expect(w[1] == 3)  // crc32c
        #expect(w[4] == 0x10)
        #expect(w[5] == 1)
        #expect(w[6] == 99)
        #expect(w[14] == 1)
        #expect(w[15] == 5)
        #expect(w.count == 16)
        #expect(r.fault == .resultOverflow)
    }

    @Test("SlotRecord.fault is the code only for FAULTED with a known code")
    func recordFault() {
        let p = SlotPayload(opcode: .count, bufferOffset: 0, length: 0)
        for status in SlotStatus.allCases where status != .faulted {
            #expect(SlotRecord(status: status, payload: p, completion: 3).fault == nil)
        }
        for code in FaultCode.allCases {
            #expect(SlotRecord(status: .faulted, payload: p, completion: code.rawValue).fault == code)
        }
        #expect(SlotRecord(status: .faulted, payload: p, completion: 0).fault == nil)
        #expect(SlotRecord(status: .faulted, payload: p, completion: 10).fault == nil)
    }

    @Test("random records round-trip through their 16 words (seeded)")
    func randomRecordRoundTrip() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<1_000 {
            var words = (0..<16).map { _ in rng.u32() }
            words[0] = UInt32.random(in: 0...5, using: &rng)
            let record = SlotRecord(
                status: SlotStatus(rawValue: words[0])!, payload: SlotPayload(words: words),
                hostFlags: words[14], completion: words[15])
            #expect(record.words == words)
        }
    }

    @Test("opcode and fault code values match docs/protocol.md")
    func opcodeAndFaultValues() {
        #expect(Opcode.count.rawValue == 1)
        #expect(Opcode.scan.rawValue == 2)
        #expect(Opcode.crc32c.rawValue == 3)
        #expect(Opcode.defined.map(\.rawValue) == [1, 2, 3, 4])
        #expect(Opcode(rawValue: 0).isDefined == false)
        #expect(Opcode(rawValue: 5).isDefined == false)
        #expect(Opcode(rawValue: 0x1_0001).isDefined == false)
        #expect(Opcode.count.name == "count")
        #expect(Opcode(rawValue: 4242).name == "opcode(4242)")

        // The user range: 0x10000...0x1FFFF, accepted in a ring, not "defined".
        #expect(Opcode.user(0).rawValue == 0x1_0000 && Opcode.user(65535).rawValue == 0x1_FFFF)
        #expect(Opcode(rawValue: 0x1_0001).isUser && Opcode(rawValue: 0x1_0001).userIndex == 1)
        #expect(!Opcode(rawValue: 0xFFFF).isUser && !Opcode(rawValue: 0x2_0000).isUser && !Opcode.count.isUser)
        #expect(Opcode(rawValue: 0x1_0002).isInProtocol && Opcode.nop.isInProtocol)
        #expect(!Opcode(rawValue: 0x2_0000).isInProtocol && !Opcode.testHang.isInProtocol)
        #expect(Opcode.user(3).name == "user(3)")
        let documented: [(FaultCode, UInt32)] = [
            (.unknownOpcode, 1), (.unsupportedOpcode, 2), (.bufferOutOfBounds, 3), (.resultOutOfBounds, 4),
            (.resultOverflow, 5), (.badArguments, 6), (.tenantViolation, 7), (.regionUnavailable, 8),
            (.operationNotInstalled, 9),
        ]
        for (code, raw) in documented { #expect(code.rawValue == raw) }
        #expect(FaultCode.allCases.count == 9)
        #expect(FaultCode(rawValue: 0) == nil)
        #expect(FaultCode(rawValue: 10) == nil)
        for code in FaultCode.allCases { #expect(!code.description.isEmpty) }
    }
}
