// Fuzz target: random slot images through the CPU megakernel.
//
// Input layout (little-endian):
//   [0]      flags: bit 0 normalize the slot (reduce offsets, lengths, the opcode
//            and the tenant modulo the region sizes so that most slots get past the
//            bounds checks; without it the 16 words are used as they are); bit 1 a
//            scan table is installed; bit 2 also run the slot through a real
//            CPUBackend ring; bit 3 ask the ring to cancel the slot right after
//            publishing; bit 4 with no table installed, point the control block at a
//            bogus address; bit 5 the table is case-insensitive; bits 6-7 the ring slot
//   [1]      more flags: bit 0 the table also gets a Hyperscan matcher (where
//            libhs.so.5 loads); bit 1 tenant checks are on (a tenant table is installed)
//   [2..3]   result region words (mod 1100)
//   [4]      pattern part length
//   [5..8]   tenant table seed: tenants, chunk bytes, area words, counts, owners
//   [9..72]  the slot: 16 × u32 (status and completion are ignored; host flags bit 1
//            names the device ingest region, which the CPU lacks: fault 8)
//   pattern part (a pattern file, for the direct run's table)
//   the data region: the rest
//
// Direct run: SlotExecutor.execute on an exactly sized data region and result
// region (heap blocks, so AddressSanitizer catches any access past either), the
// result region filled with a canary. The outcome, every result word and the
// untouched canary everywhere else are checked against an independent model of
// docs/protocol.md ("Faults", "Opcodes") and of tenant ownership; the data
// region must be unchanged.
//
// Ring run (bit 2): the same slot, published on a CPUBackend with 2 worker
// threads (one backend for the whole process: 4 slots of 300 result words, 4096
// data bytes, tables and a tenant table installed once and switched per input),
// waited for with a bounded wait (3 s), reclaimed. It must end DONE or FAULTED
// with a known code (CANCELLED only when cancel was asked), pass the same model,
// agree with SlotExecutor on a copy of the same memory, and move the control
// block's counters by exactly one slot.
#if canImport(Glibc)
import Glibc
#endif
import FuzzSupport
import SluiceCore
import SluiceHyperscan
import SluiceOps
@testable import SluiceCPU  // ScanTableRegistry.install and TenantTableHolder.install are internal

let defaultLiterals: [[UInt8]] = [ascii("needle"), ascii("ab"), ascii("x"), [0xFF, 0x00, 0x41], ascii("Hay"), ascii("abcd")]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSlots(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var r = ByteReader(Array(UnsafeBufferPointer(start: bytes, count: size)))
    let flags = r.u8(), flags2 = r.u8()
    let resultWords = Int(r.u16() % 1100)
    let patternLength = Int(r.u8())
    let tenantSeed = r.u32()
    let raw = (0..<SlotWord.count).map { _ in r.u32() }
    let patternBytes = r.take(patternLength)
    let data = r.rest()

    let normalize = flags & 1 != 0
    let withTable = flags & 2 != 0, caseInsensitive = flags & 32 != 0, hyperscan = flags2 & 1 != 0
    let withTenants = flags2 & 2 != 0
    let bogus: UInt64? = flags & 16 == 0 ? nil : UInt64(raw[7]) | UInt64(raw[8]) << 32

    var literals = PatternSet.parseLines(patternBytes)
    if literals.isEmpty { literals = defaultLiterals }
    let table = withTable ? Table(literals: literals, caseInsensitive: caseInsensitive, hyperscan: hyperscan) : nil
    var payload = SlotPayload(words: raw)
    if normalize { payload = normalized(payload, dataBytes: data.count, resultWords: resultWords) }
    let tenants = withTenants
        ? tenantTable(seed: tenantSeed, tenant: payload.tenant, dataBytes: data.count, resultWords: resultWords) : nil

    runDirect(payload, data: data, resultWords: resultWords, table: table, bogusAddress: bogus, tenants: tenants)

    if flags & 4 != 0 {
        let ring = RingFixture.shared
        var p = SlotPayload(words: raw)
        if normalize { p = normalized(p, dataBytes: RingFixture.dataBytes, resultWords: RingFixture.resultWords) }
        ring.run(
            p, data: data, slot: Int(flags >> 6), cancel: flags & 8 != 0,
            table: withTable ? ring.tables[(caseInsensitive ? 1 : 0) + (hyperscan ? 2 : 0)] : nil,
            bogusAddress: bogus, tenantSeed: withTenants ? tenantSeed : nil)
    }
    return 0
}

