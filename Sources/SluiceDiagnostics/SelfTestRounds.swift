#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceIngest
import SluiceOps
import SluiceThreads


/// Running a round of test slots on a backend and checking what came back.
extension SelfTestRun {
    /// Places the data, poisons the result region, publishes every slot
    /// (requesting cancels where asked), waits for all to finish, reads and
    /// reclaims them. Returns what each slot ended as and the counter deltas.
    func runRound(_ slots: [TestSlot], on backend: any MegakernelBackend) throws(CheckFailure) -> ([Observed], ControlDelta) {
        let ring = backend.ring
        let results = ring.results
        for i in 0..<results.count { results[i] = SelfTest.poison }
        stage(slots, in: backend.dataRegion)
        var observed = [Observed](repeating: Observed(status: .empty, completion: 0), count: slots.count)
        do {
            let before = try ring.observe()
            for (i, s) in slots.enumerated() {
                try ring.publish(slot: s.slot, s.payload)
                if s.expect == .cancelOrCount || s.cancel {
                    do { try ring.requestCancel(slot: s.slot) } catch { observed[i].cancelLate = true }
                }
            }
            try waitUntilFinished(slots, on: backend)
            let after = try ControlDelta.observe(backend, atEpoch: before.epoch &+ UInt64(slots.count))
            for (i, s) in slots.enumerated() {
                let record = try ring.reclaim(slot: s.slot)
                observed[i].status = record.status
                observed[i].completion = record.completion
                let start = Int(s.payload.resultOffset)
                if start < results.count {
                    let span = min(Int(s.payload.resultCapacity), results.count - start)
                    observed[i].area = Array(results[start..<(start + span)])
                }
            }
            try checkNoStrayWrites(slots, observed, results: results)
            return (observed, ControlDelta(from: before, to: after))
        } catch {
            throw CheckFailure(error)
        }
    }

