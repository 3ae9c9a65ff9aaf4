import SluiceCore
import SluiceOps
import Testing

@testable import SluiceCPU

/// CRC-32C written from the textbook definition in the *unreflected* form:
/// each byte bit-reversed, shifted in most significant bit first against the
/// polynomial 0x1EDC6F41, the register bit-reversed at the end. It shares no
/// constant or table with `CRC32C`, so a slip in the reflected code cannot
/// hide in both.
func textbookCRC32C(_ bytes: some Sequence<UInt8>) -> UInt32 {
    func reverse8(_ b: UInt8) -> UInt8 {
        var r: UInt8 = 0
        for i in 0..<8 where b & (1 << i) != 0 { r |= 1 << (7 - i) }
        return r
    }
    var c: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        c ^= UInt32(reverse8(byte)) << 24
        for _ in 0..<8 {
            c = c & 0x8000_0000 != 0 ? (c << 1) ^ 0x1EDC_6F41 : c << 1
        }
    }
    var r: UInt32 = 0
    for i in 0..<32 where c & (1 << i) != 0 { r |= 1 << (31 - i) }
    return ~r
}

/// Every implementation of the library on `bytes`, by name.
func allImplementations(_ bytes: UnsafeRawBufferPointer) -> [(String, UInt32)] {
    var out: [(String, UInt32)] = [
        ("update", CRC32C.update(0, bytes)),
        ("software", CRC32C.updateSoftware(0, bytes)),
        ("bitwise", CRC32C.updateBitwise(0, bytes)),
    ]
    if let h = CRC32C.updateHardware(0, bytes) { out.append(("hardware", h)) }
    if let h = CRC32C.updateHardware(0, bytes, serial: true) { out.append(("hardware serial", h)) }
    return out
}

@Suite struct CRC32CVectorTests {
    /// The check value and the iSCSI vectors of RFC 3720, appendix B.4.
    static let vectors: [([UInt8], UInt32)] = [
        (Array("123456789".utf8), 0xE306_9283),
        ([], 0),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
    ]

    @Test(arguments: 0..<vectors.count)
    func knownVectors(index: Int) {
        let (bytes, expected) = CRC32CVectorTests.vectors[index]
        #expect(textbookCRC32C(bytes) == expected, "the test's own oracle")
        #expect(CRC32C.checksum(bytes) == expected)
        bytes.withUnsafeBytes { raw in
            for (name, value) in allImplementations(raw) {
                #expect(value == expected, "\(name) on vector \(index)")
            }
        }
    }

    @Test func checkValueConstant() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == CRC32C.checkValue)
        #expect(CRC32C.reflectedPolynomial == 0x82F6_3B78)
    }

    @Test func reportsWhatRuns() {
        #if arch(x86_64) || arch(arm64)
        // Every x86-64 CPU of the last 15 years has SSE4.2; every 64-bit Arm server has CRC.
        #expect(CRC32C.hardwareAvailable)
        #endif
        #expect(["sse4.2", "armv8-crc", "software"].contains(CRC32C.implementation))
        #expect((CRC32C.updateHardware(0, UnsafeRawBufferPointer(start: nil, count: 0)) == nil) == !CRC32C.hardwareAvailable)
    }
}

@Suite struct CRC32CRandomTests {
    /// Every length up to past the short three-stream block (3 × 256), then
    /// the edges of the long block (3 × 8192) and beyond, each at eight
    /// misalignments, against the bitwise reference.
    static let lengths: [Int] = Array(0...800) + [
        1023, 1024, 1025, 2303, 2304, 2305, 4096, 8191, 8192, 8193,
        24_575, 24_576, 24_577, 24_576 + 767, 24_576 + 768, 24_576 + 775, 49_152, 49_159, 100_003, 262_147,
    ]

    @Test func everyImplementationAgreesWithTheBitwiseReference() {
        var rng = SeededRandom(state: 0xC0FFEE)
        let buffer = randomBytes(262_147 + 16, &rng)
        buffer.withUnsafeBytes { all in
            for length in CRC32CRandomTests.lengths {
                for misalignment in 0..<8 {
                    let piece = UnsafeRawBufferPointer(rebasing: all[misalignment..<(misalignment + length)])
                    let expected = CRC32C.updateBitwise(0, piece)
                    for (name, value) in allImplementations(piece) where value != expected {
                        Issue.record("\(name): length \(length), misalignment \(misalignment): \(value) != \(expected)")
                    }
                }
            }
        }
    }