/// A compiled set, and the Hyperscan matcher installed with it (if any).
struct Table {
    var literals: [[UInt8]]
    var caseInsensitive: Bool
    var words: [UInt32]
    var hyperscan: HyperscanMatcher?

    init?(literals: [[UInt8]], caseInsensitive: Bool, hyperscan: Bool) {
        guard let set = try? PatternSet(literals: literals, caseInsensitive: caseInsensitive) else { return nil }
        self.literals = literals
        self.caseInsensitive = caseInsensitive
        words = ScanTable(set).words
        self.hyperscan = hyperscan ? hyperscanMatcher(literals: literals, caseInsensitive: caseInsensitive) : nil
    }
}

/// Brings offsets, lengths, the opcode and the tenant near the regions'
/// sizes: mostly in range, sometimes one or two past.
func normalized(_ p: SlotPayload, dataBytes d: Int, resultWords n: Int) -> SlotPayload {
    var q = p
    q.opcode = Opcode(rawValue: p.opcode.rawValue % 6)   // 0 and 5 undefined, 4 the nop
    q.tenant = p.tenant % 5
    q.bufferOffset = p.bufferOffset % UInt64(d + 2)
    let room = UInt64(max(0, d - Int(q.bufferOffset)))
    q.length = UInt32(UInt64(p.length) % (room + 2))
    q.resultOffset = p.resultOffset % UInt32(n + 2)
    let resultRoom = UInt32(max(0, n - Int(q.resultOffset)))
    q.resultCapacity = p.resultCapacity % (resultRoom + 2)
    q.arguments.0 = UInt32(UInt64(p.arguments.0) % (UInt64(q.length) + 2))
    return q
}

/// A tenant table (TenantTable layout) derived from `seed`: 1-4 tenants,
/// chunks of 1-256 bytes and areas of 1-512 words roughly covering the
/// regions (one more or fewer), most of them owned by `tenant`.
func tenantTable(seed: UInt32, tenant: UInt32, dataBytes: Int, resultWords: Int) -> [UInt32] {
    let tenants = 1 + Int(seed & 3), chunkBytes = 1 + Int(seed >> 2 & 0xFF), areaWords = 1 + Int(seed >> 10 & 0x1FF)
    let chunks = max(0, (dataBytes + chunkBytes - 1) / chunkBytes + Int(seed >> 19 & 3) - 1)
    let areas = max(0, (resultWords + areaWords - 1) / areaWords + Int(seed >> 21 & 3) - 1)
    guard var words = try? TenantTable.make(
        tenants: tenants, chunkBytes: chunkBytes, chunkCount: chunks, resultWordsPerArea: areaWords, areaCount: areas)
    else { fail("TenantTable.make refused \(tenants) tenants, \(chunks) × \(chunkBytes), \(areas) × \(areaWords)") }
    var rng = seed | 1
    for i in TenantTable.headerWords..<words.count {
        rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5
        words[i] = rng % 8 != 0 ? tenant : (rng >> 8) % 6 == 5 ? TenantTable.unowned : (rng >> 8) % 6
    }
    return words
}

/// The canary a result word holds until something writes it.
@inline(__always) func canary(_ i: Int) -> UInt32 { 0xC0DE_0000 | UInt32(i & 0xFFFF) }

/// A RingView in a small heap block whose control block names the scan and tenant tables.
final class ControlOnlyRing {
    let memory: UnsafeMutableRawBufferPointer
    let view: RingView
    init() {
        let geometry = try! RingGeometry(slotCount: 1, resultWordsPerSlot: 0)
        memory = .allocate(byteCount: geometry.byteCount, alignment: 64)
        view = try! RingView(bytes: memory, geometry: geometry)
        view.initialize()
    }
    deinit { memory.deallocate() }
}