    /// Copies each slot's chunk to its offset in the data region.
    private func stage(_ slots: [TestSlot], in data: UnsafeMutableRawBufferPointer) {
        for s in slots where !s.data.isEmpty {
            let offset = Int(s.payload.bufferOffset)
            s.data.withUnsafeBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: data[offset..<(offset + bytes.count)]).copyMemory(from: bytes)
            }
        }
    }

    /// Waits until every slot is DONE, FAULTED or CANCELLED; after 30 s,
    /// fails naming the first 8 that are not.
    private func waitUntilFinished(_ slots: [TestSlot], on backend: any MegakernelBackend) throws {
        let ring = backend.ring
        let started = clockNow()
        var epoch = ring.epoch
        while try !slots.allSatisfy({ s throws(PipelineError) in try ring.status(ofSlot: s.slot).isTerminal }) {
            if clockNow() - started > 30_000_000_000 {
                let stuck = try slots.filter { s throws(PipelineError) in try !ring.status(ofSlot: s.slot).isTerminal }
                let list = try stuck.prefix(8).map { s throws(PipelineError) in
                    "slot \(s.slot) (\(s.label)) \(try ring.status(ofSlot: s.slot))"
                }
                throw CheckFailure(message: "after 30 s these slots had not finished: " + list.joined(separator: ", "))
            }
            epoch = try backend.waitForProgress(after: epoch, timeout: .milliseconds(10))
        }
    }

    /// Every word outside a DONE slot's result words must still be poison.
    private func checkNoStrayWrites(_ slots: [TestSlot], _ observed: [Observed], results: UnsafeMutableBufferPointer<UInt32>) throws(CheckFailure) {
        var written = [Bool](repeating: false, count: results.count)
        for (i, s) in slots.enumerated() where observed[i].status == .done {
            let start = Int(s.payload.resultOffset)
            let owned = min(Int(observed[i].completion), Int(s.payload.resultCapacity))
            guard owned > 0, start < results.count else { continue }
            for w in start..<min(start + owned, results.count) { written[w] = true }
        }
        if let bad = (0..<results.count).first(where: { !written[$0] && results[$0] != SelfTest.poison }) {
            let owner = slots.first { bad >= Int($0.payload.resultOffset) && bad < Int($0.payload.resultOffset) + geometry.resultWordsPerSlot }
            throw CheckFailure(message: "result word \(bad) (in the area of \(owner.map { "slot \($0.slot), \($0.label)" } ?? "no slot of this round")) was written (0x\(hex(UInt64(results[bad]), digits: 8))) though no DONE slot owns it")
        }
    }

    /// The reference's result for each slot: the CPU backend run on the same
    /// round, or (testing the CPU backend itself) the opcode run on the host.
    func referenceWords(_ slots: [TestSlot]) throws(CheckFailure) -> [ReferenceResult] {
        guard let reference else {
            return try slots.map { s throws(CheckFailure) in try hostReference(s) }
        }
        var round = slots
        for i in round.indices { round[i].expect = .count }
        let (observed, _) = try runRound(round, on: reference)
        return try observed.enumerated().map { pair throws(CheckFailure) -> ReferenceResult in
            let (i, o) = pair
            // A nop's result fields may point anywhere: it owns no words.
            let area = slots[i].payload.opcode == .nop ? o.area ?? [] : o.area
            guard o.status == .done, let area, area.count >= Int(o.completion) else {
                throw CheckFailure(message: "the reference ended slot \(slots[i].slot) (\(slots[i].label)) \(o.status) with completion \(o.completion)")
            }
            return ReferenceResult(words: Array(area[0..<Int(o.completion)]), completion: o.completion)
        }
    }

    /// The opcode run on the host (CountOp, CRC32COp, ScanOp with the table the slot names).
    func hostReference(_ s: TestSlot) throws(CheckFailure) -> ReferenceResult {
        // Before any allocation: a nop's capacity may be anything.
        if s.payload.opcode == .nop { return ReferenceResult(words: [], completion: 0) }
        var words = [UInt32](repeating: SelfTest.poison, count: Int(s.payload.resultCapacity))
        let outcome: ScanOp.Outcome
        switch s.payload.opcode {
        case .count:
            words = [UInt32](repeating: 0, count: CountOp.resultWords)
            s.data.withUnsafeBytes { bytes in words.withUnsafeMutableBufferPointer { CountOp.run(bytes, into: $0) } }
            return ReferenceResult(words: words, completion: UInt32(CountOp.resultWords))
        case .crc32c:
            words = [UInt32](repeating: 0, count: CRC32COp.resultWords)
            s.data.withUnsafeBytes { bytes in words.withUnsafeMutableBufferPointer { CRC32COp.run(bytes, into: $0) } }
            return ReferenceResult(words: words, completion: UInt32(CRC32COp.resultWords))
        case .scan:
            guard let table = scanTable(for: s.payload) else {
                throw CheckFailure(message: "slot \(s.slot) (\(s.label)): a scan slot expected DONE names no installed table")
            }
            do {
                outcome = try table.words.withUnsafeBufferPointer { (w) throws(PipelineError) -> ScanOp.Outcome in
                    let view = try ScanTableView(w)
                    return s.data.withUnsafeBytes { bytes in
                        words.withUnsafeMutableBufferPointer { area in
                            ScanOp.run(table: view, chunk: bytes, startLimit: Int(s.payload.arguments.0), flags: s.payload.arguments.1, into: area)
                        }
                    }
                }
            } catch {
                throw CheckFailure(message: error.message)
            }
        default:
            throw CheckFailure(message: "slot \(s.slot) (\(s.label)): no host reference for opcode \(s.payload.opcode.rawValue)")
        }
        guard case .done(let n) = outcome else {
            throw CheckFailure(message: "slot \(s.slot) (\(s.label)): ScanOp faulted with \(outcome) on a slot expected DONE")
        }
        return ReferenceResult(words: Array(words[0..<Int(n)]), completion: n)
    }

    /// Compares a round's outcome with expectations and the reference, and its counters.
    func verify(_ slots: [TestSlot], _ observed: [Observed], _ delta: ControlDelta, reference: [ReferenceResult?])
        throws(CheckFailure)
    {
        var done: UInt64 = 0, faulted: UInt64 = 0, cancelled: UInt64 = 0, bytes: UInt64 = 0
        for (i, s) in slots.enumerated() {
            let o = observed[i]
            let place = "slot \(s.slot), \(s.label), \(s.payload.length) bytes at offset \(s.payload.bufferOffset)"
            switch (s.expect, o.status) {
            case (.fault(let code), .faulted):
                guard o.completion == code.rawValue else {
                    throw CheckFailure(message: "\(place): faulted with code \(o.completion), expected \(code.rawValue) (\(code))")
                }
                faulted += 1
            case (.fault(let code), let status):
                throw CheckFailure(message: "\(place): ended \(status) (completion \(o.completion)), expected FAULTED with \(code)")
            case (.cancelOrCount, .cancelled):
                guard o.completion == 0 else {
                    throw CheckFailure(message: "\(place): CANCELLED but its completion word is \(o.completion)")
                }
                cancelled += 1
            case (.count, .done) where s.payload.opcode == .nop:
                // Nothing to compare but the completion; the poison check in
                // runRound already showed that it wrote no result word.
                guard o.completion == 0, reference[i]?.completion == 0 else {
                    throw CheckFailure(message: "\(place): nop DONE with completion \(o.completion) (\(report.reference): \(reference[i].map { String($0.completion) } ?? "none")), expected 0")
                }
                done += 1
            case (.count, .done), (.cancelOrCount, .done):
                guard let area = o.area, let expected = reference[i], area.count >= Int(o.completion) else {
                    throw CheckFailure(message: "\(place): DONE (completion \(o.completion)) but no result area to compare")
                }
                if s.payload.opcode == .scan {
                    try compareScan(s, area: area, completion: o.completion, expected: expected, place: place)
                } else {
                    guard o.completion == expected.completion else {
                        throw CheckFailure(message: "\(place): DONE with completion \(o.completion), expected \(expected.completion)")
                    }
                    let n = Int(expected.completion)
                    if let w = (0..<n).first(where: { area[$0] != expected.words[$0] }) {
                        let differing = (0..<n).filter { area[$0] != expected.words[$0] }
                        let name = s.payload.opcode == .count ? wordName(w) : w == 0 ? "crc32c" : "length"
                        throw CheckFailure(message: "\(place): \(s.payload.opcode.name) word \(w) (\(name)) is 0x\(hex(UInt64(area[w]), digits: 8)), \(report.reference) says 0x\(hex(UInt64(expected.words[w]), digits: 8)); \(differing.count) words differ")
                    }
                }
                if let w = (Int(o.completion)..<area.count).first(where: { area[$0] != SelfTest.poison }) {
                    throw CheckFailure(message: "\(place): wrote word \(w) of its area, past the \(o.completion) it reported")
                }
                done += 1
                bytes += UInt64(s.payload.length)
            case (_, let status):
                throw CheckFailure(message: "\(place): ended \(status) (completion \(o.completion)), expected \(s.expect == .count ? "DONE" : "CANCELLED or DONE")")
            }
        }
        let expected = (epoch: UInt64(slots.count), done: done, faulted: faulted, cancelled: cancelled, bytes: bytes)
        guard delta.epoch == expected.epoch, delta.done == done, delta.faulted == faulted,
              delta.cancelled == cancelled, delta.bytes == bytes
        else {
            throw CheckFailure(message: "counters moved by epoch \(delta.epoch), done \(delta.done), faulted \(delta.faulted), cancelled \(delta.cancelled), bytes \(delta.bytes); the slots say \(expected.epoch), \(done), \(faulted), \(cancelled), \(bytes)")
        }
        if faulted > 0 {
            guard let last = delta.lastFault,
                  let owner = slots.firstIndex(where: { $0.slot == last.slot }),
                  slots[owner].expect == .fault(last.code), last.opcodeLow16 == slots[owner].payload.opcode.rawValue & 0xFFFF
            else {
                throw CheckFailure(message: "lastFault is \(delta.lastFault.map(String.init(describing:)) ?? "unchanged"), which names no faulted slot of this round with its code and opcode")
            }
        }
    }

    /// Runs `slots` on the subject, compares with the reference, returns a summary.
    func runAndCompare(_ slots: [TestSlot]) throws(CheckFailure) -> (observed: [Observed], delta: ControlDelta) {
        let (observed, delta) = try runRound(slots, on: subject)
        // The reference runs only the slots that must (or may) end DONE.
        let countable = slots.indices.filter { slots[$0].expect != .count ? slots[$0].expect == .cancelOrCount && observed[$0].status == .done : true }
        let words = try referenceWords(countable.map { slots[$0] })
        var byIndex = [ReferenceResult?](repeating: nil, count: slots.count)
        for (k, i) in countable.enumerated() { byIndex[i] = words[k] }
        try verify(slots, observed, delta, reference: byIndex)
        return (observed, delta)
    }
}
