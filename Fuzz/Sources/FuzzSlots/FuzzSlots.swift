// Fuzz target: random slot images through the CPU megakernel.
//
// Input layout (little-endian):
//   [0]      flags: bit 0 normalize the slot (reduce offsets, lengths, the opcode,
//            the tenant and the scan directory index modulo the region and
//            directory sizes so that most slots get past the bounds checks; without
//            it the 16 words are used as they are); bit 1 control word 11 names one
//            entry fewer than the directory has; bit 2 also run the slot through a
//            real CPUBackend ring; bit 3 ask the ring to cancel the slot right after
//            publishing; bit 4 control word 10 names a bogus directory address (slot
//            words 7-8) instead of the directory; bit 5 normalizing keeps argument1's
//            reserved bits 1-15 (else it clears them); bits 6-7 the ring slot
//   [1]      more flags: bit 0 the tables also get Hyperscan matchers (where
//            libhs.so.5 loads); bit 1 tenant checks are on (a tenant table is
//            installed); bits 2-4 the scan-table directory's entries - 1 (1-8)
//   [2]      directory entries holding a table: bit i for entry i (the rest are empty)
//   [3..4]   each entry's table, 2 bits (entry i at bit 2i): bit 0 the pattern part's
//            literals (else a default set), bit 1 case-insensitive
//   [5..8]   each entry's owner, 4 bits (entry i at bit 4i): 0-4 that tenant, 5-15 anyTenant
//   [9..10]  result region words (mod 1100)
//   [11]     pattern part length
//   [12..15] tenant table seed: tenants, chunk bytes, area words, counts, owners
//   [16..79] the slot: 16 × u32 (status and completion are ignored; host flags bit 1
//            names the device ingest region, which the CPU lacks: fault 8)
//   pattern part (a pattern file, for the tables that use it)
//   the data region: the rest
//
// Direct run: SlotExecutor.execute on an exactly sized data region and result
// region (heap blocks, so AddressSanitizer catches any access past either), the
// result region filled with a canary, with a ScanTableRegistry of the input's
// directory. The outcome, every result word and the untouched canary everywhere
// else are checked against an independent model of docs/protocol.md ("Faults",
// "Opcodes", "Scan-table directory": reserved bits, index past control word 11,
// empty entry or no directory, then the entry's owner, then the scan arguments)
// and of tenant ownership; the data region must be unchanged.
//
// Ring run (bit 2): the same slot, published on a CPUBackend with 2 worker
// threads (one backend for the whole process: 4 slots of 300 result words, 4096
// data bytes, a tenant table installed once and switched on or off per input;
// its directory's entries 0-7 installed or removed to match the input, word 11
// set to the input's entry count, word 10 to the input's bogus address or back),
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