/// SlotExecutor on exactly sized regions, checked against the model.
/// Returns the outcome and the result region afterwards.
@discardableResult
func runDirect(
    _ p: SlotPayload, data: [UInt8], resultWords: Int, table: Table?, bogusAddress: UInt64?, tenants: [UInt32]?
) -> (SlotExecutor.Outcome, [UInt32]) {
    let registry = ScanTableRegistry(), holder = TenantTableHolder()
    let ring = ControlOnlyRing()
    if let table {
        guard let address = try? registry.install(table.words, hyperscan: table.hyperscan) else {
            fail("installing a compiled table failed")
        }
        ring.view.setScanTable(address: address, words: UInt64(table.words.count))
    } else if let bogusAddress {
        ring.view.setScanTable(address: bogusAddress, words: 1000)
    }
    if let tenants {
        guard let (address, _) = try? holder.install(tenants) else { fail("installing a tenant table failed: \(tenants)") }
        ring.view.setTenantTable(address: address, words: UInt64(tenants.count))
    }
    let before = (0..<resultWords).map(canary)
    return withExactBytes(data) { dataRegion in
        withExactWords(before) { results in
            let executor = SlotExecutor(
                data: UnsafeRawBufferPointer(dataRegion), results: results, ring: ring.view, scanTables: registry,
                tenants: holder)
            let outcome = executor.execute(p, worker: 0)
            Stats.count("direct \(p.opcode.isDefined ? p.opcode.name : "undefined") \(outcome)\(table?.hyperscan != nil ? " hyperscan" : "")\(tenants != nil ? " tenants" : "")")
            let after = Array(results)
            require(Array(UnsafeRawBufferPointer(dataRegion)) == data, "\(p.opcode) wrote into the data region")
            check(p, outcome: outcome, data: data, before: before, after: after, table: table, tenants: tenants)
            withExtendedLifetime((ring, registry, holder)) {}
            return (outcome, after)
        }
    }
}

/// Whether the tenant table lets `p` touch its bytes and result words,
/// one byte and one word at a time (the ranges are within the regions).
func tenantPermits(_ p: SlotPayload, _ t: [UInt32]) -> Bool {
    let tenantCount = t[1], chunkBytes = Int(t[2]), chunks = Int(t[3]), areaWords = Int(t[4]), areas = Int(t[5])
    guard p.tenant < tenantCount else { return false }
    for b in Int(p.bufferOffset)..<(Int(p.bufferOffset) + Int(p.length)) {
        let c = b / chunkBytes
        if c >= chunks || t[TenantTable.headerWords + c] != p.tenant { return false }
    }
    for w in Int(p.resultOffset)..<(Int(p.resultOffset) + Int(p.resultCapacity)) {
        let a = w / areaWords
        if a >= areas || t[TenantTable.headerWords + chunks + a] != p.tenant { return false }
    }
    return true
}

