import Sluice
import SluiceCore
import SluiceOps

// The self-test's checks of the crc32c and scan opcodes and of tenant
// regions: fresh random inputs through the backend under test and through the
// reference (the CPU backend for CUDA; the opcode run on the host for the CPU
// backend), compared word for word (scan: found counts, and the set of
// records when they all fit).

extension SelfTestRun {
    /// A slot of any opcode at `offset` with its own result area.
    func opSlot(
        _ slot: Int, opcode: Opcode, offset: Int, data: [UInt8], label: String, arguments: (UInt32, UInt32) = (0, 0),
        resultOffset: Int? = nil, capacity: Int? = nil, tenant: UInt32 = 0, expect: TestSlot.Expect = .count
    ) -> TestSlot {
        TestSlot(
            slot: slot,
            payload: SlotPayload(
                opcode: opcode, tenant: tenant, bufferOffset: UInt64(offset), length: UInt32(data.count),
                fileOffset: UInt64(offset) &* 5, chunkIndex: UInt32(slot), arguments: arguments,
                resultOffset: UInt32(resultOffset ?? geometry.resultOffset(ofSlot: slot)),
                resultCapacity: UInt32(capacity ?? geometry.resultWordsPerSlot)),
            data: data, expect: expect, label: label)
    }

    // MARK: crc32c

    /// CRC-32C of chunks of 0 B to several MiB at unaligned offsets, in rounds
    /// that fill the data region, against the reference; plus the check value.
    func crcCheck() throws(CheckFailure) -> String {
        let c = chunkBytes
        var sizes = [0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 4095, 4096, 4097,
                     4111, 65535, 65536, 65537, 1 << 20 | 3, c - 1, c, c + 1, 3 * c / 2 + 12_345]
        for _ in 0..<(options.quick ? 8 : 24) { sizes.append(rng.below(options.quick ? 1 << 16 : 1 << 20)) }
        for _ in 0..<(options.quick ? 2 : 6) { sizes.append(rng.below(options.quick ? 3 << 20 : 6 << 20)) }
        var plan: [(Int, TestPattern)] = []
        let patterns: [TestPattern] = [.random, .text, .random, .constant(0), .constant(0xFF)]
        for (k, size) in sizes.enumerated() { plan.append((size, patterns[k % patterns.count])) }
        plan.shuffle(using: &rng)
        var rounds = 0, chunks = 0, total = 0, index = 0
        while index < plan.count {
            var slots: [TestSlot] = []
            var cursor = 0
            while index < plan.count, slots.count < geometry.slotCount - 1 {
                let (size, pattern) = plan[index]
                let offset = cursor + rng.below(64)
                guard offset + size <= dataBytes else { break }
                slots.append(opSlot(slots.count, opcode: .crc32c, offset: offset, data: pattern.bytes(count: size, rng: &rng), label: "crc32c, \(pattern)"))
                cursor = offset + size
                index += 1
            }
            if rounds == 0 {
                // The check value, where the first round leaves room.
                let check = Array("123456789".utf8)
                if cursor + 64 + check.count <= dataBytes {
                    slots.append(opSlot(slots.count, opcode: .crc32c, offset: cursor + 1 + rng.below(15), data: check, label: "crc32c of \"123456789\""))
                }
            }
            guard !slots.isEmpty else {
                throw CheckFailure(message: "size \(plan[index].0) does not fit the \(dataBytes)-byte data region")
            }
            let (observed, _) = try runAndCompare(slots)
            if let k = slots.firstIndex(where: { $0.label == "crc32c of \"123456789\"" }), let area = observed[k].area,
                area.count >= 2, area[0] != CRC32C.checkValue || area[1] != 9
            {
                throw CheckFailure(message: "crc32c of \"123456789\" is 0x\(hex(UInt64(area[0]), digits: 8)) (length \(area[1])), expected 0xe3069283 (9)")
            }
            rounds += 1
            chunks += slots.count
            total += slots.reduce(0) { $0 + Int($1.payload.length) }
        }
        return "\(chunks) chunks of 0 B to \(formatSize(sizes.max() ?? 0)) (\(formatSize(total))) in \(rounds) rounds at unaligned offsets: every word equal to \(report.reference); \"123456789\" gives 0xe3069283"
    }

    // MARK: scan