/// Written from docs/protocol.md ("2: scan", "Scan-table directory"), not from ScanDirectory.
enum Doc {
    static let reservedBits: UInt32 = 0x0000_FFFE
    static let indexShift: UInt32 = 16
    static let anyTenant: UInt32 = 0xFFFF_FFFF
    static let maxDirectoryEntries = 8
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSlots(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var r = ByteReader(Array(UnsafeBufferPointer(start: bytes, count: size)))
    let flags = r.u8(), flags2 = r.u8()
    let live = r.u8(), kinds = r.u16(), owners = r.u32()
    let resultWords = Int(r.u16() % 1100)
    let patternLength = Int(r.u8())
    let tenantSeed = r.u32()
    let raw = (0..<SlotWord.count).map { _ in r.u32() }
    let patternBytes = r.take(patternLength)
    let data = r.rest()

    let normalize = flags & 1 != 0, keepReserved = flags & 32 != 0
    let hyperscan = flags2 & 1 != 0, withTenants = flags2 & 2 != 0
    let entries = 1 + Int(flags2 >> 2 & 7)
    var directory = DirectoryModel(
        entries: entries, wordEntries: flags & 2 != 0 ? entries - 1 : entries,
        bogus: flags & 16 == 0 ? nil : UInt64(raw[7]) | UInt64(raw[8]) << 32)
    var literals = PatternSet.parseLines(patternBytes)
    if literals.isEmpty { literals = defaultLiterals }
    var compiled: [Int: Table] = [:]
    for i in 0..<entries where live >> i & 1 != 0 {
        let kind = Int(kinds >> (2 * i) & 3)
        if compiled[kind] == nil {
            let ci = kind & 2 != 0
            compiled[kind] = Table(literals: kind & 1 != 0 ? literals : defaultLiterals, caseInsensitive: ci, hyperscan: hyperscan)
                ?? Table(literals: defaultLiterals, caseInsensitive: ci, hyperscan: hyperscan)!
        }
        let o = owners >> (4 * i) & 15
        directory.tables[i] = .init(table: compiled[kind]!, owner: o < 5 ? o : Doc.anyTenant)
    }
    var payload = SlotPayload(words: raw)
    if normalize {
        payload = normalized(payload, dataBytes: data.count, resultWords: resultWords, entries: entries, keepReserved: keepReserved)
    }
    let tenants = withTenants
        ? tenantTable(seed: tenantSeed, tenant: payload.tenant, dataBytes: data.count, resultWords: resultWords) : nil

    runDirect(payload, data: data, resultWords: resultWords, directory: directory, tenants: tenants)

    if flags & 4 != 0 {
        let ring = RingFixture.shared
        var p = SlotPayload(words: raw)
        if normalize {
            p = normalized(p, dataBytes: RingFixture.dataBytes, resultWords: RingFixture.resultWords, entries: entries, keepReserved: keepReserved)
        }
        ring.run(
            p, data: data, slot: Int(flags >> 6), cancel: flags & 8 != 0, directory: directory,
            tenantSeed: withTenants ? tenantSeed : nil)
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

/// The scan-table directory an input describes: what a scan slot's lookup
/// must find, in docs/protocol.md's order.
struct DirectoryModel {
    struct Entry {
        var table: Table
        var owner: UInt32
        /// The backend runs it with Hyperscan, which stores records in any order.
        var unordered = false
    }

    /// Entries in the directory the backend made.
    var entries: Int
    /// Control word 11.
    var wordEntries: Int
    /// What control word 10 names instead of the directory, if anything.
    var bogus: UInt64?
    /// The entries holding a table; the others are empty.
    var tables: [Int: Entry] = [:]

    /// What a scan slot's table lookup and owner check give.
    enum Lookup {
        case fault(FaultCode)
        case table(Entry)
    }

    /// The fault a scan slot's table lookup and owner check give, or its table.
    func lookup(_ p: SlotPayload, tenantChecks: Bool) -> Lookup {
        let a1 = p.arguments.1, index = Int(a1 >> Doc.indexShift)
        guard a1 & Doc.reservedBits == 0, bogus == nil, index < wordEntries, index < entries,
            let entry = tables[index]
        else { return .fault(.badArguments) }
        if tenantChecks && entry.owner != Doc.anyTenant && entry.owner != p.tenant { return .fault(.tenantViolation) }
        return .table(entry)
    }
}

/// Brings offsets, lengths, the opcode and the tenant near the regions'
/// sizes: mostly in range, sometimes one or two past.
func normalized(_ p: SlotPayload, dataBytes d: Int, resultWords n: Int, entries: Int, keepReserved: Bool) -> SlotPayload {
    var q = p
    // 0 and 5 undefined, 4 the nop, 6 one of the user range (none is installed here)
    let op = p.opcode.rawValue % 7
    q.opcode = op == 6 ? Opcode.user(Int(p.opcode.rawValue >> 8) % 4) : Opcode(rawValue: op)
    q.tenant = p.tenant % 5
    q.bufferOffset = p.bufferOffset % UInt64(d + 2)
    let room = UInt64(max(0, d - Int(q.bufferOffset)))
    q.length = UInt32(UInt64(p.length) % (room + 2))
    q.resultOffset = p.resultOffset % UInt32(n + 2)
    let resultRoom = UInt32(max(0, n - Int(q.resultOffset)))
    q.resultCapacity = p.resultCapacity % (resultRoom + 2)
    q.arguments.0 = UInt32(UInt64(p.arguments.0) % (UInt64(q.length) + 2))
    // A directory index up to two past the directory (and past control word 11).
    let index = (p.arguments.1 >> Doc.indexShift) % UInt32(entries + 2)
    q.arguments.1 = index << Doc.indexShift | p.arguments.1 & (keepReserved ? 0xFFFF : ScanOp.countOnlyFlag)
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

/// A RingView in a small heap block whose control block names the scan-table directory and tenant table.
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

/// SlotExecutor on exactly sized regions, with a registry of the input's
/// directory, checked against the model. Returns the outcome and the result region afterwards.
@discardableResult
func runDirect(
    _ p: SlotPayload, data: [UInt8], resultWords: Int, directory: DirectoryModel, tenants: [UInt32]?
) -> (SlotExecutor.Outcome, [UInt32]) {
    guard let registry = try? ScanTableRegistry(entries: directory.entries) else { fail("could not make a scan-table directory") }
    require(registry.entries == directory.entries, "a directory of \(registry.entries) entries, asked for \(directory.entries)")
    let holder = TenantTableHolder()
    let ring = ControlOnlyRing()
    for (index, entry) in directory.tables {
        do throws(PipelineError) {
            try registry.install(entry.table.words, hyperscan: entry.table.hyperscan, at: index, owner: entry.owner)
        } catch {
            fail("installing a compiled table at \(index) failed: \(error)")
        }
    }
    // Indexes past the directory are refused, never written.
    for index in [-1, directory.entries] {
        do throws(PipelineError) {
            try registry.install(defaultTable.words, at: index, owner: 0)
            fail("an install at index \(index) of a \(directory.entries)-entry directory was accepted")
        } catch {
            guard case .invalidRequest = error else { fail("an install at index \(index) threw \(error)") }
        }
    }
    var model = directory
    if model.bogus == registry.directoryAddress { model.bogus = nil }
    ring.view.setScanDirectory(address: model.bogus ?? registry.directoryAddress, entries: UInt64(model.wordEntries))
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
            var hs = false
            if p.opcode == .scan, case .table(let e) = model.lookup(p, tenantChecks: false) { hs = e.table.hyperscan != nil }
            Stats.count("direct \(p.opcode.isDefined ? p.opcode.name : "undefined") \(outcome)\(hs ? " hyperscan" : "")\(tenants != nil ? " tenants" : "")")
            let after = Array(results)
            require(Array(UnsafeRawBufferPointer(dataRegion)) == data, "\(p.opcode) wrote into the data region")
            check(p, outcome: outcome, data: data, before: before, after: after, directory: model, tenants: tenants)
            withExtendedLifetime((ring, registry, holder)) {}
            return (outcome, after)
        }
    }
}

/// A table for installs that must be refused.
let defaultTable = Table(literals: defaultLiterals, caseInsensitive: false, hyperscan: false)!

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
    _ p: SlotPayload, outcome: SlotExecutor.Outcome, data: [UInt8], before: [UInt32], after: [UInt32],
    directory: DirectoryModel, tenants: [UInt32]?, context extra: String = ""
) {
    let context = "slot \(p.words) on \(data.count) data bytes, \(before.count) result words: \(outcome)\(extra)"
    func expect(_ expected: SlotExecutor.Outcome) { require(outcome == expected, "expected \(expected); \(context)") }
    func untouched(except range: Range<Int> = 0..<0) {
        for i in before.indices where !range.contains(i) && after[i] != before[i] {
            fail("result word \(i) written outside the slot's words \(range); \(context)")
        }
    }
    // No user operation is installed: any of the user range faults first, as an unknown opcode does.
    guard !p.opcode.isUser else { expect(.fault(.operationNotInstalled)); return untouched() }
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
        // The entry, then its owner, then the arguments (protocol.md, "2: scan").
        let entry: DirectoryModel.Entry
        switch directory.lookup(p, tenantChecks: tenants != nil) {
        case .fault(let code):
            Stats.count("model: scan \(code == .tenantViolation ? "owner" : "entry") fault")
            expect(.fault(code)); return untouched()
        case .table(let e): entry = e
        }
        let table = entry.table
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
        if table.hyperscan == nil && !entry.unordered {
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
/// threads and mappings per input), its directory's first entries installed
/// or removed per input to match the input's directory.
final class RingFixture: @unchecked Sendable {
    static let slots = 4
    static let resultWordsPerSlot = 300
    static let resultWords = slots * resultWordsPerSlot
    static let dataBytes = 4096
    static let chunkBytes = 1024
    static let shared = RingFixture()

    /// What an entry of the backend's directory holds now.
    struct Installed: Equatable {
        var words: [UInt32]
        var owner: UInt32
        /// Installed with its literals (the backend's Hyperscan engine, where it compiles them).
        var withLiterals: Bool
        /// The backend runs it with Hyperscan.
        var unordered: Bool
    }

    let backend: CPUBackend
    var ring: RingView { backend.ring }
    /// The backend's directory as the control block names it after start.
    let directory: (address: UInt64, entries: UInt64)
    private var installed: [Int: Installed] = [:]
    let tenantView: UnsafeMutableBufferPointer<UInt32>
    let tenantAddress: (address: UInt64, words: UInt64)

    init() {
        do {
            backend = try CPUBackend(
                configuration: BackendConfiguration(
                    geometry: try RingGeometry(slotCount: RingFixture.slots, resultWordsPerSlot: RingFixture.resultWordsPerSlot),
                    dataBytes: RingFixture.dataBytes, workers: 2))
            try backend.start()
            // Each run checks that both workers poll: wait until they have started.
            let began = monotonicNanoseconds()
            while try backend.ring.observe().workersRunning < 2 {
                require(monotonicNanoseconds() - began < 3_000_000_000, "the CPU backend's workers did not start in 3 s")
                _ = try backend.waitForProgress(after: 0, timeout: .milliseconds(1))
            }
            directory = backend.ring.scanDirectory
            require(directory.address != 0 && directory.entries == UInt64(backend.scanDirectoryEntries)
                        && backend.scanDirectoryEntries >= Doc.maxDirectoryEntries,
                    "the backend's directory is \(directory), \(backend.scanDirectoryEntries) entries")
            let tenantWords = try TenantTable.make(
                tenants: 4, chunkBytes: RingFixture.chunkBytes, chunkCount: RingFixture.dataBytes / RingFixture.chunkBytes,
                resultWordsPerArea: RingFixture.resultWordsPerSlot, areaCount: RingFixture.slots)
            tenantView = try backend.enableTenants(tenantWords)
            tenantAddress = backend.ring.tenantTable
        } catch {
            fail("could not start the CPU backend: \(error)")
        }
    }

    /// Makes entries 0-7 of the backend's directory those of `model` (no slot
    /// is in flight between inputs) and points control words 10-11 as the
    /// input asks; returns the model of the backend's directory.
    func arrange(_ model: DirectoryModel) -> DirectoryModel {
        var ringModel = model
        ringModel.entries = backend.scanDirectoryEntries
        ringModel.tables = [:]
        do throws(PipelineError) {
            for index in 0..<Doc.maxDirectoryEntries {
                guard let entry = model.tables[index] else {
                    if installed[index] != nil { try backend.removeScanTable(at: index) }
                    installed[index] = nil
                    continue
                }
                let withLiterals = entry.table.hyperscan != nil
                var now = Installed(words: entry.table.words, owner: entry.owner, withLiterals: withLiterals, unordered: false)
                if let old = installed[index], old.words == now.words, old.owner == now.owner, old.withLiterals == withLiterals {
                    now = old
                } else {
                    _ = try backend.installScanTable(
                        entry.table.words, literals: withLiterals ? entry.table.literals : nil,
                        caseInsensitive: entry.table.caseInsensitive, at: index, owner: entry.owner)
                    now.unordered = backend.scanEngine != .builtin
                    installed[index] = now
                }
                ringModel.tables[index] = DirectoryModel.Entry(table: entry.table, owner: entry.owner, unordered: now.unordered)
            }
        } catch {
            fail("arranging the backend's directory failed: \(error)")
        }
        if ringModel.bogus == directory.address { ringModel.bogus = nil }
        ring.setScanDirectory(address: ringModel.bogus ?? directory.address, entries: UInt64(ringModel.wordEntries))
        return ringModel
    }

    func run(
        _ p: SlotPayload, data: [UInt8], slot: Int, cancel: Bool, directory model: DirectoryModel, tenantSeed: UInt32?
    ) {
        let region = backend.dataRegion
        let copy = min(data.count, region.count)
        region.initializeMemory(as: UInt8.self, repeating: 0)
        data.withUnsafeBytes { region.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<copy])) }
        let memory = Array(UnsafeRawBufferPointer(region))
        let ringModel = arrange(model)
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

            var named: DirectoryModel.Entry?
            if p.opcode == .scan, case .table(let e) = ringModel.lookup(p, tenantChecks: false) { named = e }
            Stats.count("ring \(p.opcode.isDefined ? p.opcode.name : "undefined") \(record.status) \(record.completion > 9 ? "" : "\(record.completion)")\(named?.unordered == true ? " hyperscan" : "")\(tenants != nil ? " tenants" : "")")
            let context = "; ring slot \(slot)\(named.map { $0.unordered ? ", Hyperscan" : ", built-in" } ?? "")"
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
            check(p, outcome: outcome, data: memory, before: canaries, after: after, directory: ringModel, tenants: tenants,
                  context: context)
            // And what SlotExecutor does on an exact copy of the same memory.
            let (direct, _) = runDirect(
                p, data: memory, resultWords: RingFixture.resultWords, directory: ringModel, tenants: tenants)
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

/// One input: `entries` directory entries (1-8), `live` those holding a
/// table, `kinds` each one's table (2 bits) and `owners` each one's owner (4 bits).
func slotSeed(
    flags: UInt8, flags2: UInt8 = 0, entries: Int = 1, live: UInt8 = 0, kinds: UInt16 = 0, owners: UInt32 = 0xFFFF_FFFF,
    resultWords: UInt16, patterns: [UInt8] = [], tenantSeed: UInt32 = 0, _ p: SlotPayload, data: [UInt8]
) -> [UInt8] {
    var w = ByteWriter()
    w.u8(flags)
    w.u8(flags2 | UInt8(entries - 1) << 2)
    w.u8(live)
    w.u16(kinds)
    w.u32(owners)
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
    let patterns = ascii("hay\nNeedle\r\nin\n")
    func at(_ index: UInt32, _ flags: UInt32 = 0) -> UInt32 { index << 16 | flags }
    return [
        ("count", slotSeed(flags: 0, resultWords: 300, SlotPayload(opcode: .count, bufferOffset: 2, length: n - 2, resultOffset: 10, resultCapacity: 258), data: text)),
        ("count-ring", slotSeed(flags: 4 | 1 << 6, resultWords: 258, SlotPayload(opcode: .count, bufferOffset: 0, length: n, resultOffset: 0, resultCapacity: 258), data: text)),
        ("crc32c", slotSeed(flags: 4, resultWords: 4, SlotPayload(opcode: .crc32c, bufferOffset: 1, length: n - 1, resultOffset: 1, resultCapacity: 2), data: text)),
        ("scan-table", slotSeed(flags: 0, live: 1, resultWords: 40, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n - 3, 0), resultOffset: 4, resultCapacity: 36), data: text)),
        ("scan-table-patterns-ci", slotSeed(flags: 0, live: 1, kinds: 3, resultWords: 20, patterns: patterns, SlotPayload(opcode: .scan, bufferOffset: 2, length: n - 2, arguments: (n - 2, 0), resultOffset: 0, resultCapacity: 9), data: text)),
        ("scan-ring-2", slotSeed(flags: 4 | 2 << 6, live: 1, resultWords: 600, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, 0), resultOffset: 300, resultCapacity: 300), data: text)),
        ("scan-hyperscan-ring", slotSeed(flags: 4, flags2: 1, live: 1, kinds: 3, resultWords: 600, patterns: patterns, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n - 4, 0), resultOffset: 300, resultCapacity: 12), data: text)),
        // libhyperscan 5.4.0's hs_scan fails (HS_UNKNOWN_ERROR) on this set and
        // chunk: SlotExecutor must fall back to the built-in matcher.
        ("scan-hyperscan-fails", slotSeed(
            flags: 0, flags2: 1, live: 1, kinds: 1, resultWords: 100, patterns: [0, 0x0A, 0, 0, 0x2E] + [UInt8](repeating: 0, count: 34),
            SlotPayload(opcode: .scan, bufferOffset: 0, length: 35, arguments: (35, 0), resultOffset: 0, resultCapacity: 100),
            data: [0, 0x10, 0, 0, 0, 0, 0, 0, 0x9E, 0xF5, 0x9E, 0, 0, 0x2E] + [UInt8](repeating: 0, count: 21))),
        ("scan-count-only", slotSeed(flags: 4, live: 1, resultWords: 4, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, 1), resultOffset: 0, resultCapacity: 4), data: text)),
        ("scan-no-table", slotSeed(flags: 4, resultWords: 8, SlotPayload(opcode: .scan, bufferOffset: 0, length: 4, arguments: (4, 0), resultOffset: 0, resultCapacity: 8), data: text)),
        ("scan-bogus-directory", slotSeed(flags: 4 | 16, live: 1, resultWords: 8, SlotPayload(opcode: .scan, bufferOffset: 0, length: 4, fileOffset: 0xDEAD_BEEF_0000, arguments: (4, 0), resultOffset: 0, resultCapacity: 8), data: text)),
        // Entries 0 and 5 hold different sets; the slot names 5.
        ("scan-two-tables-ring", slotSeed(flags: 4 | 1 << 6, flags2: 1, entries: 6, live: 1 | 1 << 5, kinds: 3 << 10, resultWords: 600, patterns: patterns, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, at(5)), resultOffset: 300, resultCapacity: 300), data: text)),
        ("scan-empty-entry", slotSeed(flags: 4, entries: 3, live: 0b101, resultWords: 40, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, at(1)), resultOffset: 0, resultCapacity: 40), data: text)),
        ("scan-index-past-directory", slotSeed(flags: 0, entries: 2, live: 0b11, resultWords: 40, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, at(2)), resultOffset: 0, resultCapacity: 40), data: text)),
        // Control word 11 says 1 entry of the 2: index 1 is past it.
        ("scan-index-past-word-11-ring", slotSeed(flags: 2 | 4, entries: 2, live: 0b11, resultWords: 40, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, at(1)), resultOffset: 0, resultCapacity: 40), data: text)),
        ("scan-reserved-bit", slotSeed(flags: 4, live: 1, resultWords: 40, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, at(0, 0x8000)), resultOffset: 0, resultCapacity: 40), data: text)),
        // Entry 1 is tenant 2's; tenant 3's slot: tenantViolation with checks on, a run with them off.
        ("scan-owner-violation-ring", slotSeed(flags: 4, flags2: 2, entries: 2, live: 0b11, owners: 0xFFFF_FF2F, resultWords: 900, tenantSeed: 0x0012_3457, SlotPayload(opcode: .scan, tenant: 3, bufferOffset: 3, length: 40, arguments: (40, at(1)), resultOffset: 301, resultCapacity: 40), data: text)),
        ("scan-owner-checks-off-ring", slotSeed(flags: 4, entries: 2, live: 0b11, owners: 0xFFFF_FF2F, resultWords: 900, SlotPayload(opcode: .scan, tenant: 3, bufferOffset: 3, length: 40, arguments: (40, at(1)), resultOffset: 301, resultCapacity: 40), data: text)),
        ("scan-owner-own-table", slotSeed(flags: 0, flags2: 2, entries: 2, live: 0b11, owners: 0xFFFF_FF3F, resultWords: 900, tenantSeed: 0x0012_3457, SlotPayload(opcode: .scan, tenant: 3, bufferOffset: 3, length: 40, arguments: (40, at(1)), resultOffset: 301, resultCapacity: 40), data: text)),
        ("tenants-ring", slotSeed(flags: 1 | 4, flags2: 2, live: 1, resultWords: 900, tenantSeed: 0x0012_3457, SlotPayload(opcode: .count, tenant: 1, bufferOffset: 3, length: 40, resultOffset: 301, resultCapacity: 258), data: text)),
        ("out-of-bounds", slotSeed(flags: 4 | 3 << 6, resultWords: 8, SlotPayload(opcode: .count, bufferOffset: 0xFFFF_FFFF_FFFF_FFF0, length: 0x20, resultOffset: 0, resultCapacity: 258), data: text)),
        ("unknown-opcode-cancel", slotSeed(flags: 4 | 8, resultWords: 1, SlotPayload(opcode: Opcode(rawValue: 9), bufferOffset: 0, length: 0), data: [])),
        ("nop-cancel-out-of-bounds", slotSeed(flags: 4 | 8, flags2: 2, resultWords: 8, tenantSeed: 0x0012_3457, SlotPayload(opcode: .nop, tenant: 3, bufferOffset: 0xFFFF_FFFF_FFFF_FFF0, length: 0x20, resultOffset: 7, resultCapacity: 258, region: .device), data: text)),
        ("device-region-slot", slotSeed(flags: 0, live: 1, resultWords: 40, SlotPayload(opcode: .scan, bufferOffset: 0, length: n, arguments: (n, 0), resultOffset: 0, resultCapacity: 40, region: .device), data: text)),
        ("normalized", slotSeed(flags: 1 | 4, entries: 4, live: 0b1011, kinds: 0b1001_1100, owners: 0x0000_F210, resultWords: 700, patterns: patterns, SlotPayload(opcode: .scan, bufferOffset: 0x1234_5678, length: 0x9ABC_DEF0, arguments: (0x0F0F_0F0F, 0x0003_0000), resultOffset: 0x4455_6677, resultCapacity: 0x0102_0304), data: text)),
        ("normalized-reserved-bits", slotSeed(flags: 1 | 32 | 4 | 1 << 6, flags2: 2, entries: 8, live: 0xF0, owners: 0x1234_5678, resultWords: 700, tenantSeed: 0x0BAD_F00D, SlotPayload(opcode: .scan, tenant: 7, bufferOffset: 0x9876_5432, length: 0x0000_1234, arguments: (0x0F0F_0F0F, 0xABCD_4443), resultOffset: 0x0011_2233, resultCapacity: 0x0102_0304), data: text)),
    ]
}