    @Test func bitwiseReferenceAgreesWithTextbook() {
        var rng = SeededRandom(state: 5)
        for length in [1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 4099] {
            let bytes = randomBytes(length, &rng)
            #expect(bytes.withUnsafeBytes { CRC32C.updateBitwise(0, $0) } == textbookCRC32C(bytes), "length \(length)")
        }
    }

    /// `update` continues a finished checksum: the checksum of a‖b.
    @Test func updateContinuesAChecksum() {
        var rng = SeededRandom(state: 11)
        for _ in 0..<200 {
            let bytes = randomBytes(Int.random(in: 0...5000, using: &rng), &rng)
            let cut = Int.random(in: 0...bytes.count, using: &rng)
            let whole = CRC32C.checksum(bytes)
            let a = CRC32C.checksum(Array(bytes[..<cut]))
            let tail = Array(bytes[cut...])
            tail.withUnsafeBytes { b in
                #expect(CRC32C.update(a, b) == whole)
                #expect(CRC32C.updateSoftware(a, b) == whole)
                #expect(CRC32C.updateBitwise(a, b) == whole)
                if CRC32C.hardwareAvailable { #expect(CRC32C.updateHardware(a, b) == whole) }
            }
        }
    }
}

@Suite struct CRC32CCombineTests {
    /// combine(crc(A), crc(B), |B|) == crc(A‖B) for random splits, empty parts included.
    @Test func combineMatchesTheWholeBuffer() {
        var rng = SeededRandom(state: 2024)
        for round in 0..<300 {
            let n = round < 20 ? round : Int.random(in: 0...70_000, using: &rng)
            let bytes = randomBytes(n, &rng)
            let whole = bytes.withUnsafeBytes { CRC32C.updateBitwise(0, $0) }
            let cut = [0, n, Int.random(in: 0...n, using: &rng)][round % 3]
            let a = Array(bytes[..<cut]), b = Array(bytes[cut...])
            let combined = CRC32C.combine(CRC32C.checksum(a), CRC32C.checksum(b), lengthB: UInt64(b.count))
            #expect(combined == whole, "length \(n) cut at \(cut)")
        }
    }

    /// Many pieces folded left to right give the whole buffer's checksum.
    @Test func combineManyPieces() {
        var rng = SeededRandom(state: 77)
        let bytes = randomBytes(300_000, &rng)
        let whole = textbookCRC32C(bytes)
        var cuts = (0..<40).map { _ in Int.random(in: 0...bytes.count, using: &rng) } + [0, 0, bytes.count, bytes.count]
        cuts.sort()
        var crc: UInt32 = 0
        var start = 0
        for end in cuts + [bytes.count] {
            let piece = Array(bytes[start..<end])
            crc = CRC32C.combine(crc, CRC32C.checksum(piece), lengthB: UInt64(piece.count))
            start = end
        }
        #expect(crc == whole)
    }

    /// Lengths too large to materialise: the shift must be associative and
    /// agree with explicit zero runs where those are small enough.
    @Test func combineIsAssociativeForHugeLengths() {
        var rng = SeededRandom(state: 3)
        for _ in 0..<200 {
            let a = UInt32.random(in: 0...UInt32.max, using: &rng)
            let b = UInt32.random(in: 0...UInt32.max, using: &rng)
            let c = UInt32.random(in: 0...UInt32.max, using: &rng)
            let lb = UInt64.random(in: 0...(UInt64.max / 4), using: &rng)
            let lc = UInt64.random(in: 0...(UInt64.max / 4), using: &rng)
            let left = CRC32C.combine(CRC32C.combine(a, b, lengthB: lb), c, lengthB: lc)
            let right = CRC32C.combine(a, CRC32C.combine(b, c, lengthB: lc), lengthB: lb + lc)
            #expect(left == right)
            #expect(CRC32C.combine(a, 0, lengthB: 0) == a)
        }
        // The factor of n bytes is what n zero bytes do to a register.
        for n in [1, 2, 3, 8, 100, 4096, 65_537] {
            let zeros = [UInt8](repeating: 0, count: n)
            let a: UInt32 = 0xDEAD_BEEF
            let viaBytes = zeros.withUnsafeBytes { CRC32C.updateBitwise(a, $0) }
            #expect(CRC32C.combine(a, CRC32C.checksum(zeros), lengthB: UInt64(n)) == viaBytes)
            #expect(CRC32C.combine(a, CRC32C.checksum(zeros), factor: CRC32C.xToThe8n(UInt64(n))) == viaBytes)
        }
    }