    /// Installs `set` in the subject and the reference.
    func install(_ set: PatternSet, name: String) throws(CheckFailure) {
        let table = ScanTable(set)
        do {
            try subject.installScanTable(table.words)
            try reference?.installScanTable(table.words)
        } catch {
            throw CheckFailure(message: "installing the \(name) table: \(error.message)")
        }
        installedScan = InstalledScan(words: table.words, literals: set.literals, caseInsensitive: set.caseInsensitive, name: name)
    }

    /// `count` bytes drawn from `alphabet`.
    func alphabetText(_ count: Int, _ alphabet: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        for i in 0..<count { out[i] = alphabet[rng.below(alphabet.count)] }
        return out
    }

    func randomLiterals(_ n: Int, lengths: ClosedRange<Int>, alphabet: [UInt8]) -> [[UInt8]] {
        (0..<n).map { _ in alphabetText(lengths.lowerBound + rng.below(lengths.count), alphabet) }
    }

    /// Pattern sets of many shapes, each installed in turn; each round mixes
    /// scan slots (random sizes across several 16 KiB tiles, start limits short
    /// of the length, count-only, areas that overflow) with a count and a
    /// crc32c slot, so a worker runs other opcodes right after a scan.
    func scanCheck() throws(CheckFailure) -> String {
        let maxChunk = options.quick ? 48 << 10 : 400 << 10
        let scenarios = shortLiteralScenarios() + structuredScenarios(maxChunk: maxChunk)
        var tally = ScanTally()
        let perRound = min(geometry.slotCount - 1, 14)
        for (n, scenario) in scenarios.enumerated() {
            let set: PatternSet
            do { set = try PatternSet(literals: scenario.literals, caseInsensitive: scenario.fold) } catch {
                throw CheckFailure(message: "\(scenario.name): \(error.message)")
            }
            try install(set, name: scenario.name)
            for round in 0..<(options.quick ? 1 : 2) {
                var (slots, cursor) = scanRoundSlots(scenario, mix: n + round, perRound: perRound, maxChunk: maxChunk)
                if n == 0 && round == 0 { slots += badScanArgumentSlots(scenario, cursor: &cursor, first: slots.count, perRound: perRound) }
                guard cursor <= dataBytes, slots.count < geometry.slotCount else {
                    throw CheckFailure(message: "the scan round needs \(cursor) bytes and \(slots.count) slots")
                }
                let (observed, _) = try runAndCompare(slots)
                tally.add(slots, observed)
            }
        }
        return "\(scenarios.count) pattern sets (1 to 300,000 literals, -i, overlapping, long, shared prefixes, dense), \(tally.rounds) rounds: \(tally.scanSlots) scan slots (\(formatSize(tally.bytes)), \(tally.found) matches, \(tally.overflowed) with found > stored) equal to \(report.reference) in found counts and record sets, every record of an overflowed area a real match; count and crc32c slots between them right; bad scan arguments faulted"
    }