/// The model: docs/protocol.md's fault order and each opcode's result words.
func check(
    _ p: SlotPayload, outcome: SlotExecutor.Outcome, data: [UInt8], before: [UInt32], after: [UInt32], table: Table?,
    tenants: [UInt32]?, anyRecordOrder: Bool = false, context extra: String = ""
) {
    let context = "slot \(p.words) on \(data.count) data bytes, \(before.count) result words: \(outcome)\(extra)"
    func expect(_ expected: SlotExecutor.Outcome) { require(outcome == expected, "expected \(expected); \(context)") }
    func untouched(except range: Range<Int> = 0..<0) {
        for i in before.indices where !range.contains(i) && after[i] != before[i] {
            fail("result word \(i) written outside the slot's words \(range); \(context)")
        }
    }
    guard p.opcode.isDefined else { expect(.fault(.unknownOpcode)); return untouched() }
    guard SlotExecutor.supported.contains(p.opcode) else { expect(.fault(.unsupportedOpcode)); return untouched() }
    // A nop checks no other word and writes nothing (protocol.md, "4: nop").
    if p.opcode == .nop { expect(.done(resultWords: 0)); return untouched() }
    // The CPU has no device ingest region (host flags bit 1): fault 8, before the bounds.
    guard p.region == .host else { expect(.fault(.regionUnavailable)); return untouched() }
    guard p.bufferOffset <= UInt64(data.count), UInt64(p.length) <= UInt64(data.count) - p.bufferOffset else {
        expect(.fault(.bufferOutOfBounds)); return untouched()
    }
    guard UInt64(p.resultOffset) + UInt64(p.resultCapacity) <= UInt64(before.count) else {
        expect(.fault(.resultOutOfBounds)); return untouched()
    }
    if let tenants, !tenantPermits(p, tenants) { expect(.fault(.tenantViolation)); return untouched() }
    let start = Int(p.bufferOffset), chunk = Array(data[start..<(start + Int(p.length))])
    let area = Int(p.resultOffset), capacity = Int(p.resultCapacity)
    var expectedWords: [UInt32]
    switch p.opcode {
    case .count:
        guard capacity >= CountOp.resultWords else { expect(.fault(.resultOverflow)); return untouched() }
        expectedWords = chunk.withUnsafeBytes(referenceCount)
    case .crc32c:
        guard capacity >= 2 else { expect(.fault(.resultOverflow)); return untouched() }
        expectedWords = [chunk.withUnsafeBytes { CRC32C.updateBitwise(0, $0) }, p.length]
    case .scan:
        guard let table else { expect(.fault(.badArguments)); return untouched() }
        guard p.arguments.0 <= p.length else { expect(.fault(.badArguments)); return untouched() }
        guard capacity >= ScanOp.headerWords else { expect(.fault(.resultOverflow)); return untouched() }
        let matches = referenceMatches(
            literals: table.literals, caseInsensitive: table.caseInsensitive, text: chunk, startLimit: Int(p.arguments.0))
        let room = p.arguments.1 & ScanOp.countOnlyFlag != 0 ? 0 : (capacity - ScanOp.headerWords) / 2
        let stored = min(room, matches.count)
        expectedWords = [UInt32(truncatingIfNeeded: matches.count), UInt32(truncatingIfNeeded: matches.count >> 32), UInt32(stored), 0]
        // The stored records are matches, each once. The built-in matcher stores
        // them in position order (at one position the table decides), so when the
        // area overflows it keeps every match before the last stored position;
        // Hyperscan stores them by end offset, so only the set is checked.
        let records = (0..<stored).map { Match(Int(after[area + 4 + 2 * $0]), after[area + 5 + 2 * $0]) }
        require(Set(records).count == stored && Set(records).isSubset(of: matches), "scan records \(records) not among \(matches); \(context)")
        if table.hyperscan == nil && !anyRecordOrder {
            for i in records.indices.dropFirst() where records[i - 1].position > records[i].position {
                fail("scan records out of position order: \(records); \(context)")
            }
            if let last = records.last {
                let earlier = matches.filter { $0.position < last.position }
                require(Set(earlier).isSubset(of: Set(records)), "scan stored \(records) but skipped some of \(earlier); \(context)")
            }
        }
        for rec in records { expectedWords += [UInt32(rec.position), rec.pattern] }
    default:
        // An opcode this model does not know yet: only where it may write.
        switch outcome {
        case .done(let n):
            require(Int(n) <= capacity, "done with \(n) words in a \(capacity)-word area; \(context)")
            untouched(except: area..<(area + Int(n)))
        case .fault:
            untouched()
        }
        return
    }
    expect(.done(resultWords: UInt32(expectedWords.count)))
    require(Array(after[area..<(area + expectedWords.count)]) == expectedWords,
            "result words \(Array(after[area..<(area + expectedWords.count)])), expected \(expectedWords); \(context)")
    untouched(except: area..<(area + expectedWords.count))
}

/// One CPUBackend for the whole process (creating one per input would make
/// threads and mappings per input, and installed tables are kept for the
/// backend's life), with its tables installed once and switched per input.
final class RingFixture: @unchecked Sendable {
    static let slots = 4
    static let resultWordsPerSlot = 300
    static let resultWords = slots * resultWordsPerSlot
    static let dataBytes = 4096
    static let chunkBytes = 1024
    static let shared = RingFixture()

    struct Installed {
        var address: UInt64
        var words: UInt64
        var table: Table
        /// Whether the backend runs this table with Hyperscan.
        var hyperscan: Bool
    }