    /// Chunks handed to the combiner in any order give the whole file's checksum.
    @Test func chunkCombinerInAnyOrder() throws {
        var rng = SeededRandom(state: 8)
        for round in 0..<30 {
            let chunk = [1, 7, 4096, 1000][round % 4]
            let bytes = randomBytes(Int.random(in: 0...40_000, using: &rng), &rng)
            let chunks = stride(from: 0, to: bytes.count, by: chunk).map { start in
                (start, Array(bytes[start..<min(start + chunk, bytes.count)]))
            }
            var order = Array(chunks.indices)
            order.shuffle(using: &rng)
            var combiner = CRC32CChunkCombiner()
            for i in order {
                let (offset, piece) = chunks[i]
                try combiner.add(chunk: i, offset: UInt64(offset), crc: CRC32C.checksum(piece), length: UInt32(piece.count))
            }
            #expect(combiner.crc == textbookCRC32C(bytes))
            #expect(combiner.bytes == UInt64(bytes.count))
            #expect(combiner.nextChunk == chunks.count)
            #expect(combiner.waitingChunks.isEmpty)
        }
    }

    @Test func chunkCombinerRejectsDuplicatesAndGaps() throws {
        var c = CRC32CChunkCombiner()
        try c.add(chunk: 1, offset: 10, crc: 5, length: 10)
        #expect(c.waitingChunks == [1] && c.nextChunk == 0)
        #expect(throws: PipelineError.self) { try c.add(chunk: 1, offset: 10, crc: 5, length: 10) }
        try c.add(chunk: 0, offset: 0, crc: 7, length: 10)
        #expect(c.nextChunk == 2 && c.bytes == 20)
        #expect(throws: PipelineError.self) { try c.add(chunk: 0, offset: 0, crc: 7, length: 10) }
        var d = CRC32CChunkCombiner()
        try d.add(chunk: 0, offset: 0, crc: 1, length: 10)
        #expect(throws: PipelineError.self) { try d.add(chunk: 1, offset: 12, crc: 1, length: 10) }
    }
}

@Suite struct CRC32CTextTests {
    @Test func formatsBothEncodings() {
        #expect(CRC32CText.format(0xE306_9283, as: .hex) == "e3069283")
        #expect(CRC32CText.format(0xE306_9283, as: .base64) == "4waSgw==")
        #expect(CRC32CText.format(0, as: .hex) == "00000000")
        #expect(CRC32CText.format(0, as: .base64) == "AAAAAA==")
        #expect(CRC32CText.format(0xFFFF_FFFF, as: .base64) == "/////w==")
        #expect(CRC32CText.format(0x0000_00AB, as: .hex) == "000000ab")
    }

    /// Base64 checked against a plain bit-by-bit encoder of the 4 big-endian bytes.
    @Test func roundTripsAndMatchesAPlainEncoder() {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        func plain(_ crc: UInt32) -> String {
            let bytes = [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)]
            var bits: [Int] = [0, 0, 0, 0]
            bits.insert(contentsOf: bytes.flatMap { (b: UInt8) -> [Int] in (0..<8).map { Int((b >> (7 - $0)) & 1) } }, at: 0)
            var s = ""
            while !bits.isEmpty {
                let six = bits.prefix(6).reduce(0) { $0 << 1 | $1 }
                s.append(alphabet[six])
                bits.removeFirst(6)
            }
            return s + "=="
        }
        var rng = SeededRandom(state: 1)
        for _ in 0..<2000 {
            let v = UInt32.random(in: 0...UInt32.max, using: &rng)
            #expect(CRC32CText.format(v, as: .base64) == plain(v))
            for e in CRC32CText.Encoding.allCases {
                let parsed = CRC32CText.parse(CRC32CText.format(v, as: e))
                #expect(parsed?.crc == v && parsed?.encoding == e)
            }
        }
    }

