import Sluice
import SluiceCore
import SluiceOps

// The self-test's check of several scan tables at once: two directory
// entries in flight together, entries owned by a tenant, an entry removed
// while another runs.

extension SelfTestRun {
    /// Directory indexes of the two-table check: neither is entry 0, which
    /// the other scan checks use.
    static let firstTableIndex = 1
    static let secondTableIndex = 5

    /// The table a scan slot names: entry 0 is `installedScan`.
    func scanTable(for p: SlotPayload) -> InstalledScan? {
        let index = ScanDirectory.index(of: p.arguments.1)
        return index == 0 ? installedScan : otherScans[index]
    }

    /// Installs `set` as directory entry `index` for `owner` in the subject
    /// (with its literals: the CPU backend's own engine) and the reference.
    func install(_ set: PatternSet, name: String, at index: Int, owner: UInt32) throws(CheckFailure) {
        let table = ScanTable(set)
        do {
            _ = try subject.installScanTable(
                table.words, literals: set.literals, caseInsensitive: set.caseInsensitive, at: index, owner: owner)
            _ = try reference?.installScanTable(
                table.words, literals: nil, caseInsensitive: set.caseInsensitive, at: index, owner: owner)
        } catch {
            throw CheckFailure(message: "installing the \(name) table at index \(index): \(error.message)")
        }
        otherScans[index] = InstalledScan(words: table.words, literals: set.literals, caseInsensitive: set.caseInsensitive, name: name)
    }

    /// Empties directory entry `index` in the subject and the reference.
    func removeTable(at index: Int) throws(CheckFailure) {
        do {
            try subject.removeScanTable(at: index)
            try reference?.removeScanTable(at: index)
        } catch {
            throw CheckFailure(message: "removing the table at index \(index): \(error.message)")
        }
        otherScans[index] = nil
    }

    /// Two tables of different shapes installed at once (directory indexes 1
    /// and 5), their scan slots in flight together, each chunk read by a slot
    /// of each; slots naming an empty entry, an index past the directory or
    /// reserved bits fault badArguments beside them. Then the owner word: a
    /// table bound to tenant 2 faults tenant 3's slots with tenant checks on
    /// and runs them with checks off; then an emptied entry faults while the
    /// other runs. Entry 0 is left as it was.
    func twoTablesCheck() throws(CheckFailure) -> String {
        let one = SelfTestRun.firstTableIndex, five = SelfTestRun.secondTableIndex
        defer {
            // Leave no entry behind for the checks that follow.
            for index in [one, five] { try? removeTable(at: index) }
        }
        let lower = Array("abcdefgh".utf8), mixed = Array("abcdefghABCDEFGH".utf8)
        let sets: [(name: String, literals: [[UInt8]], fold: Bool)] = [
            ("6 literals of 1-3 bytes", randomLiterals(6, lengths: 1...3, alphabet: lower), false),
            ("-i, 2,000 literals of 4-7 bytes", randomLiterals(2000, lengths: 4...7, alphabet: mixed), true),
        ]
        var compiled: [PatternSet] = []
        for set in sets {
            do { compiled.append(try PatternSet(literals: set.literals, caseInsensitive: set.fold)) } catch {
                throw CheckFailure(message: "\(set.name): \(error.message)")
            }
        }
        try install(compiled[0], name: sets[0].name, at: one, owner: ScanDirectory.anyTenant)
        try install(compiled[1], name: sets[1].name, at: five, owner: ScanDirectory.anyTenant)
        let text = mixed + Array(" ".utf8)
        let pairs = try bothTablesRound(text: text)
        // The owner word, tenant checks on. Table 5 now belongs to tenant 2
        // (installed over the live entry); table 1 to every tenant.
        try install(compiled[1], name: sets[1].name + ", tenant 2's", at: five, owner: 2)
        try ownedTableRounds(text: text)
        return "tables at indexes \(one) (\(sets[0].name)) and \(five) (\(sets[1].name)) in flight at once, \(pairs) chunks scanned by both, equal to \(report.reference); empty entry, index past the directory and reserved bits faulted badArguments; a tenant-2 table faulted tenant 3's slots with tenantViolation (checks on) and ran them (checks off); a removed entry faulted while the other ran"
    }