    let backend: CPUBackend
    var ring: RingView { backend.ring }
    /// Built-in plain, built-in case-insensitive, then the same two given to
    /// the backend with their literals (Hyperscan, where it loads).
    var tables: [Installed] = []
    let tenantView: UnsafeMutableBufferPointer<UInt32>
    let tenantAddress: (address: UInt64, words: UInt64)

    init() {
        do {
            backend = try CPUBackend(
                configuration: BackendConfiguration(
                    geometry: try RingGeometry(slotCount: RingFixture.slots, resultWordsPerSlot: RingFixture.resultWordsPerSlot),
                    dataBytes: RingFixture.dataBytes, workers: 2))
            try backend.start()
            for withLiterals in [false, true] {
                for caseInsensitive in [false, true] {
                    var t = Table(literals: defaultLiterals, caseInsensitive: caseInsensitive, hyperscan: false)!
                    if withLiterals {
                        _ = try backend.installScanTable(t.words, literals: t.literals, caseInsensitive: caseInsensitive)
                    } else {
                        try backend.installScanTable(t.words)
                    }
                    let hs = backend.scanEngine != .builtin
                    if hs { t.hyperscan = hyperscanMatcher(literals: t.literals, caseInsensitive: caseInsensitive) }
                    let installed = backend.ring.scanTable
                    tables.append(Installed(address: installed.address, words: installed.words, table: t, hyperscan: hs))
                }
            }
            let tenantWords = try TenantTable.make(
                tenants: 4, chunkBytes: RingFixture.chunkBytes, chunkCount: RingFixture.dataBytes / RingFixture.chunkBytes,
                resultWordsPerArea: RingFixture.resultWordsPerSlot, areaCount: RingFixture.slots)
            tenantView = try backend.enableTenants(tenantWords)
            tenantAddress = backend.ring.tenantTable
        } catch {
            fail("could not start the CPU backend: \(error)")
        }
    }

