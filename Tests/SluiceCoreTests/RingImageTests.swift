import SluiceCore
import Testing

@Suite("RingImage encode/decode")
struct RingImageTests {
    /// 2 slots, 3 result words: control 0..<128, padding 128..<256, slots 256..<384,
    /// padding 384..<512, results 512..<524.
    static let smallGeometry = try! RingGeometry(slotCount: 2, resultWordsPerSlot: 3)

    static func smallImage() -> RingImage {
        RingImage(
            geometry: smallGeometry,
            control: ControlBlock(
                shutdown: false, epoch: 9, slotsDone: 7, slotsFaulted: 1, slotsCancelled: 1, bytesProcessed: 0x1_0000_0002,
                lastFault: FaultRecord(slot: 1, code: .bufferOutOfBounds, opcodeLow16: 2), workersRunning: 4, slotCount: 2),
            slots: [
                SlotRecord(
                    status: .done,
                    payload: SlotPayload(
                        opcode: .count, tenant: 5, priority: 6, bufferOffset: 0x3_0000_1000, length: 4096,
                        fileOffset: 0x10_0000_0000, chunkIndex: 11, arguments: (12, 13), resultOffset: 0, resultCapacity: 3),
                    hostFlags: 0, completion: 3),
                SlotRecord(
                    status: .faulted,
                    payload: SlotPayload(opcode: .scan, bufferOffset: 0xFFFF_FFFF_FFFF_F000, length: 0x2000, resultOffset: 3, resultCapacity: 3),
                    hostFlags: 1, completion: 3),
            ],
            results: [0xAABB_CCDD, 1, 0xFFFF_FFFF, 0, 0, 0x8000_0000])
    }

