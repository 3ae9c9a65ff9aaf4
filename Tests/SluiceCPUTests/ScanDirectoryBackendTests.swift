import SluiceCore
import SluiceOps
import Testing

@testable import SluiceCPU

/// One match: where it starts in the chunk and which literal (its index in the list).
struct ScanHit: Hashable, CustomStringConvertible {
    var position: Int
    var pattern: Int
    var description: String { "(\(position), \(pattern))" }
}

/// The oracle: every literal tried at every start position before
/// `startLimit`, byte by byte (ASCII letters folded when `caseInsensitive`).
func naiveScan(_ literals: [[UInt8]], caseInsensitive: Bool, text: [UInt8], startLimit: Int) -> Set<ScanHit> {
    func fold(_ b: UInt8) -> UInt8 { caseInsensitive && b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
    var hits = Set<ScanHit>()
    for start in 0..<min(startLimit, text.count) {
        for (k, literal) in literals.enumerated() where start + literal.count <= text.count {
            if (0..<literal.count).allSatisfy({ fold(text[start + $0]) == fold(literal[$0]) }) {
                hits.insert(ScanHit(position: start, pattern: k))
            }
        }
    }
    return hits
}

/// A literal set and the scan table compiled from it.
struct LiteralTable {
    var literals: [[UInt8]]
    var caseInsensitive: Bool
    var words: [UInt32]

    init(_ literals: [String], caseInsensitive: Bool = false) throws {
        self.literals = literals.map { Array($0.utf8) }
        self.caseInsensitive = caseInsensitive
        words = ScanTable(try PatternSet(literals: self.literals, caseInsensitive: caseInsensitive)).words
    }

    func expected(_ text: [UInt8], startLimit: Int) -> Set<ScanHit> {
        naiveScan(literals, caseInsensitive: caseInsensitive, text: text, startLimit: startLimit)
    }
}

/// A CPU backend whose slot i reads chunk i (4 KiB at 4096 × i) into result
/// area i, with helpers to install tables, publish scan slots and check them.
struct DirectoryRig {
    static let slots = 16
    static let chunkBytes = 4096
    /// Room for every match: at most one per literal and start position.
    static let areaWords = ScanOp.headerWords + 2 * 5 * chunkBytes
    let backend: CPUBackend
    /// Whether tables are installed with their literals (Hyperscan, where it
    /// loads) or alone (the built-in matcher).
    let compiled: Bool

    init(compiled: Bool = false) throws {
        let geometry = try RingGeometry(slotCount: Self.slots, resultWordsPerSlot: Self.areaWords)
        backend = try CPUBackend(
            configuration: BackendConfiguration(geometry: geometry, dataBytes: Self.slots * Self.chunkBytes, workers: 2))
        self.compiled = compiled
    }

    func install(_ t: LiteralTable, at index: Int, owner: UInt32 = ScanDirectory.anyTenant) throws {
        _ = try backend.installScanTable(
            t.words, literals: compiled ? t.literals : nil, caseInsensitive: t.caseInsensitive, at: index, owner: owner)
    }

    /// Places `text` in chunk `chunk` (default: the slot's) and publishes a scan slot for it.
    func publish(
        slot: Int, text: [UInt8], argument1: UInt32, tenant: UInt32 = 0, startLimit: Int? = nil, capacity: Int = areaWords,
        chunk: Int? = nil
    ) throws {
        let offset = (chunk ?? slot) * Self.chunkBytes
        precondition(text.count <= Self.chunkBytes)
        text.withUnsafeBytes { backend.dataRegion.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let area = backend.ring.resultArea(ofSlot: slot)
        for i in area.indices { area[i] = 0xDEAD_BEEF }
        try backend.ring.publish(slot: slot, SlotPayload(
            opcode: .scan, tenant: tenant, bufferOffset: UInt64(offset), length: UInt32(text.count),
            arguments: (UInt32(startLimit ?? text.count), argument1),
            resultOffset: UInt32(backend.ring.geometry.resultOffset(ofSlot: slot)), resultCapacity: UInt32(capacity)))
    }

    /// How a scan slot ended: its match count and records, or its fault.
    enum End {
        case ran(found: UInt64, records: [ScanHit])
        case faulted(FaultCode?)
    }

    /// Waits for `slot`, reclaims it and returns how it ended.
    func finish(slot: Int) throws -> End {
        let status = try awaitTerminal(backend, slot: slot)
        let record = try backend.ring.reclaim(slot: slot)
        if status == .faulted { return .faulted(record.fault) }
        #expect(status == .done, "slot \(slot)")
        let area = backend.ring.resultArea(ofSlot: slot)
        let found = UInt64(area[0]) | UInt64(area[1]) << 32
        let stored = Int(area[2])
        #expect(area[3] == 0 && record.completion == UInt32(ScanOp.headerWords + 2 * stored), "slot \(slot)")
        let records = (0..<stored).map { ScanHit(position: Int(area[4 + 2 * $0]), pattern: Int(area[5 + 2 * $0])) }
        return .ran(found: found, records: records)
    }

    /// Waits for `slot` and checks it found exactly `expected`, every match stored once.
    func expectMatches(slot: Int, _ expected: Set<ScanHit>, sourceLocation: SourceLocation = #_sourceLocation) throws {
        switch try finish(slot: slot) {
        case .faulted(let code):
            Issue.record("slot \(slot) faulted with \(String(describing: code)), expected \(expected.count) matches", sourceLocation: sourceLocation)
        case .ran(let found, let records):
            #expect(found == UInt64(expected.count), "slot \(slot)", sourceLocation: sourceLocation)
            #expect(records.count == expected.count && Set(records) == expected, "slot \(slot)", sourceLocation: sourceLocation)
        }
    }

    /// Waits for `slot` and checks it faulted with `code`.
    func expectFault(slot: Int, _ code: FaultCode, sourceLocation: SourceLocation = #_sourceLocation) throws {
        switch try finish(slot: slot) {
        case .faulted(let got): #expect(got == code, "slot \(slot)", sourceLocation: sourceLocation)
        case .ran(let found, _): Issue.record("slot \(slot) ran (\(found) found), expected \(code)", sourceLocation: sourceLocation)
        }
    }

    /// The directory's words, read where control word 10 points.
    var directoryWords: [UInt32] {
        let (address, entries) = backend.ring.scanDirectory
        let base = UnsafePointer<UInt32>(bitPattern: UInt(address))!
        return Array(UnsafeBufferPointer(start: base, count: Int(entries) * ScanDirectory.entryWords))
    }
}

/// Text over a small alphabet, so that every literal below occurs often.
func alphabetText(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SeededRandom(state: seed)
    let alphabet = Array("abcdAB \n".utf8)
    return (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
}

let setA = ["ab", "bca", "dd", "abcd", "Bc"]
let setB = ["ba", "cc", "dab", "a", "AB"]
let setC = ["cab", "d", "bb", "A"]

@Suite("CPU backend: scan-table directory")
struct ScanDirectoryBackendTests {
    @Test("two tables at indexes 0 and 5, slots of both in flight at once, each gets exactly its own set's matches",
          arguments: [false, true])
    func twoTablesInFlight(compiled: Bool) throws {
        let rig = try DirectoryRig(compiled: compiled)
        let a = try LiteralTable(setA), b = try LiteralTable(setB, caseInsensitive: true)
        try rig.install(a, at: 0)
        try rig.install(b, at: 5)
        // Everything is published before a worker starts: all in flight together.
        var expected: [Int: Set<ScanHit>] = [:]
        for slot in 0..<12 {
            let text = alphabetText([0, 1, 5, 4096, 3000, 2999][slot % 6], seed: UInt64(slot) + 1)
            let table = slot % 2 == 0 ? a : b
            let limit = max(0, text.count - slot * 3)
            try rig.publish(slot: slot, text: text, argument1: ScanDirectory.argument1(index: slot % 2 == 0 ? 0 : 5, flags: 0), startLimit: limit)
            expected[slot] = table.expected(text, startLimit: limit)
        }
        // One chunk read by two slots, one per table: the two answers must differ.
        let shared = alphabetText(2500, seed: 99)
        try rig.publish(slot: 12, text: shared, argument1: ScanDirectory.argument1(index: 0, flags: 0))
        try rig.publish(slot: 13, text: shared, argument1: ScanDirectory.argument1(index: 5, flags: 0), chunk: 12)
        expected[12] = a.expected(shared, startLimit: shared.count)
        expected[13] = b.expected(shared, startLimit: shared.count)
        #expect(expected[12] != expected[13] && !expected[12]!.isEmpty && !expected[13]!.isEmpty)
        try rig.backend.start()
        defer { try? rig.backend.shutdown() }
        for slot in expected.keys.sorted() { try rig.expectMatches(slot: slot, expected[slot]!) }
        #expect(try rig.backend.ring.observe().slotsFaulted == 0)
    }

    @Test("an empty entry, an index past the directory and reserved bits fault badArguments; the entry is checked before the other arguments")
    func badIndexes() throws {
        let rig = try DirectoryRig()
        let a = try LiteralTable(setA), b = try LiteralTable(setB)
        try rig.install(a, at: 0)
        try rig.install(b, at: 5)
        let entries = rig.backend.scanDirectoryEntries
        #expect(entries == ScanDirectory.defaultEntries)
        let text = alphabetText(1000, seed: 7)
        let bad: [(argument1: UInt32, startLimit: Int, capacity: Int)] = [
            (0x0002_0000, 1000, DirectoryRig.areaWords),  // index 2: empty
            (UInt32(entries) << 16, 1000, DirectoryRig.areaWords),  // one past the directory
            (0xFFFF_0000, 1000, DirectoryRig.areaWords),  // the largest index
            (0x0000_0002, 1000, DirectoryRig.areaWords),  // index 0, reserved bit 1
            (0x0005_8000, 1000, DirectoryRig.areaWords),  // index 5, reserved bit 15
            (0x0005_0003, 1000, DirectoryRig.areaWords),  // count only and reserved bit 1
            (0x0002_0000, 1000, 0),  // empty entry and no area: the entry first
            (0x0002_0000, 1001, DirectoryRig.areaWords),  // empty entry and a start limit past the length
            (0x0000_4000, 1000, 3),  // reserved bit and an area too small
        ]
        for (slot, c) in bad.enumerated() {
            try rig.publish(slot: slot, text: text, argument1: c.argument1, startLimit: c.startLimit, capacity: c.capacity)
        }
        // Good slots beside them: each table once, and count only.
        let good = bad.count
        try rig.publish(slot: good, text: text, argument1: ScanDirectory.argument1(index: 0, flags: 0))
        try rig.publish(slot: good + 1, text: text, argument1: ScanDirectory.argument1(index: 5, flags: ScanOp.countOnlyFlag))
        // A live entry then checks the arguments: start limit, then the area.
        try rig.publish(slot: good + 2, text: text, argument1: ScanDirectory.argument1(index: 5, flags: 0), startLimit: 1001)
        try rig.publish(slot: good + 3, text: text, argument1: ScanDirectory.argument1(index: 5, flags: 0), capacity: 3)
        try rig.backend.start()
        defer { try? rig.backend.shutdown() }
        for slot in bad.indices { try rig.expectFault(slot: slot, .badArguments) }
        try rig.expectMatches(slot: good, a.expected(text, startLimit: 1000))
        guard case .ran(let found, let records) = try rig.finish(slot: good + 1) else {
            Issue.record("the count-only slot faulted")
            return
        }
        #expect(found == UInt64(b.expected(text, startLimit: 1000).count) && records.isEmpty)
        try rig.expectFault(slot: good + 2, .badArguments)
        try rig.expectFault(slot: good + 3, .resultOverflow)
    }

    @Test("a table owned by tenant 2: tenant 3's slot faults tenantViolation with tenant checks on and runs with them off; an anyTenant table runs for both")
    func ownership() throws {
        let rig = try DirectoryRig()
        let a = try LiteralTable(setA), b = try LiteralTable(setB)
        try rig.install(a, at: 1, owner: 2)
        try rig.install(b, at: 3)
        // Tenant checks on: chunk and area u belong to the tenant of slot u below.
        let tenantOf: [UInt32] = [3, 3, 3, 2, 3, 2, 3]
        var table = try TenantTable.make(
            tenants: 4, chunkBytes: DirectoryRig.chunkBytes, chunkCount: DirectoryRig.slots,
            resultWordsPerArea: DirectoryRig.areaWords, areaCount: DirectoryRig.slots)
        for (u, t) in tenantOf.enumerated() {
            table[TenantTable.headerWords + u] = t
            table[TenantTable.headerWords + DirectoryRig.slots + u] = t
        }
        _ = try rig.backend.enableTenants(table)
        let text = alphabetText(2000, seed: 11)
        let x = ScanDirectory.argument1(index: 1, flags: 0), y = ScanDirectory.argument1(index: 3, flags: 0)
        try rig.publish(slot: 0, text: text, argument1: x, tenant: 3)
        try rig.publish(slot: 1, text: text, argument1: x, tenant: 3, capacity: 0)  // owner before the area
        try rig.publish(slot: 2, text: text, argument1: x, tenant: 3, startLimit: 2001)  // owner before the start limit
        try rig.publish(slot: 3, text: text, argument1: x, tenant: 2)
        try rig.publish(slot: 4, text: text, argument1: y, tenant: 3)
        try rig.publish(slot: 5, text: text, argument1: y, tenant: 2)
        try rig.publish(slot: 6, text: text, argument1: ScanDirectory.argument1(index: 2, flags: 0), tenant: 3)  // empty entry before the owner
        try rig.backend.start()
        defer { try? rig.backend.shutdown() }
        for slot in 0...2 { try rig.expectFault(slot: slot, .tenantViolation) }
        try rig.expectMatches(slot: 3, a.expected(text, startLimit: 2000))
        try rig.expectMatches(slot: 4, b.expected(text, startLimit: 2000))
        try rig.expectMatches(slot: 5, b.expected(text, startLimit: 2000))
        try rig.expectFault(slot: 6, .badArguments)

        // Tenant checks off: any slot may use any table.
        rig.backend.ring.setTenantTable(address: 0, words: 0)
        try rig.publish(slot: 0, text: text, argument1: x, tenant: 3)
        try rig.publish(slot: 1, text: text, argument1: y, tenant: 3)
        try rig.expectMatches(slot: 0, a.expected(text, startLimit: 2000))
        try rig.expectMatches(slot: 1, b.expected(text, startLimit: 2000))
    }

    @Test("removeScanTable: a slot naming the entry faults badArguments while another index runs; reinstalling gives the new set's matches",
          arguments: [false, true])
    func removeAndReinstall(compiled: Bool) throws {
        let rig = try DirectoryRig(compiled: compiled)
        let a = try LiteralTable(setA), b = try LiteralTable(setB), c = try LiteralTable(setC, caseInsensitive: true)
        try rig.install(a, at: 0)
        try rig.install(b, at: 5)
        try rig.backend.start()
        defer { try? rig.backend.shutdown() }
        let text = alphabetText(3000, seed: 5)
        let at0 = ScanDirectory.argument1(index: 0, flags: 0), at5 = ScanDirectory.argument1(index: 5, flags: 0)
        func round(_ five: LiteralTable?) throws {
            try rig.publish(slot: 0, text: text, argument1: at5)
            try rig.publish(slot: 1, text: text, argument1: at0)
            if let five {
                try rig.expectMatches(slot: 0, five.expected(text, startLimit: text.count))
            } else {
                try rig.expectFault(slot: 0, .badArguments)
            }
            try rig.expectMatches(slot: 1, a.expected(text, startLimit: text.count))
        }
        try round(b)
        try rig.backend.removeScanTable(at: 5)
        #expect(rig.directoryWords[20..<24].allSatisfy { $0 == 0 })
        try round(nil)
        try rig.install(c, at: 5)
        try round(c)
        #expect(b.expected(text, startLimit: text.count) != c.expected(text, startLimit: text.count))
        // Over a live entry, with no remove between.
        try rig.install(b, at: 5)
        try round(b)
    }

    @Test("the directory's words: address, length and owner per entry, zero for the empty ones")
    func directoryLayout() throws {
        let rig = try DirectoryRig()
        let a = try LiteralTable(setA), b = try LiteralTable(setB)
        try rig.install(a, at: 5, owner: 2)
        try rig.install(b, at: 63)
        let w = rig.directoryWords
        #expect(w.count == 64 * 4)
        #expect(w[22] == UInt32(a.words.count) && w[23] == 2)
        #expect(w[254] == UInt32(b.words.count) && w[255] == ScanDirectory.anyTenant)
        for (k, entry) in [(5, a), (63, b)] {
            let address = UInt64(w[4 * k]) | UInt64(w[4 * k + 1]) << 32
            let table = UnsafeBufferPointer(start: UnsafePointer<UInt32>(bitPattern: UInt(address)), count: entry.words.count)
            #expect(Array(table) == entry.words, "entry \(k)")
        }
        let live: Set<Int> = [5, 63]
        for k in 0..<64 where !live.contains(k) { #expect(w[(4 * k)..<(4 * k + 4)].allSatisfy { $0 == 0 }, "entry \(k)") }
    }

    @Test("an install at index = the directory's entry count (or -1) is refused with invalidRequest and changes nothing",
          arguments: [false, true])
    func installOutsideDirectory(compiled: Bool) throws {
        let rig = try DirectoryRig(compiled: compiled)
        let a = try LiteralTable(setA)
        let entries = rig.backend.scanDirectoryEntries
        let before = rig.directoryWords
        for index in [entries, -1, ScanDirectory.maxEntries] {
            do {
                try rig.install(a, at: index)
                Issue.record("an install at \(index) was accepted")
            } catch let error as PipelineError {
                guard case .invalidRequest = error else {
                    Issue.record("an install at \(index) threw \(error)")
                    continue
                }
            }
            #expect(throws: PipelineError.self) { try rig.backend.removeScanTable(at: index) }
        }
        #expect(rig.directoryWords == before)
        // The last index is inside: it installs and runs.
        try rig.install(a, at: entries - 1)
        try rig.backend.start()
        defer { try? rig.backend.shutdown() }
        let text = alphabetText(800, seed: 3)
        try rig.publish(slot: 0, text: text, argument1: ScanDirectory.argument1(index: entries - 1, flags: 0))
        try rig.expectMatches(slot: 0, a.expected(text, startLimit: 800))
    }

    @Test("the index is bounded by control word 11, as the GPU dispatcher bounds it, even where the directory has the entry")
    func controlWord11Bounds() throws {
        let rig = try DirectoryRig()
        let a = try LiteralTable(setA)
        try rig.install(a, at: 0)
        try rig.install(a, at: 5)
        let (address, _) = rig.backend.ring.scanDirectory
        rig.backend.ring.setScanDirectory(address: address, entries: 5)
        let text = alphabetText(500, seed: 13)
        try rig.publish(slot: 0, text: text, argument1: ScanDirectory.argument1(index: 5, flags: 0))
        try rig.publish(slot: 1, text: text, argument1: ScanDirectory.argument1(index: 0, flags: 0))
        try rig.backend.start()
        defer { try? rig.backend.shutdown() }
        try rig.expectFault(slot: 0, .badArguments)
        try rig.expectMatches(slot: 1, a.expected(text, startLimit: 500))
    }
}
