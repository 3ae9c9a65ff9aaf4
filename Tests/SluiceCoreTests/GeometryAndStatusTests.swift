import SluiceCore
import Testing

@Suite("RingGeometry")
struct RingGeometryTests {
    /// (slotCount, resultWordsPerSlot, resultsOffset, byteCount), computed by hand:
    /// slots end at 256 + 64 × slotCount, rounded up to a multiple of 256; results are 4-byte words.
    static let table: [(Int, Int, Int, Int)] = [
        (1, 0, 512, 512),  // 256 + 64 = 320 -> 512
        (1, 258, 512, 512 + 1_032),
        (3, 10, 512, 512 + 120),  // 448 -> 512
        (4, 258, 512, 512 + 4_128),  // 512 exactly: no padding
        (5, 1, 768, 768 + 20),  // 576 -> 768
        (8, 258, 768, 768 + 8_256),  // 768 exactly
        (12, 0, 1_024, 1_024),  // 1024 exactly
        (13, 2, 1_280, 1_280 + 104),  // 1088 -> 1280
        (64, 258, 4_352, 4_352 + 66_048),  // 256 + 4096 = 4352 = 17 × 256
        (1 << 20, 0, 67_109_120, 67_109_120),  // 256 + 2^26
        (1, 1 << 24, 512, 512 + 67_108_864),
    ]

    @Test("offsets and sizes for several geometries", arguments: table)
    func offsets(slots: Int, resultWords: Int, resultsOffset: Int, byteCount: Int) throws {
        let g = try RingGeometry(slotCount: slots, resultWordsPerSlot: resultWords)
        #expect(g.slotCount == slots)
        #expect(g.resultWordsPerSlot == resultWords)
        #expect(g.slotsOffset == 256)
        #expect(g.resultsOffset == resultsOffset)
        #expect(g.resultsOffset % 256 == 0)
        #expect(g.resultsOffset >= 256 + 64 * slots)
        #expect(g.resultsOffset - (256 + 64 * slots) < 256)
        #expect(g.resultWordsTotal == slots * resultWords)
        #expect(g.byteCount == byteCount)
        #expect(g.slotOffset(0) == 256)
        #expect(g.slotOffset(1) == 320)
        #expect(g.slotOffset(slots - 1) == 256 + 64 * (slots - 1))
        #expect(g.resultOffset(ofSlot: 0) == 0)
        #expect(g.resultOffset(ofSlot: slots - 1) == (slots - 1) * resultWords)
        #expect(RingGeometry.controlBytesPadded == 256)
        #expect(RingGeometry.alignment == 256)
    }

    @Test("every slot count from 1 to 300 against the hand formula")
    func manySlotCounts() throws {
        for n in 1...300 {
            let g = try RingGeometry(slotCount: n, resultWordsPerSlot: 3)
            #expect(g.resultsOffset == Doc.resultsOffset(slotCount: n))
            #expect(g.byteCount == Doc.resultsOffset(slotCount: n) + 12 * n)
        }
    }

    @Test(
        "invalid configurations are rejected",
        arguments: [
            (0, 0), (-1, 0), (Int.min, 0), ((1 << 20) + 1, 0), (Int.max, 0),
            (1, -1), (1, Int.min), (1, (1 << 24) + 1), (1, Int.max), (0, -1),
        ] as [(Int, Int)])
    func invalid(slots: Int, resultWords: Int) {
        let error = thrown { try RingGeometry(slotCount: slots, resultWordsPerSlot: resultWords) }
        guard case .invalidConfiguration(let what)? = error else {
            Issue.record("expected .invalidConfiguration, got \(String(describing: error))")
            return
        }
        // The message names the offending value.
        let offending = (slots <= 0 || slots > 1 << 20) ? slots : resultWords
        #expect(what.contains("\(offending)"))
    }