    /// The same image, laid out by hand from docs/protocol.md.
    static func smallImageBytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 536)
        // control block
        writeLE64(&b, 0, 0x534C_5549_4345_0002)
        writeLE64(&b, 16, 9)
        writeLE64(&b, 24, 7)
        writeLE64(&b, 32, 1)
        writeLE64(&b, 40, 1)
        writeLE64(&b, 48, 0x1_0000_0002)
        writeLE64(&b, 56, 0x0000_0002_0003_0002)  // slot 1, code 3, opcode 2
        writeLE64(&b, 64, 4)
        writeLE64(&b, 72, 2)
        // slot 0 at 256
        let s0: [UInt32] = [3, 1, 5, 6, 0x1000, 3, 4096, 0, 0x10, 11, 12, 13, 0, 3, 0, 3]
        for (i, w) in s0.enumerated() { writeLE32(&b, 256 + 4 * i, w) }
        // slot 1 at 320
        let s1: [UInt32] = [4, 2, 0, 0, 0xFFFF_F000, 0xFFFF_FFFF, 0x2000, 0, 0, 0, 0, 0, 3, 3, 1, 3]
        for (i, w) in s1.enumerated() { writeLE32(&b, 320 + 4 * i, w) }
        // results at 512
        let results: [UInt32] = [0xAABB_CCDD, 1, 0xFFFF_FFFF, 0, 0, 0x8000_0000]
        for (i, w) in results.enumerated() { writeLE32(&b, 512 + 4 * i, w) }
        return b
    }

    static func expectMalformed(
        _ bytes: [UInt8], _ geometry: RingGeometry, what: String, detailContains: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let error = thrown { try RingImage.decode(bytes, geometry: geometry) }
        guard case .malformed(let w, let detail)? = error else {
            Issue.record("expected .malformed(\(what)), got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
        #expect(w == what, sourceLocation: sourceLocation)
        for fragment in detailContains {
            #expect(detail.contains(fragment), "\(detail) should mention \(fragment)", sourceLocation: sourceLocation)
        }
    }

    @Test("encode lays the image out exactly as docs/protocol.md says")
    func encodeMatchesHandLayout() {
        let bytes = Self.smallImage().encode()
        #expect(bytes.count == 536)
        #expect(bytes == Self.smallImageBytes())
        // A few bytes spelled out literally, in case the helpers above are wrong too.
        #expect(Array(bytes[0..<8]) == [0x02, 0x00, 0x45, 0x43, 0x49, 0x55, 0x4C, 0x53])
        #expect(Array(bytes[56..<64]) == [0x02, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00])
        #expect(Array(bytes[256..<260]) == [3, 0, 0, 0])
        #expect(Array(bytes[272..<280]) == [0x00, 0x10, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00])
        #expect(Array(bytes[512..<516]) == [0xDD, 0xCC, 0xBB, 0xAA])
    }

    @Test("decode of the hand-laid bytes gives the image back")
    func decodeHandLayout() throws {
        let image = try RingImage.decode(Self.smallImageBytes(), geometry: Self.smallGeometry)
        #expect(image == Self.smallImage())
        #expect(image.slots[1].fault == .bufferOutOfBounds)
        #expect(image.slots[1].payload.bufferOffset == 0xFFFF_FFFF_FFFF_F000)
    }

    /// A random image that the decoder must accept.
    static func randomValidImage(_ geometry: RingGeometry, _ rng: inout SplitMix64) -> RingImage {
        let slots = (0..<geometry.slotCount).map { _ -> SlotRecord in
            let status = SlotStatus.allCases.randomElement(using: &rng)!
            var words = (0..<16).map { _ in rng.u32() }
            if status != .empty { words[1] = UInt32.random(in: 1...3, using: &rng) }
            let completion = status == .faulted ? UInt32.random(in: 1...7, using: &rng) : words[15]
            return SlotRecord(status: status, payload: SlotPayload(words: words), hostFlags: words[14], completion: completion)
        }
        let fault: FaultRecord? =
            Bool.random(using: &rng)
            ? FaultRecord(
                slot: Int.random(in: 0..<geometry.slotCount, using: &rng),
                code: FaultCode.allCases.randomElement(using: &rng)!, opcodeLow16: rng.u32())
            : nil
        let control = ControlBlock(
            shutdown: Bool.random(using: &rng), epoch: rng.u64(), slotsDone: rng.u64(), slotsFaulted: rng.u64(),
            slotsCancelled: rng.u64(), bytesProcessed: rng.u64(), lastFault: fault, workersRunning: rng.u64(),
            slotCount: UInt64(geometry.slotCount))
        return RingImage(
            geometry: geometry, control: control, slots: slots, results: (0..<geometry.resultWordsTotal).map { _ in rng.u32() })
    }

    @Test("random valid images round-trip encode -> decode -> encode (seeded)")
    func randomRoundTrip() throws {
        var rng = SplitMix64(seed: 0x1_3A6E)
        for (slots, words) in [(1, 0), (2, 3), (4, 258), (5, 1), (9, 2)] {
            let g = try RingGeometry(slotCount: slots, resultWordsPerSlot: words)
            for _ in 0..<60 {
                let image = Self.randomValidImage(g, &rng)
                let bytes = image.encode()
                #expect(bytes.count == g.byteCount)
                // Spot-check the layout independently of the decoder.
                #expect(readLE64(bytes, 0) == Doc.magic)
                #expect(readLE64(bytes, 72) == UInt64(slots))
                for (s, slot) in image.slots.enumerated() {
                    #expect(readLE32(bytes, 256 + 64 * s) == slot.status.rawValue)
                    #expect(readLE32(bytes, 256 + 64 * s + 60) == slot.completion)
                }
                let decoded = try RingImage.decode(bytes, geometry: g)
                #expect(decoded == image)
                #expect(decoded.encode() == bytes)
            }
        }
    }

    // MARK: rejections

    @Test("decode rejects a wrong length", arguments: [0, 1, 535, 537, 1_024])
    func rejectsWrongLength(length: Int) {
        var bytes = Self.smallImageBytes()
        if length < bytes.count { bytes = Array(bytes.prefix(length)) } else { bytes += [UInt8](repeating: 0, count: length - bytes.count) }
        Self.expectMalformed(bytes, Self.smallGeometry, what: "ring image", detailContains: ["536", "\(length)"])
    }

    @Test("decode rejects a status outside the protocol", arguments: [6, 7, 77, 0x100, UInt32.max] as [UInt32])
    func rejectsUnknownStatus(status: UInt32) {
        for slot in 0..<2 {
            var bytes = Self.smallImageBytes()
            writeLE32(&bytes, 256 + 64 * slot, status)
            Self.expectMalformed(bytes, Self.smallGeometry, what: "slot \(slot)", detailContains: ["\(status)"])
        }
    }

    @Test("decode rejects an undefined opcode in every non-EMPTY state, and accepts it in EMPTY")
    func undefinedOpcode() throws {
        for opcode: UInt32 in [0, 5, 0xFFFF, 0x2_0000, UInt32.max] {
            for status in SlotStatus.allCases {
                var bytes = Self.smallImageBytes()
                writeLE32(&bytes, 320, status.rawValue)
                writeLE32(&bytes, 324, opcode)
                writeLE32(&bytes, 380, 2)  // a valid fault code, so FAULTED fails on the opcode alone
                if status == .empty {
                    let image = try RingImage.decode(bytes, geometry: Self.smallGeometry)
                    #expect(image.slots[1].payload.opcode.rawValue == opcode)
                    #expect(image.encode() == bytes)
                } else {
                    Self.expectMalformed(bytes, Self.smallGeometry, what: "slot 1", detailContains: ["\(opcode)"])
                }
            }
        }
    }

    @Test("decode accepts an opcode of the user range in every state (installed or not is the worker's business)")
    func userRangeOpcode() throws {
        for opcode: UInt32 in [0x1_0000, 0x1_0001, 0x1_FFFF] {
            for status in SlotStatus.allCases {
                var bytes = Self.smallImageBytes()
                writeLE32(&bytes, 320, status.rawValue)
                writeLE32(&bytes, 324, opcode)
                writeLE32(&bytes, 380, FaultCode.operationNotInstalled.rawValue)
                let image = try RingImage.decode(bytes, geometry: Self.smallGeometry)
                #expect(image.slots[1].payload.opcode.rawValue == opcode)
                if status == .faulted { #expect(image.slots[1].fault == .operationNotInstalled) }
                #expect(image.encode() == bytes)
            }
        }
    }

    @Test("decode rejects FAULTED with an unknown code and accepts every known one")
    func faultedCodes() throws {
        for code: UInt32 in [0, 10, 11, 0x100, UInt32.max] {
            var bytes = Self.smallImageBytes()
            writeLE32(&bytes, 320 + 60, code)
            Self.expectMalformed(bytes, Self.smallGeometry, what: "slot 1", detailContains: ["\(code)"])
        }
        for code in 1...9 as ClosedRange<UInt32> {
            var bytes = Self.smallImageBytes()
            writeLE32(&bytes, 320 + 60, code)
            let image = try RingImage.decode(bytes, geometry: Self.smallGeometry)
            #expect(image.slots[1].fault == FaultCode(rawValue: code))
        }
        // DONE carries a word count, not a code: any value is fine.
        var bytes = Self.smallImageBytes()
        writeLE32(&bytes, 256 + 60, 0xFFFF_FFFF)
        #expect(try RingImage.decode(bytes, geometry: Self.smallGeometry).slots[0].completion == 0xFFFF_FFFF)
    }

    @Test("decode rejects a control block whose slot count disagrees with the geometry", arguments: [0, 1, 3, 1 << 32] as [UInt64])
    func rejectsSlotCountMismatch(count: UInt64) {
        var bytes = Self.smallImageBytes()
        writeLE64(&bytes, 72, count)
        Self.expectMalformed(bytes, Self.smallGeometry, what: "ring image", detailContains: ["\(count)", "2"])
    }

    @Test("decode rejects a bad control block")
    func rejectsBadControlBlock() {
        var bytes = Self.smallImageBytes()
        bytes[7] = 0x54  // magic
        Self.expectMalformed(bytes, Self.smallGeometry, what: "control block", detailContains: ["magic"])
        bytes = Self.smallImageBytes()
        writeLE64(&bytes, 8, 2)  // shutdown flag
        Self.expectMalformed(bytes, Self.smallGeometry, what: "control block", detailContains: ["2"])
        bytes = Self.smallImageBytes()
        writeLE64(&bytes, 56, 0x0000_0002_000A_0002)  // fault code 10
        Self.expectMalformed(bytes, Self.smallGeometry, what: "control block", detailContains: ["10"])
    }

    @Test("the same bytes against a different geometry are rejected, not misread")
    func geometryMismatch() throws {
        let bytes = Self.smallImageBytes()
        let other = try RingGeometry(slotCount: 2, resultWordsPerSlot: 4)
        Self.expectMalformed(bytes, other, what: "ring image", detailContains: ["\(other.byteCount)", "536"])
    }

    // MARK: fuzzing

    /// Bytes the decoder must see as zero: the control block's reserved words
    /// (14...15), the padding after it, and the padding between the slots and the results.
    static func ignoredRanges(_ g: RingGeometry) -> [Range<Int>] {
        [112..<256, (256 + 64 * g.slotCount)..<Doc.resultsOffset(slotCount: g.slotCount)]
    }

    /// Checks one decoder outcome: a value that re-encodes to the input (up to ignored bytes),
    /// or a `.malformed` error with a message.
    static func checkDecode(_ bytes: [UInt8], _ g: RingGeometry, stats: inout (accepted: Int, rejected: Int)) {
        let result: Result<RingImage, PipelineError>
        do throws(PipelineError) {
            result = .success(try RingImage.decode(bytes, geometry: g))
        } catch {
            result = .failure(error)
        }
        switch result {
        case .failure(let error):
            stats.rejected += 1
            guard case .malformed = error else {
                Issue.record("decoder threw something other than .malformed: \(error)")
                return
            }
            #expect(!error.message.isEmpty)
        case .success(let image):
            stats.accepted += 1
            #expect(bytes.count == g.byteCount)
            #expect(image.slots.count == g.slotCount)
            #expect(image.results.count == g.resultWordsTotal)
            for slot in image.slots {
                if slot.status != .empty { #expect(slot.payload.opcode.isInProtocol) }
                if slot.status == .faulted { #expect(slot.fault != nil) }
            }
            if let fault = image.control.lastFault, fault.slot < 0 {
                // Re-encoding this would trap (see ControlBlockTests.lastFaultWithZeroSlotFieldIsRejected).
                Issue.record("lastFault slot \(fault.slot) from packed word 0x\(String(readLE64(bytes, 56), radix: 16))")
                return
            }
            var canonical = bytes
            for r in ignoredRanges(g) { for i in r { canonical[i] = 0 } }
            let again = image.encode()
            let firstDifference = zip(again, canonical).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(
                again.count == canonical.count && firstDifference == nil,
                "a decoded image must re-encode to the bytes it came from; first difference at \(String(describing: firstDifference))")
            // Decoding is deterministic and idempotent.
            #expect((try? RingImage.decode(again, geometry: g)) == image)
        }
    }

    @Test("fuzz: random byte images never trap (seeded)")
    func fuzzRandomBytes() throws {
        var rng = SplitMix64(seed: 0xF022_0001)
        let g = try RingGeometry(slotCount: 4, resultWordsPerSlot: 2)
        var stats = (accepted: 0, rejected: 0)
        for i in 0..<3_000 {
            let length: Int
            switch i % 4 {
            case 0: length = Int.random(in: 0...(2 * g.byteCount), using: &rng)
            default: length = g.byteCount
            }
            var bytes = (0..<length).map { _ in rng.byte() }
            if length == g.byteCount && i % 4 >= 2 {
                // Plausible images (zero reserved words and padding, a magic, few states
                // and opcodes), so the fuzz reaches the slot checks and some decode.
                for r in Self.ignoredRanges(g) { for i in r { bytes[i] = 0 } }
                writeLE64(&bytes, 0, Doc.magic)
                writeLE64(&bytes, 8, UInt64.random(in: 0...2, using: &rng))
                writeLE64(&bytes, 72, i % 8 == 2 ? UInt64(rng.byte()) : 4)
                if Bool.random(using: &rng) { writeLE64(&bytes, 56, 0) }
                for s in 0..<4 {
                    writeLE32(&bytes, 256 + 64 * s, UInt32.random(in: 0...6, using: &rng))
                    if Bool.random(using: &rng) { writeLE32(&bytes, 256 + 64 * s + 4, UInt32.random(in: 0...4, using: &rng)) }
                    if Bool.random(using: &rng) { writeLE32(&bytes, 256 + 64 * s + 60, UInt32.random(in: 0...8, using: &rng)) }
                }
            }
            Self.checkDecode(bytes, g, stats: &stats)
        }
        #expect(stats.accepted + stats.rejected == 3_000)
        #expect(stats.rejected > 0)
        #expect(stats.accepted > 0, "the structured half of the fuzz should produce some valid images")
    }

    @Test("fuzz: mutations of a valid image never trap (seeded)")
    func fuzzMutations() throws {
        var rng = SplitMix64(seed: 0xF022_0002)
        let g = try RingGeometry(slotCount: 6, resultWordsPerSlot: 3)
        var stats = (accepted: 0, rejected: 0)
        let iterations = 4_000
        for i in 0..<iterations {
            var bytes = Self.randomValidImage(g, &rng).encode()
            switch i % 5 {
            case 0, 1:  // flip a few bytes
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                }
            case 2:  // flip a single bit in the interesting part (control block and slots)
                let limit = 256 + 64 * g.slotCount
                let at = Int.random(in: 0..<limit, using: &rng)
                bytes[at] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            case 3:  // truncate
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
            default:  // extend
                bytes += (0..<Int.random(in: 1...64, using: &rng)).map { _ in rng.byte() }
            }
            Self.checkDecode(bytes, g, stats: &stats)
        }
        #expect(stats.accepted + stats.rejected == iterations)
        #expect(stats.rejected >= iterations * 2 / 5, "every truncated or extended image must be rejected")
        #expect(stats.accepted > 0)
    }

    // MARK: reserved bytes

    /// docs/protocol.md says control words 14...15 are reserved and zero, and the
    /// padding at 128..<256 and before the results too: a decoded image must re-encode
    /// to the bytes it came from, or be rejected.
    @Test("reserved control words and padding round-trip or are rejected", arguments: [80, 96, 112, 127, 128, 255, 400, 511])
    func ignoredBytesBreakRoundTrip(offset: Int) throws {
        var bytes = Self.smallImageBytes()
        bytes[offset] = 0x5A
        // Either outcome is correct: reject, or decode to something that re-encodes to the same bytes.
        if let image = try? RingImage.decode(bytes, geometry: Self.smallGeometry) {
            let again = image.encode()
            let firstDifference = zip(again, bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(again.count == bytes.count && firstDifference == nil, "re-encoded bytes differ at offset \(String(describing: firstDifference))")
        }
    }
}