    func run(
        _ p: SlotPayload, data: [UInt8], slot: Int, cancel: Bool, table: Installed?, bogusAddress: UInt64?,
        tenantSeed: UInt32?
    ) {
        let region = backend.dataRegion
        let copy = min(data.count, region.count)
        region.initializeMemory(as: UInt8.self, repeating: 0)
        data.withUnsafeBytes { region.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<copy])) }
        let memory = Array(UnsafeRawBufferPointer(region))
        if let table {
            ring.setScanTable(address: table.address, words: table.words)
        } else {
            ring.setScanTable(address: bogusAddress ?? 0, words: bogusAddress == nil ? 0 : 1000)
        }
        var tenants: [UInt32]?
        if let tenantSeed {
            var rng = tenantSeed | 1
            for i in TenantTable.headerWords..<tenantView.count {
                rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5
                tenantView[i] = rng % 4 != 0 ? p.tenant : (rng >> 8) % 5 == 4 ? TenantTable.unowned : (rng >> 8) % 5
            }
            tenants = Array(tenantView)
            ring.setTenantTable(address: tenantAddress.address, words: tenantAddress.words)
        } else {
            ring.setTenantTable(address: 0, words: 0)
        }
        let results = ring.results
        for i in results.indices { results[i] = canary(i) }
        let canaries = Array(results)
        do {
            let start = try ring.observe()
            try ring.publish(slot: slot, p)
            var cancelAsked = false
            if cancel {
                do {
                    try ring.requestCancel(slot: slot)
                    cancelAsked = true
                } catch {
                    // Too late: a worker claimed it first.
                    let now = try ring.status(ofSlot: slot)
                    require(now != .published, "requestCancel refused a PUBLISHED slot: \(error)")
                }
            }
            let deadline = monotonicNanoseconds() + 3_000_000_000
            var seen = start.epoch
            while !(try ring.status(ofSlot: slot)).isTerminal {
                require(monotonicNanoseconds() < deadline,
                        "slot \(slot) still \(try! ring.status(ofSlot: slot)) after 3 s: \(p.words)")
                seen = try backend.waitForProgress(after: seen, timeout: .milliseconds(50))
            }
            let record = try ring.reclaim(slot: slot)
            let end = try ring.observe()
            let after = Array(results)
            for other in 0..<RingFixture.slots {
                let status = try ring.status(ofSlot: other)
                require(status == .empty, "slot \(other) is \(status), not EMPTY, after reclaiming \(slot)")
            }
            require(Array(UnsafeRawBufferPointer(region)) == memory, "the ring's slot wrote into the data region")
            require(end.epoch == start.epoch + 1, "epoch moved from \(start.epoch) to \(end.epoch) for one slot")
            require(end.workersRunning == 2, "\(end.workersRunning) workers running")
            require(record.payload == p, "the slot's payload changed: \(record.payload.words) vs \(p.words)")

            Stats.count("ring \(p.opcode.isDefined ? p.opcode.name : "undefined") \(record.status) \(record.completion > 7 ? "" : "\(record.completion)")\(table?.hyperscan == true ? " hyperscan" : "")\(tenants != nil ? " tenants" : "")")
            let context = "; ring slot \(slot)\(table.map { $0.hyperscan ? ", Hyperscan" : ", built-in" } ?? "")"
            let outcome: SlotExecutor.Outcome
            switch record.status {
            case .done:
                outcome = .done(resultWords: record.completion)
                // A nop counts no bytes.
                let bytes = p.opcode == .nop ? 0 : UInt64(p.length)
                require(end.slotsDone == start.slotsDone + 1 && end.bytesProcessed == start.bytesProcessed + bytes,
                        "DONE counters \(start) -> \(end)")
                require(end.slotsFaulted == start.slotsFaulted && end.slotsCancelled == start.slotsCancelled, "counters")
            case .faulted:
                guard let code = FaultCode(rawValue: record.completion) else {
                    fail("FAULTED with unknown code \(record.completion)\(context)")
                }
                outcome = .fault(code)
                require(end.slotsFaulted == start.slotsFaulted + 1 && end.slotsDone == start.slotsDone, "FAULTED counters")
                require(end.lastFault == FaultRecord(slot: slot, code: code, opcodeLow16: p.opcode.rawValue),
                        "last fault \(String(describing: end.lastFault))\(context)")
            case .cancelled:
                require(cancelAsked, "CANCELLED without a cancel request\(context)")
                require(after == canaries, "a cancelled slot wrote results\(context)")
                require(end.slotsCancelled == start.slotsCancelled + 1, "CANCELLED counters")
                return
            default:
                fail("reclaimed a slot in state \(record.status)")
            }
            check(p, outcome: outcome, data: memory, before: canaries, after: after, table: table?.table, tenants: tenants,
                  anyRecordOrder: table?.hyperscan ?? false, context: context)
            // And what SlotExecutor does on an exact copy of the same memory.
            let (direct, _) = runDirect(
                p, data: memory, resultWords: RingFixture.resultWords, table: table?.table, bogusAddress: bogusAddress,
                tenants: tenants)
            require(direct == outcome, "ring \(outcome), SlotExecutor \(direct); payload \(p.words)\(context)")
        } catch {
            fail("ring protocol error: \(error)")
        }
    }
}

// MARK: seeds

@_cdecl("LLVMFuzzerInitialize")
public func fuzzSlotsInitialize(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    writeSeedsIfAsked(slotSeeds)
    return 0
}

func slotSeed(
    flags: UInt8, flags2: UInt8 = 0, resultWords: UInt16, patterns: [UInt8] = [], tenantSeed: UInt32 = 0,
    _ p: SlotPayload, data: [UInt8]
) -> [UInt8] {
    var w = ByteWriter()
    w.u8(flags)
    w.u8(flags2)
    w.u16(resultWords)
    w.u8(UInt8(patterns.count))
    w.u32(tenantSeed)
    for x in p.words { w.u32(x) }
    w.append(patterns)
    w.append(data)
    return w.bytes
}