    /// Random literals over small alphabets: overlapping, -i, one, and the
    /// sizes (10,000 / 100,000 / 300,000) that fill the kernel's filters.
    func shortLiteralScenarios() -> [ScanScenario] {
        let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        let mixed = Array("aAbBcC .".utf8)
        var scenarios: [ScanScenario] = []
        scenarios.append(ScanScenario(
            name: "2-letter alphabet, 8 overlapping literals (prefixes, suffixes, repeats)",
            literals: randomLiterals(8, lengths: 1...5, alphabet: Array("ab".utf8)) + [Array("ab".utf8), Array("b".utf8)],
            fold: false, text: { self.alphabetText($0, Array("ab".utf8)) }))
        scenarios.append(ScanScenario(
            name: "-i, 12 mixed-case literals on mixed-case text",
            literals: randomLiterals(12, lengths: 1...6, alphabet: mixed), fold: true, text: { self.alphabetText($0, mixed) }))
        scenarios.append(ScanScenario(
            name: "1 literal", literals: randomLiterals(1, lengths: 3...3, alphabet: Array("abcd".utf8)), fold: false,
            text: { self.alphabetText($0, Array("abcd".utf8)) }))
        scenarios.append(ScanScenario(
            name: "100 literals, -i, on letters", literals: randomLiterals(100, lengths: 3...8, alphabet: letters + Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)),
            fold: true, text: { self.alphabetText($0, letters + Array("ABCDE  ".utf8)) }))
        scenarios.append(ScanScenario(
            name: "10,000 literals of 6-12 bytes over acgt",
            literals: randomLiterals(10_000, lengths: 6...12, alphabet: Array("acgt".utf8)), fold: false,
            text: { self.alphabetText($0, Array("acgt".utf8)) }))
        // 100,000 literals of 6-12 bytes fill the kernel's shared-memory
        // filter cache (a short and a long filter); 300,000 of 8-12 bytes
        // are too many long keys for it: their long filter is read from
        // global memory.
        let sixteen = Array("abcdefghijklmnop".utf8)
        scenarios.append(ScanScenario(
            name: "100,000 literals of 6-12 bytes over 16 letters (both filters in shared memory)",
            literals: randomLiterals(100_000, lengths: 6...12, alphabet: sixteen), fold: false,
            text: { self.alphabetText($0, sixteen) }))
        scenarios.append(ScanScenario(
            name: "300,000 literals of 8-12 bytes over 16 letters (the long filter past the shared-memory cache)",
            literals: randomLiterals(300_000, lengths: 8...12, alphabet: sixteen), fold: false,
            text: { self.alphabetText($0, sixteen) }))
        return scenarios
    }

    /// Sets with structure: URLs sharing a prefix, a dense set, and binary
    /// literals including two long ones cut from the text.
    func structuredScenarios(maxChunk: Int) -> [ScanScenario] {
        var scenarios: [ScanScenario] = []
        // URLs that share "https://www.": the table keys them past the
        // prefix (scan table version 3), so the kernel reads the long key
        // from tile words after the position's own.
        let prefix = Array("https://www.".utf8), urlLetters = Array("abc./".utf8)
        let urls = (0..<2_000).map { _ in prefix + alphabetText(4 + rng.below(9), urlLetters) }
        scenarios.append(ScanScenario(
            name: "2,000 URLs sharing \"https://www.\" (the long key past the shared prefix)",
            literals: urls, fold: false,
            text: { n in
                var text: [UInt8] = []
                while text.count < n {
                    text += self.rng.below(3) == 0 ? urls[self.rng.below(urls.count)] : prefix
                    text += self.alphabetText(self.rng.below(6), urlLetters)
                }
                return Array(text.prefix(n))
            }))
        scenarios.append(ScanScenario(
            name: "dense: a, aa, aaa on runs of a (areas overflow)", literals: [[0x61], [0x61, 0x61], [0x61, 0x61, 0x61]],
            fold: false, text: { [UInt8](repeating: 0x61, count: $0) }, dense: true))
        // Binary bytes with literals of 2-8 random bytes, and two long literals
        // cut from the text itself (one across the 16 KiB tile edge, longer
        // than the bytes staged past a tile).
        let binary = TestPattern.random.bytes(count: maxChunk + 40_000, rng: &rng)
        let tileEdge = ScanScenario.tileEdge
        scenarios.append(ScanScenario(
            name: "binary, 40 short literals and 2 long ones cut from the text (300 B from 10 B before a tile edge, 20 B)",
            literals: randomLiterals(40, lengths: 2...8, alphabet: (0...255).map { UInt8($0) })
                + [Array(binary[(tileEdge - 10)..<(tileEdge + 290)]), Array(binary[777..<797])],
            fold: false, text: { Array(binary[0..<min($0, binary.count)]) }))
        return scenarios
    }

    /// One round's slots for `scenario`: `perRound` chunks of random sizes
    /// (tiny, near the largest, across a tile edge, any) at unaligned
    /// offsets, each with its own result area; one is a count slot and one a
    /// crc32c slot (their places turn with `mix`), the rest scans with random
    /// start limits, count-only flags and areas that may overflow. Returns
    /// the slots and the data region's bytes they use.
    func scanRoundSlots(_ scenario: ScanScenario, mix: Int, perRound: Int, maxChunk: Int) -> (slots: [TestSlot], cursor: Int) {
        let areaWords = (geometry.resultWordsTotal - 16) / perRound
        var slots: [TestSlot] = []
        var cursor = 0
        let countAt = mix % perRound
        let crcAt = (mix + 1) % perRound
        for k in 0..<perRound {
            let area = k * areaWords
            var size: Int
            switch k % 5 {
            case 0: size = [0, 1, 3, 4, 5, 17][rng.below(6)]
            case 1: size = maxChunk - rng.below(64)
            case 2: size = ScanScenario.tileEdge + rng.below(600) - 300
            default: size = rng.below(maxChunk)
            }
            if scenario.dense { size = min(size, 3000) }
            let offset = cursor + rng.below(64)
            let data = scenario.text(size)
            size = data.count
            cursor = offset + size
            if k == countAt {
                slots.append(opSlot(slots.count, opcode: .count, offset: offset, data: data, label: "count after scans", resultOffset: area, capacity: CountOp.resultWords))
                continue
            }
            if k == crcAt {
                slots.append(opSlot(slots.count, opcode: .crc32c, offset: offset, data: data, label: "crc32c after scans", resultOffset: area, capacity: 2))
                continue
            }
            let roll = rng.below(4)
            let startLimit = roll == 0 ? size : roll == 1 ? size - rng.below(min(size, 300) + 1) : roll == 2 ? rng.below(size + 1) : size
            let countOnly: UInt32 = rng.below(4) == 0 ? ScanOp.countOnlyFlag : 0
            // Most areas hold every record; some only a few (the slot must report found > stored).
            let capacity = rng.below(3) == 0 ? ScanOp.headerWords + 2 * rng.below(6) : areaWords
            slots.append(opSlot(
                slots.count, opcode: .scan, offset: offset, data: data,
                label: "scan \(scenario.name), start limit \(startLimit)\(countOnly != 0 ? ", count only" : ""), area \(capacity) words",
                arguments: (UInt32(startLimit), countOnly), resultOffset: area, capacity: capacity))
        }
        return (slots, cursor)
    }

    /// Bad scan arguments beside good slots, in areas past the `perRound`
    /// ones in use: a start limit past the length, and areas of 3 and 0
    /// words. None where the result region has no room left for them.
    func badScanArgumentSlots(_ scenario: ScanScenario, cursor: inout Int, first: Int, perRound: Int) -> [TestSlot] {
        let spare = perRound * ((geometry.resultWordsTotal - 16) / perRound)
        guard geometry.resultWordsTotal - spare >= 16 else { return [] }
        let data = scenario.text(100)
        let offset = cursor + 7
        cursor += 200
        return [
            opSlot(first, opcode: .scan, offset: offset, data: data, label: "scan, start limit past the length",
                   arguments: (101, 0), resultOffset: spare, capacity: 8, expect: .fault(.badArguments)),
            opSlot(first + 1, opcode: .scan, offset: offset, data: data, label: "scan, area of 3 words",
                   arguments: (100, 0), resultOffset: spare, capacity: 3, expect: .fault(.resultOverflow)),
            opSlot(first + 2, opcode: .scan, offset: offset, data: data, label: "scan, area of 0 words",
                   arguments: (100, 0), resultOffset: spare, capacity: 0, expect: .fault(.resultOverflow)),
        ]
    }

    /// Scan result words against the reference: found counts equal; records
    /// distinct; with every match stored, the same set as the reference; with
    /// too small an area, `capacity` records that are each a real match.
    func compareScan(_ s: TestSlot, area: [UInt32], completion: UInt32, expected: ReferenceResult, place: String) throws(CheckFailure) {
        let capacity = s.payload.arguments.1 & ScanOp.countOnlyFlag != 0 ? 0 : (Int(s.payload.resultCapacity) - ScanOp.headerWords) / 2
        guard area.count >= ScanOp.headerWords, expected.words.count >= ScanOp.headerWords else {
            throw CheckFailure(message: "\(place): scan result shorter than its header")
        }
        let found = UInt64(area[0]) | UInt64(area[1]) << 32
        let want = UInt64(expected.words[0]) | UInt64(expected.words[1]) << 32
        guard found == want else {
            throw CheckFailure(message: "\(place): found \(found) matches, \(report.reference) found \(want)")
        }
        let stored = Int(area[2])
        guard UInt64(stored) == min(found, UInt64(capacity)), area[3] == 0,
              completion == UInt32(ScanOp.headerWords + 2 * stored), area.count >= Int(completion)
        else {
            throw CheckFailure(message: "\(place): header says \(found) found, \(stored) stored, word 3 = \(area[3]), completion \(completion); with room for \(capacity) records expected \(min(found, UInt64(capacity))) stored and completion \(ScanOp.headerWords + 2 * Int(min(found, UInt64(capacity))))")
        }
        func records(_ w: [UInt32], _ n: Int) -> [UInt64] {
            (0..<n).map { UInt64(w[ScanOp.headerWords + 2 * $0]) << 32 | UInt64(w[ScanOp.headerWords + 2 * $0 + 1]) }
        }
        let mine = records(area, stored)
        let mineSet = Set(mine)
        guard mineSet.count == stored else {
            throw CheckFailure(message: "\(place): \(stored - mineSet.count) of \(stored) stored records are duplicates")
        }
        if found <= UInt64(capacity) {
            let theirs = Set(records(expected.words, Int(expected.words[2])))
            guard mineSet == theirs else {
                let missing = theirs.subtracting(mineSet).sorted().prefix(3).map { "(\($0 >> 32), \($0 & 0xFFFF_FFFF))" }
                let extra = mineSet.subtracting(theirs).sorted().prefix(3).map { "(\($0 >> 32), \($0 & 0xFFFF_FFFF))" }
                throw CheckFailure(message: "\(place): the record set differs from \(report.reference)'s: missing \(missing), extra \(extra)")
            }
            return
        }
        guard let table = scanTable(for: s.payload) else { throw CheckFailure(message: "\(place): no table to check records against") }
        let fold = table.caseInsensitive
        for r in mine {
            let position = Int(r >> 32), pattern = Int(r & 0xFFFF_FFFF)
            guard pattern < table.literals.count, position < Int(s.payload.arguments.0) else {
                throw CheckFailure(message: "\(place): record (\(position), \(pattern)) is outside the start limit or the pattern list")
            }
            let literal = table.literals[pattern]
            let real = position + literal.count <= s.data.count && (0..<literal.count).allSatisfy { j in
                let a = s.data[position + j], b = literal[j]
                return fold ? foldASCII(a) == foldASCII(b) : a == b
            }
            guard real else {
                throw CheckFailure(message: "\(place): record (\(position), \(pattern)) is not a match of that literal")
            }
        }
    }

    // MARK: tenants

    /// A tenant table with three tenants: 0 and 1 own alternating units
    /// (chunk buffer + result area), 2 is hostile: its slots name the others'
    /// buffers and areas and must fault with tenantViolation while the others'
    /// slots (count, crc32c and scan) finish right in the same round.
    func tenantCheck() throws(CheckFailure) -> String {
        let stride = (dataBytes / geometry.slotCount) / 4096 * 4096
        let units = geometry.slotCount
        let table: [UInt32]
        do {
            table = try TenantTable.make(
                tenants: 3, chunkBytes: stride, chunkCount: units, resultWordsPerArea: geometry.resultWordsPerSlot, areaCount: units)
        } catch {
            throw CheckFailure(message: error.message)
        }
        let owners: UnsafeMutableBufferPointer<UInt32>
        do { owners = try subject.enableTenants(table) } catch {
            throw CheckFailure(message: "enableTenants: \(error.message)")
        }
        defer { subject.ring.setTenantTable(address: 0, words: 0) }
        func owner(_ u: Int) -> UInt32 {
            if u == 4 || u == 5 { return 1 }   // units 4 and 5 both belong to tenant 1
            if u == units - 1 { return TenantTable.unowned }
            return UInt32(u % 3 == 2 ? 2 : u % 2)
        }
        for u in 0..<units {
            owners[TenantTable.headerWords + u] = owner(u)
            owners[TenantTable.headerWords + units + u] = owner(u)
        }
        var slots: [TestSlot] = []
        func add(_ label: String, tenant: UInt32, unit: Int, area: Int, opcode: Opcode = .count, length: Int? = nil,
                 start: Int = 0, expect: TestSlot.Expect, capacity: Int? = nil) {
            let size = length ?? (1 + rng.below(min(stride - start, 30_000)))
            var op = opcode
            if opcode == .scan && installedScan == nil { op = .count }
            let slot = slots.count
            let data = TestPattern.text.bytes(count: size, rng: &rng)
            let args: (UInt32, UInt32) = op == .scan ? (UInt32(size), 0) : (0, 0)
            var t = opSlot(
                slot, opcode: op, offset: unit * stride + start, data: data, label: "tenant \(tenant): \(label)", arguments: args,
                resultOffset: geometry.resultOffset(ofSlot: area), capacity: capacity ?? (op == .count ? CountOp.resultWords : geometry.resultWordsPerSlot),
                tenant: tenant, expect: expect)
            // A slot that must fault places no bytes: it would overwrite the
            // owner's chunk that a good slot of this round reads.
            if case .fault = expect { t.data = [] }
            slots.append(t)
        }
        // Good slots of tenants 0 and 1 on their own units, all three opcodes.
        let ops: [Opcode] = [.count, .crc32c, .scan]
        var goodUnits = 0
        for u in 0..<min(units - 1, 24) where owner(u) < 2 && u != 4 && u != 5 {
            add("its own unit \(u)", tenant: owner(u), unit: u, area: u, opcode: ops[goodUnits % 3], start: rng.below(64), expect: .count)
            goodUnits += 1
        }
        // Tenant 1 across its two adjacent units 4 and 5: allowed.
        add("across its own units 4 and 5", tenant: 1, unit: 4, area: 4, length: 64 + rng.below(4000), start: stride - 64, expect: .count)
        // The hostile tenant 2 (units 2, 8, 14, ... are its own).
        add("reads unit 0 (tenant 0's) into its own area", tenant: 2, unit: 0, area: 2, expect: .fault(.tenantViolation))
        add("reads its own unit 8 into area 1 (tenant 1's)", tenant: 2, unit: 8, area: 1, expect: .fault(.tenantViolation))
        add("scans unit 3 (tenant 1's) into its own area", tenant: 2, unit: 3, area: 14, opcode: .scan, expect: .fault(.tenantViolation))
        add("checksums unit 6 (tenant 0's)", tenant: 2, unit: 6, area: 20, opcode: .crc32c, expect: .fault(.tenantViolation))
        add("its own unit 26 and area, but a buffer running into unit 27 (tenant 1's)", tenant: 2, unit: 26, area: 26,
            length: 200, start: stride - 100, expect: .fault(.tenantViolation))
        add("an unowned unit", tenant: 0, unit: units - 1, area: 12, expect: .fault(.tenantViolation))
        add("tenant number 9 of 3", tenant: 9, unit: 0, area: 0, expect: .fault(.tenantViolation))
        // Check order: bounds before tenants, tenants before the opcode's own checks.
        let d = UInt64(dataBytes)
        let slot = slots.count
        slots.append(TestSlot(
            slot: slot,
            payload: SlotPayload(opcode: .count, tenant: 2, bufferOffset: d - 4, length: 8, chunkIndex: UInt32(slot),
                                 resultOffset: UInt32(geometry.resultOffset(ofSlot: 0)), resultCapacity: UInt32(CountOp.resultWords)),
            data: [], expect: .fault(.bufferOutOfBounds), label: "tenant 2: buffer out of bounds (bounds are checked first)"))
        add("its own unit 10, capacity 0 (the tenant check passes, then result overflow)", tenant: 0, unit: 10, area: 10,
            expect: .fault(.resultOverflow), capacity: 0)
        add("0 bytes at unit 1 (tenant 1's): no buffer touched", tenant: 0, unit: 1, area: 28, length: 0, expect: .count)
        guard slots.count < geometry.slotCount else {
            throw CheckFailure(message: "the tenant round needs \(slots.count) slots")
        }
        let (observed, _) = try runAndCompare(slots)
        let violations = observed.filter { $0.status == .faulted && $0.completion == FaultCode.tenantViolation.rawValue }.count
        let done = observed.filter { $0.status == .done }.count
        return "3 tenants over \(units) units of \(formatSize(stride)): \(violations) slots naming another tenant's buffer or area (or no tenant) faulted with tenantViolation; \(done) slots of tenants 0 and 1 (count, crc32c, scan; across two own units; 0 bytes) right in the same round; bounds checked before tenants, tenants before the opcode's checks"
    }
}

/// One pattern set of the scan check and the text it is scanned over.
struct ScanScenario {
    /// The 16 KiB tile edge that chunk sizes and long literals straddle.
    static let tileEdge = 16_384

    var name: String
    var literals: [[UInt8]]
    var fold: Bool
    var text: (Int) -> [UInt8]
    var dense = false
}

/// What the scan check's rounds ran: the summary's figures.
struct ScanTally {
    var rounds = 0, scanSlots = 0, overflowed = 0, bytes = 0
    var found: UInt64 = 0

    /// Counts one round's completed scan slots (its areas' found and stored counts).
    mutating func add(_ slots: [TestSlot], _ observed: [Observed]) {
        for (i, s) in slots.enumerated() where s.payload.opcode == .scan && observed[i].status == .done {
            guard let area = observed[i].area else { continue }
            let f = UInt64(area[0]) | UInt64(area[1]) << 32
            found += f
            if f > UInt64(area[2]) { overflowed += 1 }
            scanSlots += 1
            bytes += Int(s.payload.length)
        }
        rounds += 1
    }
}