    @Test("the limits themselves are accepted")
    func limits() throws {
        _ = try RingGeometry(slotCount: 1, resultWordsPerSlot: 0)
        _ = try RingGeometry(slotCount: 1 << 20, resultWordsPerSlot: 0)
        _ = try RingGeometry(slotCount: 1, resultWordsPerSlot: 1 << 24)
        let wide = try RingGeometry(slotCount: 1 << 7, resultWordsPerSlot: 1 << 24)  // 2^31 words, all addressable
        #expect(wide.resultOffset(ofSlot: 127) == 0x7F00_0000)
        #expect(wide.byteCount == 256 + 128 * 64 + (1 << 31) * 4)
    }

    /// Slot word 12 (resultOffset) is a u32 word index into the result region, but the
    /// geometry accepts up to 2^20 × 2^24 = 2^44 result words (a 64 TiB region), so the
    /// result areas of later slots cannot be named by any slot.
    @Test("a geometry whose result areas a 32-bit resultOffset cannot reach is rejected")
    func resultRegionMustBeAddressableByTheSlotWord() {
        // 2^20 slots × 2^13 words = 2^33 words: slot 2^19's area starts at word 2^32.
        let error = thrown { try RingGeometry(slotCount: 1 << 20, resultWordsPerSlot: 1 << 13) }
        guard case .invalidConfiguration? = error else {
            Issue.record("accepted; resultOffset(ofSlot: 1 << 19) would be \(1 << 32)")
            return
        }
    }
}

@Suite("SlotStatus lifecycle")
struct SlotStatusTests {
    /// The edges of docs/protocol.md, "Lifecycle", written out by hand.
    static let legalEdges: Set<String> = [
        "host: EMPTY -> PUBLISHED",
        "worker: PUBLISHED -> CLAIMED",
        "worker: PUBLISHED -> CANCELLED",
        "worker: CLAIMED -> DONE",
        "worker: CLAIMED -> FAULTED",
        "host: DONE -> EMPTY",
        "host: FAULTED -> EMPTY",
        "host: CANCELLED -> EMPTY",
    ]

    static let names: [UInt32: String] = [
        0: "EMPTY", 1: "PUBLISHED", 2: "CLAIMED", 3: "DONE", 4: "FAULTED", 5: "CANCELLED",
    ]

    @Test("raw values and names match docs/protocol.md")
    func rawValuesAndNames() {
        #expect(SlotStatus.allCases.count == 6)
        for status in SlotStatus.allCases {
            #expect(status.description == Self.names[status.rawValue])
        }
        #expect(SlotStatus(rawValue: 6) == nil)
        #expect(SlotStatus(rawValue: 77) == nil)
        #expect(SlotStatus.Actor.host.description == "host")
        #expect(SlotStatus.Actor.worker.description == "worker")
    }

    @Test("allows(_:by:) is exactly the documented edge list, for all 72 triples")
    func everyTriple() {
        var checked = 0
        var legal = 0
        for actor in [SlotStatus.Actor.host, .worker] {
            for from in SlotStatus.allCases {
                for to in SlotStatus.allCases {
                    let key = "\(actor): \(Self.names[from.rawValue]!) -> \(Self.names[to.rawValue]!)"
                    let expected = Self.legalEdges.contains(key)
                    #expect(from.allows(to, by: actor) == expected, "\(key)")
                    checked += 1
                    if expected { legal += 1 }
                }
            }
        }
        #expect(checked == 72)
        #expect(legal == Self.legalEdges.count)
    }

    @Test("terminal states are exactly DONE, FAULTED and CANCELLED")
    func terminal() {
        let terminal: Set<UInt32> = [3, 4, 5]
        for s in SlotStatus.allCases {
            #expect(s.isTerminal == terminal.contains(s.rawValue), "\(s)")
            // The host reclaims precisely the terminal states.
            #expect(s.allows(.empty, by: .host) == s.isTerminal)
        }
    }

    @Test("one writer per state: no state is left by both sides")
    func oneWriterPerState() {
        for from in SlotStatus.allCases {
            let hostLeaves = SlotStatus.allCases.contains { from.allows($0, by: .host) }
            let workerLeaves = SlotStatus.allCases.contains { from.allows($0, by: .worker) }
            #expect(!(hostLeaves && workerLeaves), "\(from)")
        }
    }
}