func slotSeeds() -> [(name: String, bytes: [UInt8])] {
    let text = ascii("a needle in the Haystack\nab abcd x\n") + [0xFF, 0x00, 0x41, 0x0A] + ascii("NEEDLE hay\n")
    let n = UInt32(text.count)
    return [
        ("count", slotSeed(flags: 0, resultWords: 300, SlotPayload(opcode: .count, bufferOffset: 2, length: n - 2, resultOffset: 10, resultCapacity: 258), data: text)),
        ("count-ring", slotSeed(flags: 4 | 1 << 6, resultWords: 258, SlotPayload(opcode: .count, bufferOffset: 0, length: n, resultOffset: 0, resultCapacity: 258), data: text)),
        ("crc32c", slotSeed(flags: 4, resultWords: 4, SlotPayload(opcode: .crc32c, bufferOffset: 1, length: n - 1, resultOffset: 1, resultCapacity: 2), data: text)),
        ("scan-table", slotSeed(flags: 2, resultWords: 40, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n - 3, 0), resultOffset: 4, resultCapacity: 36), data: text)),
        ("scan-table-patterns-ci", slotSeed(flags: 2 | 32, resultWords: 20, patterns: ascii("hay\nNeedle\r\nin\n"), SlotPayload(opcode: .scan, bufferOffset: 2, length: n - 2, arguments: (n - 2, 0), resultOffset: 0, resultCapacity: 9), data: text)),
        ("scan-ring-2", slotSeed(flags: 2 | 4 | 2 << 6, resultWords: 600, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, 0), resultOffset: 300, resultCapacity: 300), data: text)),
        ("scan-hyperscan-ring", slotSeed(flags: 2 | 4 | 32, flags2: 1, resultWords: 600, patterns: ascii("hay\nNeedle\r\nin\n"), SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n - 4, 0), resultOffset: 300, resultCapacity: 12), data: text)),
        // libhyperscan 5.4.0's hs_scan fails (HS_UNKNOWN_ERROR) on this set and
        // chunk: SlotExecutor must fall back to the built-in matcher.
        ("scan-hyperscan-fails", slotSeed(
            flags: 2, flags2: 1, resultWords: 100, patterns: [0, 0x0A, 0, 0, 0x2E] + [UInt8](repeating: 0, count: 34),
            SlotPayload(opcode: .scan, bufferOffset: 0, length: 35, arguments: (35, 0), resultOffset: 0, resultCapacity: 100),
            data: [0, 0x10, 0, 0, 0, 0, 0, 0, 0x9E, 0xF5, 0x9E, 0, 0, 0x2E] + [UInt8](repeating: 0, count: 21))),
        ("scan-count-only", slotSeed(flags: 2 | 4, resultWords: 4, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, 1), resultOffset: 0, resultCapacity: 4), data: text)),
        ("scan-no-table", slotSeed(flags: 4 | 16, resultWords: 8, SlotPayload(opcode: .scan, bufferOffset: 0, length: 4, fileOffset: 0xDEAD_BEEF_0000, arguments: (4, 0), resultOffset: 0, resultCapacity: 8), data: text)),
        ("tenants-ring", slotSeed(flags: 1 | 2 | 4, flags2: 2, resultWords: 900, tenantSeed: 0x0012_3457, SlotPayload(opcode: .count, tenant: 1, bufferOffset: 3, length: 40, resultOffset: 301, resultCapacity: 258), data: text)),
        ("out-of-bounds", slotSeed(flags: 4 | 3 << 6, resultWords: 8, SlotPayload(opcode: .count, bufferOffset: 0xFFFF_FFFF_FFFF_FFF0, length: 0x20, resultOffset: 0, resultCapacity: 258), data: text)),
        ("unknown-opcode-cancel", slotSeed(flags: 4 | 8, resultWords: 1, SlotPayload(opcode: Opcode(rawValue: 9), bufferOffset: 0, length: 0), data: [])),
        ("nop-cancel-out-of-bounds", slotSeed(flags: 4 | 8, flags2: 2, resultWords: 8, tenantSeed: 0x0012_3457, SlotPayload(opcode: .nop, tenant: 3, bufferOffset: 0xFFFF_FFFF_FFFF_FFF0, length: 0x20, resultOffset: 7, resultCapacity: 258, region: .device), data: text)),
        ("normalized", slotSeed(flags: 1 | 2 | 4, resultWords: 700, SlotPayload(opcode: .scan, bufferOffset: 0x1234_5678, length: 0x9ABC_DEF0, arguments: (0x0F0F_0F0F, 0), resultOffset: 0x4455_6677, resultCapacity: 0x0102_0304), data: text)),
    ]
}