    /// Both tables in flight at once, each chunk scanned by both (in turn
    /// first), beside slots naming an empty entry, an index past the
    /// directory and a reserved bit; returns the chunks scanned by both.
    /// Fails where every chunk gave both tables the same count, which could
    /// not show a slot run with the other table.
    private func bothTablesRound(text: [UInt8]) throws(CheckFailure) -> Int {
        let one = SelfTestRun.firstTableIndex, five = SelfTestRun.secondTableIndex
        let areaWords = geometry.resultWordsTotal / 16
        let bytes = dataBytes / 16
        var slots: [TestSlot] = []
        var cursor = 0
        var pairs: [(Int, Int)] = []
        for pair in 0..<6 {
            let size = [rng.below(600), rng.below(4096), rng.below(min(bytes, 64 << 10))][pair % 3]
            let data = alphabetText(size, text)
            let offset = cursor + rng.below(64)
            cursor = offset + size
            let startLimit = pair == 4 ? size - rng.below(min(size, 300) + 1) : size
            let countOnly: UInt32 = pair == 5 ? ScanOp.countOnlyFlag : 0
            for index in pair % 2 == 0 ? [one, five] : [five, one] {
                slots.append(opSlot(
                    slots.count, opcode: .scan, offset: offset, data: data,
                    label: "scan with table \(index) (\(otherScans[index]?.name ?? "?")), start limit \(startLimit)",
                    arguments: (UInt32(startLimit), ScanDirectory.argument1(index: index, flags: countOnly)),
                    resultOffset: slots.count * areaWords, capacity: areaWords))
            }
            pairs.append((slots.count - 2, slots.count - 1))
        }
        let past = min(subject.scanDirectoryEntries, ScanDirectory.maxEntries - 1)
        let bad: [(String, UInt32)] = [
            ("an empty entry (index 2)", ScanDirectory.argument1(index: 2, flags: 0)),
            ("index \(past), past the directory (or its last)", ScanDirectory.argument1(index: past, flags: 0)),
            ("reserved bit 1 with index \(one)", ScanDirectory.argument1(index: one, flags: 0) | 2),
        ]
        for (label, argument1) in bad {
            slots.append(opSlot(
                slots.count, opcode: .scan, offset: 0, data: [], label: "scan naming \(label)", arguments: (0, argument1),
                resultOffset: slots.count * areaWords, capacity: areaWords, expect: .fault(.badArguments)))
        }
        guard cursor <= dataBytes, slots.count <= 16, slots.count < geometry.slotCount else {
            throw CheckFailure(message: "the two-table round needs \(cursor) bytes and \(slots.count) slots")
        }
        let (observed, _) = try runAndCompare(slots)
        func found(_ i: Int) -> UInt64? {
            guard observed[i].status == .done, let a = observed[i].area, a.count >= 2 else { return nil }
            return UInt64(a[0]) | UInt64(a[1]) << 32
        }
        guard pairs.contains(where: { found($0.0) != found($0.1) }) else {
            throw CheckFailure(message: "both tables found the same counts on every chunk: the round cannot tell them apart")
        }
        return pairs.count
    }

    /// A slot of the owned-table rounds: the table it names, what it tries, what must come of it.
    private typealias OwnedCase = (index: Int, label: String, expect: TestSlot.Expect, startPastEnd: Bool, capacity: Int?)

    /// Table 5 owned by tenant 2, table 1 by every tenant, units owned by
    /// tenants 2 and 3 in turn: with tenant checks on, tenant 3's slots on
    /// table 5 fault (before an empty entry, an empty area or a bad start
    /// limit would), with them off they run; then table 5 is removed and
    /// faults while table 1 still runs.
    private func ownedTableRounds(text: [UInt8]) throws(CheckFailure) {
        let one = SelfTestRun.firstTableIndex, five = SelfTestRun.secondTableIndex
        let stride = (dataBytes / geometry.slotCount) / 4096 * 4096
        let units = geometry.slotCount
        let owners: UnsafeMutableBufferPointer<UInt32>
        do {
            let table = try TenantTable.make(
                tenants: 4, chunkBytes: stride, chunkCount: units, resultWordsPerArea: geometry.resultWordsPerSlot, areaCount: units)
            owners = try subject.enableTenants(table)
        } catch {
            throw CheckFailure(message: "enableTenants: \(error.message)")
        }
        defer { subject.ring.setTenantTable(address: 0, words: 0) }
        for u in 0..<units {
            owners[TenantTable.headerWords + u] = Self.ownedRoundTenant(u)
            owners[TenantTable.headerWords + units + u] = Self.ownedRoundTenant(u)
        }
        try ownedRound([
            (five, "its own table", .count, false, nil),
            (five, "tenant 2's table", .fault(.tenantViolation), false, nil),
            (one, "a table for every tenant", .count, false, nil),
            (one, "a table for every tenant", .count, false, nil),
            (2, "an empty entry (checked before the owner)", .fault(.badArguments), false, nil),
            (five, "tenant 2's table, area of 0 words (the owner is checked first)", .fault(.tenantViolation), false, 0),
            (five, "its own table again", .count, false, nil),
            (five, "tenant 2's table, start limit past the length (the owner is checked first)", .fault(.tenantViolation), true, nil),
        ], stride: stride, text: text)
        // Tenant checks off: every slot may use every table.
        subject.ring.setTenantTable(address: 0, words: 0)
        try ownedRound([(five, "tenant 2's table, tenant checks off", .count, false, nil),
                        (five, "tenant 2's table, tenant checks off", .count, false, nil)], stride: stride, text: text)
        try removeTable(at: five)
        try ownedRound([(five, "a removed table", .fault(.badArguments), false, nil),
                        (one, "the table still installed", .count, false, nil)], stride: stride, text: text)
    }

    /// The tenant that owns unit `u` in the owned-table rounds.
    private static func ownedRoundTenant(_ u: Int) -> UInt32 { u % 2 == 0 ? 2 : 3 }

    /// One owned-table round: slot k scans a chunk of unit k as the unit's tenant.
    private func ownedRound(_ cases: [OwnedCase], stride: Int, text: [UInt8]) throws(CheckFailure) {
        var round: [TestSlot] = []
        for (k, c) in cases.enumerated() {
            let size = 1 + rng.below(min(stride - 64, 8192))
            let data = alphabetText(size, text)
            round.append(opSlot(
                k, opcode: .scan, offset: k * stride + rng.below(64), data: data, label: "tenant \(Self.ownedRoundTenant(k)): \(c.label)",
                arguments: (UInt32(size + (c.startPastEnd ? 1 : 0)), ScanDirectory.argument1(index: c.index, flags: 0)),
                capacity: c.capacity, tenant: Self.ownedRoundTenant(k), expect: c.expect))
        }
        _ = try runAndCompare(round)
    }
}
