#if canImport(Glibc)
import Glibc
#endif
import SluiceCPU
import SluiceCore
import SluiceIngest
import SluiceOps
import SluiceThreads
import Synchronization
import Testing

@testable import Sluice

/// A CPU backend whose ring has `extra` slots more than the scanner uses,
/// so a test can play a hostile tenant in them.
func makeTenantRig(units: Int = 4, extra: Int = 2, chunk: Int = 4096) throws -> (ChunkScheduler, CPUBackend, ScriptedReadStream) {
    let geometry = try RingGeometry(slotCount: units + extra, resultWordsPerSlot: CountOp.resultWords)
    let backend = try CPUBackend(configuration: BackendConfiguration(geometry: geometry, dataBytes: units * chunk, workers: 2))
    try backend.start()
    let stream = try ScriptedReadStream(region: backend.dataRegion, chunkBytes: chunk, chunkCount: units, order: .seeded(5))
    return (try ChunkScheduler(backend: backend, stream: stream), backend, stream)
}

@Suite(.serialized) struct TenantTests {
    func files(_ dir: ScratchDirectory, prefix: String, count: Int, seed: UInt64) -> ([String], [[UInt8]]) {
        var rng = SeededRandom(state: seed)
        var paths: [String] = [], contents: [[UInt8]] = []
        for i in 0..<count {
            let bytes = textLikeBytes(Int.random(in: 0...20_000, using: &rng), &rng)
            paths.append(dir.write("\(prefix)\(i)", bytes))
            contents.append(bytes)
        }
        return (paths, contents)
    }

    /// Three tenants share one pump and one megakernel; each gets exactly its
    /// own results, and a hostile fourth is faulted every time meanwhile.
    @Test func tenantsGetTheirOwnResultsAndAHostileTenantIsAlwaysFaulted() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (scanner, backend, _) = try makeTenantRig()
        defer { try? backend.shutdown() }
        try scanner.enableTenantChecks(tenants: 4)
        let ring = backend.ring
        #expect(ring.tenantTable.address != 0)
        var sets: [([String], [[UInt8]])] = []
        for t in 0..<3 { sets.append(files(dir, prefix: "t\(t)-", count: 12 + 5 * t, seed: UInt64(t + 1))) }
        var got: [[Int: CountResult]] = Array(repeating: [:], count: 3)
        var errors: [PipelineError] = []
        let jobs = (0..<3).map { t in
            ChunkScheduler.Job(
                tenant: UInt32(t), weight: t + 1, paths: sets[t].0.raw, opcode: .count,
                onChunk: { c in
                    guard let r = try? CountResult(words: c.words) else { return }
                    got[t][c.fileIndex, default: CountResult()].add(r)
                },
                onFile: { errors += $0.errors })
        }

        // The hostile tenant (3) owns the two spare slots' result areas and
        // publishes there: into tenant buffers, with bad opcodes, past the end.
        let hostileDone = Atomic<Bool>(false)
        let faults = Mutex<[FaultCode: Int]>([:])
        let others = Mutex<[SlotStatus: Int]>([:])
        let g = ring.geometry
        let hostileTable = ring.tenantTable
        let table = UnsafeMutablePointer<UInt32>(bitPattern: UInt(hostileTable.address))!
        let chunkCount = 4
        for slot in 4..<6 { table[TenantTable.headerWords + chunkCount + slot] = 3 }
        let hostile = try WorkerThreadForTests {
            var round = 0
            // Every kind of hostile slot at least once, however fast the scan ends.
            while !hostileDone.load(ordering: .relaxed) || round < 4 {
                for slot in 4..<6 {
                    let area = UInt32(g.resultOffset(ofSlot: slot))
                    let payloads = [
                        SlotPayload(opcode: .count, tenant: 3, bufferOffset: UInt64(round % 4) * 4096, length: 100,
                                    resultOffset: area, resultCapacity: 258),
                        SlotPayload(opcode: Opcode(rawValue: 999), tenant: 3, bufferOffset: 0, length: 1,
                                    resultOffset: area, resultCapacity: 258),
                        SlotPayload(opcode: .count, tenant: 3, bufferOffset: 4 * 4096 - 10, length: 100,
                                    resultOffset: area, resultCapacity: 258),
                        SlotPayload(opcode: .count, tenant: 0, bufferOffset: 0, length: 10,
                                    resultOffset: area, resultCapacity: 258),
                    ]
                    guard (try? ring.publish(slot: slot, payloads[round % payloads.count])) != nil else { continue }
                    var spins = 0
                    while (try? ring.status(ofSlot: slot).isTerminal) != true, spins < 1_000_000 { spins += 1 }
                    if let record = try? ring.reclaim(slot: slot) {
                        if let f = record.fault { faults.withLock { $0[f, default: 0] += 1 } }
                        else { others.withLock { $0[record.status, default: 0] += 1 } }
                    }
                }
                round += 1
            }
        }
        try scanner.run(jobs: jobs)
        hostileDone.store(true, ordering: .relaxed)
        hostile.join()

        #expect(errors.isEmpty, "\(errors.map(\.message))")
        for t in 0..<3 {
            for (i, bytes) in sets[t].1.enumerated() {
                let r = got[t][i] ?? CountResult()
                #expect(r.bytes == UInt64(bytes.count) && r.newlines == UInt64(bytes.filter { $0 == 10 }.count),
                        "tenant \(t) file \(i)")
            }
        }
        let f = faults.withLock { $0 }
        #expect(others.withLock { $0 }.isEmpty, "a hostile slot finished without a fault")
        #expect((f[.tenantViolation] ?? 0) > 0 && (f[.unknownOpcode] ?? 0) > 0 && (f[.bufferOutOfBounds] ?? 0) > 0)
        let stats = scanner.tenantStats
        for t in 0..<3 {
            let s = stats[UInt32(t)]
            #expect(s?.faults == 0)
            #expect(s?.bytes == UInt64(sets[t].1.reduce(0) { $0 + $1.count }))
        }
    }

    /// Weighted round-robin: a tenant with one small file is not stuck behind
    /// a tenant with a big tree.
    @Test func aSmallTenantIsNotStarvedByABigOne() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (scanner, backend, _) = try makeTenantRig(extra: 0)
        defer { try? backend.shutdown() }
        let big = (0..<200).map { dir.write("big\($0)", [UInt8](repeating: 65, count: 3 * 4096)) }
        let small = [dir.write("small", [UInt8](repeating: 66, count: 100))]
        var order: [String] = []
        let record: (ChunkScheduler.FileOutcome) -> Void = { order.append($0.path.description) }
        try scanner.run(jobs: [
            ChunkScheduler.Job(tenant: 0, paths: big.raw, opcode: .count, onChunk: { _ in }, onFile: record),
            ChunkScheduler.Job(tenant: 1, paths: small.raw, opcode: .count, onChunk: { _ in }, onFile: record),
        ])
        let position = try #require(order.firstIndex(of: small[0]))
        #expect(position < 10, "the small tenant's file finished after \(position) of the big tenant's")
        #expect(order.count == 201)
    }
}

/// A joinable thread for tests whose body captures what is not Sendable (raw
/// pointers into the ring); the test joins it before those go away.
final class WorkerThreadForTests {
    private final class Body: @unchecked Sendable {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    private let thread: PosixThread
    init(_ body: @escaping () -> Void) throws {
        let box = Body(body)
        thread = try PosixThread(name: "test") { box.run() }
    }
    func join() { thread.join() }
}