    @Test func parsesLeniently() {
        #expect(CRC32CText.parse("E3069283")?.crc == 0xE306_9283)
        #expect(CRC32CText.parse("e3069283")?.encoding == .hex)
        for bad in ["", "e306928", "e30692831", "g3069283", "4waSgw=", "4waSgx==", "4wa*gw==", "4waSg===", "  e30692"] {
            #expect(CRC32CText.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct CRC32COpTests {
    @Test func opWritesChecksumAndLength() throws {
        var rng = SeededRandom(state: 4)
        for size in [0, 1, 9, 4096, 100_001] {
            let bytes = randomBytes(size, &rng)
            var out = [UInt32](repeating: 0xDEAD_BEEF, count: 3)
            bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { CRC32COp.run(raw, into: $0) } }
            #expect(out == [textbookCRC32C(bytes), UInt32(size), 0xDEAD_BEEF])
            let r = try CRC32CResult(words: out.prefix(2))
            #expect(r.crc == out[0] && r.length == UInt32(size))
        }
        #expect(throws: PipelineError.self) { try CRC32CResult(words: [UInt32(1)]) }
    }
}

@Suite struct CPUBackendCRC32CTests {
    /// crc32c slots through the ring on worker threads, against the textbook oracle.
    @Test func runsCRC32CSlotsAgainstOracle() throws {
        let backend = try makeBackend(slots: 12)
        try backend.start()
        defer { try? backend.shutdown() }
        var rng = SeededRandom(state: 6)
        // Offsets are deliberately unaligned (the pieces do not overlap); sizes cross the stream-block edges.
        let cases: [(offset: Int, size: Int)] = [
            (0, 0), (1, 1), (3, 9), (17, 767), (1029, 768), (4096, 24_575), (65_537, 24_576), (131_075, 24_577),
            (262_144, 100_000), (400_001, 262_144), (700_000, 4096), (1_048_575, 1),
        ]
        var expected: [[UInt32]] = []
        for (slot, c) in cases.enumerated() {
            let bytes = randomBytes(c.size, &rng)
            backend.dataRegion.baseAddress!.advanced(by: c.offset).copyMemory(from: bytes, byteCount: c.size)
            expected.append([textbookCRC32C(bytes), UInt32(c.size)])
            try backend.ring.publish(slot: slot, SlotPayload(
                opcode: .crc32c, bufferOffset: UInt64(c.offset), length: UInt32(c.size),
                resultOffset: UInt32(backend.ring.geometry.resultOffset(ofSlot: slot)),
                resultCapacity: UInt32(CRC32COp.resultWords)))
        }
        for slot in cases.indices {
            #expect(try awaitTerminal(backend, slot: slot) == .done)
            let record = try backend.ring.reclaim(slot: slot)
            #expect(record.completion == UInt32(CRC32COp.resultWords))
            #expect(Array(backend.ring.resultArea(ofSlot: slot).prefix(2)) == expected[slot], "slot \(slot)")
        }
        let control = try backend.ring.observe()
        #expect(control.slotsDone == UInt64(cases.count) && control.slotsFaulted == 0)
        #expect(control.bytesProcessed == UInt64(cases.map(\.size).reduce(0, +)))
    }

    @Test func crc32cSlotsFaultLikeTheOthers() throws {
        let backend = try makeBackend(slots: 4, dataBytes: 4096)
        try backend.start()
        defer { try? backend.shutdown() }
        let cases: [(SlotPayload, FaultCode?)] = [
            (SlotPayload(opcode: .crc32c, bufferOffset: 0, length: 8, resultOffset: 0, resultCapacity: 1), .resultOverflow),
            (SlotPayload(opcode: .crc32c, bufferOffset: 4090, length: 7, resultOffset: 0, resultCapacity: 2), .bufferOutOfBounds),
            (SlotPayload(opcode: .crc32c, bufferOffset: 0, length: 8, resultOffset: UInt32.max, resultCapacity: 2), .resultOutOfBounds),
            (SlotPayload(opcode: .crc32c, bufferOffset: 4090, length: 6, resultOffset: 0, resultCapacity: 2), nil),
        ]
        for (slot, c) in cases.enumerated() { try backend.ring.publish(slot: slot, c.0) }
        for (slot, c) in cases.enumerated() {
            let status = try awaitTerminal(backend, slot: slot)
            let record = try backend.ring.reclaim(slot: slot)
            if let code = c.1 {
                #expect(status == .faulted && record.fault == code, "slot \(slot)")
            } else {
                #expect(status == .done && record.completion == 2)
            }
        }
        #expect(SlotExecutor.supported.contains(.crc32c))
    }
}
