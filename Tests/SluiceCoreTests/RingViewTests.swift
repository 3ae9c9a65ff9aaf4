import SluiceCore
import Testing

@Suite("RingView over real memory")
struct RingViewTests {
    static func payload(_ n: UInt32, opcode: Opcode = .count, length: UInt32 = 1_000) -> SlotPayload {
        SlotPayload(
            opcode: opcode, tenant: 10 + n, priority: 20 + n, bufferOffset: 0x2_0000_0000 + UInt64(n) * 4096,
            length: length, fileOffset: 0x7_0000_0000 + UInt64(n), chunkIndex: 30 + n, arguments: (40 + n, 50 + n),
            resultOffset: n * 258, resultCapacity: 258)
    }

    /// Drives slot `slot` from EMPTY into `state` through the public API only.
    static func drive(_ ring: RingView, slot: Int, to state: SlotStatus) throws {
        #expect(try ring.status(ofSlot: slot) == .empty)
        if state == .empty { return }
        try ring.publish(slot: slot, payload(UInt32(slot)))
        switch state {
        case .published: break
        case .claimed:
            #expect(ring.tryClaim(slot: slot) == .claimed(payload(UInt32(slot))))
        case .done:
            #expect(ring.tryClaim(slot: slot) == .claimed(payload(UInt32(slot))))
            ring.complete(slot: slot, resultWords: 3, bytes: 1_000)
        case .faulted:
            #expect(ring.tryClaim(slot: slot) == .claimed(payload(UInt32(slot))))
            ring.fault(slot: slot, code: .badArguments, opcode: .count)
        case .cancelled:
            try ring.requestCancel(slot: slot)
            #expect(ring.tryClaim(slot: slot) == .cancelled)
        case .empty: break
        }
        #expect(try ring.status(ofSlot: slot) == state)
    }

    // MARK: construction

    @Test("init rejects a region that is too small, empty or misaligned")
    func initRejects() throws {
        let g = try RingGeometry(slotCount: 4, resultWordsPerSlot: 8)
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: g.byteCount + 16, alignment: 64)
        defer { raw.deallocate() }

        let small = thrown { try RingView(bytes: UnsafeMutableRawBufferPointer(rebasing: raw[0..<(g.byteCount - 1)]), geometry: g) }
        guard case .invalidConfiguration(let why)? = small else {
            Issue.record("expected .invalidConfiguration, got \(String(describing: small))")
            return
        }
        #expect(why.contains("\(g.byteCount - 1)"))
        #expect(why.contains("\(g.byteCount)"))

        let empty = thrown { try RingView(bytes: UnsafeMutableRawBufferPointer(start: nil, count: 0), geometry: g) }
        guard case .invalidConfiguration? = empty else {
            Issue.record("expected .invalidConfiguration, got \(String(describing: empty))")
            return
        }

        for misalignment in [1, 2, 4] {
            let shifted = UnsafeMutableRawBufferPointer(rebasing: raw[misalignment..<(misalignment + g.byteCount)])
            let error = thrown { try RingView(bytes: shifted, geometry: g) }
            guard case .invalidConfiguration(let why)? = error else {
                Issue.record("offset \(misalignment): expected .invalidConfiguration, got \(String(describing: error))")
                continue
            }
            #expect(why.contains("aligned"))
        }

        // Exactly byteCount, and 8-byte aligned but not more, is fine.
        let ok = try RingView(bytes: UnsafeMutableRawBufferPointer(rebasing: raw[8..<(8 + g.byteCount)]), geometry: g)
        #expect(ok.base == raw.baseAddress! + 8)
        #expect(ok.geometry == g)
    }

    // MARK: initialize

    @Test("initialize zeroes exactly the region and writes magic and slot count")
    func initialize() throws {
        let mem = try RingMemory(slots: 5, resultWords: 7)
        mem.view.initialize()
        let b = mem.bytes
        #expect(b.count == 768 + 5 * 7 * 4)
        #expect(Array(b[0..<8]) == [0x02, 0x00, 0x45, 0x43, 0x49, 0x55, 0x4C, 0x53])
        #expect(Array(b[72..<80]) == [5, 0, 0, 0, 0, 0, 0, 0])
        for (i, byte) in b.enumerated() where !(0..<8).contains(i) && !(72..<80).contains(i) {
            if byte != 0 {
                Issue.record("byte \(i) is \(byte) after initialize")
                break
            }
        }
        #expect(mem.guardIntact, "initialize wrote past geometry.byteCount")
        #expect(try mem.view.observe() == ControlBlock(slotCount: 5))
        for s in 0..<5 { #expect(try mem.view.status(ofSlot: s) == .empty) }
        #expect(mem.view.epoch == 0)
        #expect(!mem.view.isShutdownRequested)
    }

    @Test("results region and result areas sit where the geometry says")
    func resultAreas() throws {
        let mem = try RingMemory(slots: 4, resultWords: 258)
        mem.view.initialize()
        let ring = mem.view
        #expect(UnsafeMutableRawPointer(ring.results.baseAddress!) == mem.base + 512)
        #expect(ring.results.count == 4 * 258)
        for s in 0..<4 {
            let area = ring.resultArea(ofSlot: s)
            #expect(UnsafeMutableRawPointer(area.baseAddress!) == mem.base + 512 + s * 258 * 4)
            #expect(area.count == 258)
            area[0] = 0xAB00 + UInt32(s)
            area[257] = 0xCD00 + UInt32(s)
        }
        let b = mem.bytes
        for s in 0..<4 {
            #expect(readLE32(b, 512 + s * 1_032) == 0xAB00 + UInt32(s))
            #expect(readLE32(b, 512 + s * 1_032 + 257 * 4) == 0xCD00 + UInt32(s))
        }
        #expect(mem.guardIntact)
    }

    // MARK: lifecycle

    @Test("publish -> tryClaim -> complete -> reclaim, checked at every step")
    func happyPath() throws {
        let mem = try RingMemory(slots: 4, resultWords: 258)
        let ring = mem.view
        ring.initialize()
        let p = Self.payload(2, length: 4_321)

        // publish: payload words in memory, little-endian, at the documented places.
        try ring.publish(slot: 2, p)
        #expect(try ring.status(ofSlot: 2) == .published)
        let b = mem.bytes
        func w(_ word: Int) -> UInt32 { readLE32(b, 256 + 2 * 64 + word * 4) }
        #expect(w(0) == 1)  // PUBLISHED
        #expect(w(1) == 1)  // count
        #expect(w(2) == 12)
        #expect(w(3) == 22)
        #expect(w(4) == 0x2000)  // 0x2_0000_0000 + 2 * 4096
        #expect(w(5) == 2)
        #expect(w(6) == 4_321)
        #expect(w(7) == 2)
        #expect(w(8) == 7)
        #expect(w(9) == 32)
        #expect(w(10) == 42)
        #expect(w(11) == 52)
        #expect(w(12) == 516)
        #expect(w(13) == 258)
        #expect(w(14) == 0)
        #expect(w(15) == 0)
        // No other slot was touched.
        for s in [0, 1, 3] {
            #expect(b[(256 + s * 64)..<(256 + s * 64 + 64)].allSatisfy { $0 == 0 }, "slot \(s)")
        }
        #expect(ring.epoch == 0)
        #expect(try ring.record(ofSlot: 2) == SlotRecord(status: .published, payload: p))

        // claim
        #expect(ring.tryClaim(slot: 1) == .unavailable)  // EMPTY
        #expect(try ring.status(ofSlot: 1) == .empty)
        #expect(ring.tryClaim(slot: 2) == .claimed(p))
        #expect(try ring.status(ofSlot: 2) == .claimed)
        #expect(mem.slotWordRaw(2, Doc.wStatus) == Doc.claimed)
        #expect(ring.tryClaim(slot: 2) == .unavailable)  // already claimed
        #expect(ring.epoch == 0)
        #expect(try ring.observe() == ControlBlock(slotCount: 4))

        // complete
        let area = ring.resultArea(ofSlot: 2)
        for i in 0..<258 { area[i] = UInt32(i) * 3 }
        ring.complete(slot: 2, resultWords: 258, bytes: 4_321)
        #expect(try ring.status(ofSlot: 2) == .done)
        #expect(mem.slotWordRaw(2, Doc.wCompletion) == 258)
        #expect(ring.tryClaim(slot: 2) == .unavailable)
        var control = try ring.observe()
        #expect(control == ControlBlock(epoch: 1, slotsDone: 1, bytesProcessed: 4_321, slotCount: 4))
        #expect(mem.controlWordRaw(Doc.cEpoch) == 1)
        #expect(mem.controlWordRaw(Doc.cSlotsDone) == 1)
        #expect(mem.controlWordRaw(Doc.cBytesProcessed) == 4_321)

        // reclaim
        let record = try ring.reclaim(slot: 2)
        #expect(record == SlotRecord(status: .done, payload: p, hostFlags: 0, completion: 258))
        #expect(record.fault == nil)
        #expect(try ring.status(ofSlot: 2) == .empty)
        #expect(try ring.observe() == control)  // reclaim does not count anything
        #expect(readLE32(mem.bytes, 512 + 2 * 1_032 + 100 * 4) == 300)

        // Second round on the same slot: publish clears the old completion word.
        let q = Self.payload(9, opcode: .crc32c, length: 79)
        try ring.publish(slot: 2, q)
        #expect(mem.slotWordRaw(2, Doc.wCompletion) == 0)
        #expect(mem.slotWordRaw(2, Doc.wOpcode) == 3)
        #expect(ring.tryClaim(slot: 2) == .claimed(q))
        ring.complete(slot: 2, resultWords: 1, bytes: 79)
        control = try ring.observe()
        #expect(control == ControlBlock(epoch: 2, slotsDone: 2, bytesProcessed: 4_400, slotCount: 4))
        #expect(try ring.reclaim(slot: 2) == SlotRecord(status: .done, payload: q, completion: 1))
        #expect(mem.guardIntact)
    }

    @Test("fault path: completion holds the code, lastFault, slotsFaulted and epoch move")
    func faultPath() throws {
        let mem = try RingMemory(slots: 4, resultWords: 4)
        let ring = mem.view
        ring.initialize()
        let bad = SlotPayload(opcode: Opcode(rawValue: 0x0001_0009), bufferOffset: 0, length: 64)
        try ring.publish(slot: 0, bad)
        #expect(ring.tryClaim(slot: 0) == .claimed(bad))
        ring.fault(slot: 0, code: .unknownOpcode, opcode: bad.opcode)

        #expect(try ring.status(ofSlot: 0) == .faulted)
        #expect(mem.slotWordRaw(0, Doc.wStatus) == Doc.faulted)
        #expect(mem.slotWordRaw(0, Doc.wCompletion) == 1)
        #expect(mem.controlWordRaw(Doc.cLastFault) == 0x0000_0001_0001_0009)
        var control = try ring.observe()
        #expect(control.lastFault == FaultRecord(slot: 0, code: .unknownOpcode, opcodeLow16: 9))
        #expect(control.slotsFaulted == 1)
        #expect(control.epoch == 1)
        #expect(control.slotsDone == 0)
        #expect(control.bytesProcessed == 0)
        #expect(control.slotsCancelled == 0)

        // A second fault elsewhere replaces lastFault; slot 0 stays FAULTED until reclaimed.
        let p = Self.payload(3, opcode: .scan)
        try ring.publish(slot: 3, p)
        #expect(ring.tryClaim(slot: 3) == .claimed(p))
        ring.fault(slot: 3, code: .resultOverflow, opcode: .scan)
        #expect(mem.slotWordRaw(3, Doc.wCompletion) == 5)
        #expect(mem.controlWordRaw(Doc.cLastFault) == 0x0000_0004_0005_0002)
        control = try ring.observe()
        #expect(control == ControlBlock(epoch: 2, slotsFaulted: 2, lastFault: FaultRecord(slot: 3, code: .resultOverflow, opcodeLow16: 2), slotCount: 4))

        let r0 = try ring.reclaim(slot: 0)
        #expect(r0.status == .faulted)
        #expect(r0.fault == .unknownOpcode)
        #expect(r0.completion == 1)
        #expect(r0.payload == bad)
        let r3 = try ring.reclaim(slot: 3)
        #expect(r3.fault == .resultOverflow)
        #expect(try ring.status(ofSlot: 0) == .empty)
        #expect(try ring.status(ofSlot: 3) == .empty)
        #expect(try ring.observe() == control)
    }

    @Test("cancel: the worker that wins the claim honours the request")
    func cancelHonoured() throws {
        let mem = try RingMemory(slots: 2, resultWords: 1)
        let ring = mem.view
        ring.initialize()
        let p = Self.payload(1)
        try ring.publish(slot: 1, p)
        try ring.requestCancel(slot: 1)
        #expect(mem.slotWordRaw(1, Doc.wHostFlags) == 1)
        #expect(try ring.status(ofSlot: 1) == .published)  // a request, not a transition
        #expect(ring.epoch == 0)

        #expect(ring.tryClaim(slot: 1) == .cancelled)
        #expect(try ring.status(ofSlot: 1) == .cancelled)
        #expect(mem.slotWordRaw(1, Doc.wStatus) == Doc.cancelled)
        #expect(ring.tryClaim(slot: 1) == .unavailable)
        #expect(try ring.observe() == ControlBlock(epoch: 1, slotsCancelled: 1, slotCount: 2))

        let record = try ring.reclaim(slot: 1)
        #expect(record == SlotRecord(status: .cancelled, payload: p, hostFlags: 1, completion: 0))
        #expect(try ring.status(ofSlot: 1) == .empty)

        // Republishing clears the cancel flag: the next claim runs the slot.
        try ring.publish(slot: 1, p)
        #expect(mem.slotWordRaw(1, Doc.wHostFlags) == 0)
        #expect(ring.tryClaim(slot: 1) == .claimed(p))
        ring.complete(slot: 1, resultWords: 1, bytes: 1_000)
        #expect(try ring.observe() == ControlBlock(epoch: 2, slotsDone: 1, slotsCancelled: 1, bytesProcessed: 1_000, slotCount: 2))
    }

    @Test("a cancel request keeps the region bit the payload wrote; the claim decodes both")
    func cancelKeepsRegion() throws {
        let mem = try RingMemory(slots: 2, resultWords: 1)
        let ring = mem.view
        ring.initialize()
        var p = Self.payload(1)
        p.region = .device
        try ring.publish(slot: 0, p)
        #expect(mem.slotWordRaw(0, Doc.wHostFlags) == 2)
        try ring.publish(slot: 1, p)
        try ring.requestCancel(slot: 1)
        #expect(mem.slotWordRaw(1, Doc.wHostFlags) == 3)
        #expect(ring.tryClaim(slot: 0) == .claimed(p))
        #expect(ring.tryClaim(slot: 1) == .cancelled)
    }

    @Test(
        "cancel on a slot that is not PUBLISHED is an illegal transition naming the slot and both states",
        arguments: [SlotStatus.empty, .claimed, .done, .faulted, .cancelled])
    func cancelOnNonPublished(state: SlotStatus) throws {
        let mem = try RingMemory(slots: 4, resultWords: 3)
        let ring = mem.view
        ring.initialize()
        try Self.drive(ring, slot: 3, to: state)
        let before = mem.bytes
        let error = thrown { try ring.requestCancel(slot: 3) }
        #expect(error == .illegalTransition(slot: 3, from: state, to: .cancelled, by: .host))
        let message = error?.message ?? ""
        #expect(message.contains("slot 3"))
        #expect(message.contains(state.description))
        #expect(message.contains("CANCELLED"))
        #expect(mem.bytes == before, "a rejected cancel must not write")
    }

    @Test(
        "publish on a slot that is not EMPTY throws illegalTransition and writes nothing",
        arguments: [SlotStatus.published, .claimed, .done, .faulted, .cancelled])
    func illegalPublish(state: SlotStatus) throws {
        let mem = try RingMemory(slots: 3, resultWords: 3)
        let ring = mem.view
        ring.initialize()
        try Self.drive(ring, slot: 1, to: state)
        let before = mem.bytes
        let error = thrown { try ring.publish(slot: 1, Self.payload(77, opcode: .scan)) }
        #expect(error == .illegalTransition(slot: 1, from: state, to: .published, by: .host))
        #expect(mem.bytes == before, "a rejected publish must not write payload words")
        #expect(try ring.status(ofSlot: 1) == state)
    }

    @Test(
        "reclaim on a slot that is not terminal throws illegalTransition and writes nothing",
        arguments: [SlotStatus.empty, .published, .claimed])
    func illegalReclaim(state: SlotStatus) throws {
        let mem = try RingMemory(slots: 3, resultWords: 3)
        let ring = mem.view
        ring.initialize()
        try Self.drive(ring, slot: 2, to: state)
        let before = mem.bytes
        let error = thrown { try ring.reclaim(slot: 2) }
        #expect(error == .illegalTransition(slot: 2, from: state, to: .empty, by: .host))
        #expect(mem.bytes == before)
        #expect(try ring.status(ofSlot: 2) == state)
    }

    @Test(
        "reclaim on every terminal state succeeds and returns the slot to EMPTY",
        arguments: [SlotStatus.done, .faulted, .cancelled])
    func legalReclaim(state: SlotStatus) throws {
        let mem = try RingMemory(slots: 3, resultWords: 3)
        let ring = mem.view
        ring.initialize()
        try Self.drive(ring, slot: 0, to: state)
        let record = try ring.reclaim(slot: 0)
        #expect(record.status == state)
        #expect(record.payload == Self.payload(0))
        #expect(try ring.status(ofSlot: 0) == .empty)
        #expect(mem.slotWordRaw(0, Doc.wStatus) == 0)
        let control = try ring.observe()
        #expect(control.epoch == 1)
        #expect(control.slotsDone == (state == .done ? 1 : 0))
        #expect(control.slotsFaulted == (state == .faulted ? 1 : 0))
        #expect(control.slotsCancelled == (state == .cancelled ? 1 : 0))
    }

    @Test("a status word outside the protocol is .malformed naming the slot")
    func corruptStatus() throws {
        let mem = try RingMemory(slots: 4, resultWords: 1)
        let ring = mem.view
        ring.initialize()
        mem.setSlotWordRaw(3, Doc.wStatus, 77)

        let operations: [(String, () throws(PipelineError) -> Void)] = [
            ("status", { () throws(PipelineError) in _ = try ring.status(ofSlot: 3) }),
            ("record", { () throws(PipelineError) in _ = try ring.record(ofSlot: 3) }),
            ("publish", { () throws(PipelineError) in try ring.publish(slot: 3, Self.payload(3)) }),
            ("reclaim", { () throws(PipelineError) in _ = try ring.reclaim(slot: 3) }),
            ("requestCancel", { () throws(PipelineError) in try ring.requestCancel(slot: 3) }),
        ]
        for (name, operation) in operations {
            let error = thrown(operation)
            guard case .malformed(let what, let detail)? = error else {
                Issue.record("\(name): expected .malformed, got \(String(describing: error))")
                continue
            }
            #expect(what == "slot 3", "\(name)")
            #expect(detail.contains("77"), "\(name)")
            #expect(error!.message.contains("slot 3"))
        }
        #expect(mem.slotWordRaw(3, Doc.wStatus) == 77, "nothing overwrote the corrupt word")
        #expect(ring.tryClaim(slot: 3) == .unavailable)
        #expect(mem.slotWordRaw(3, Doc.wStatus) == 77)
        // Neighbours are unaffected.
        #expect(try ring.status(ofSlot: 2) == .empty)
    }

    @Test("slot indices outside 0..<slotCount are rejected", arguments: [-1, 4, 5, 1 << 40, Int.min])
    func outOfRange(slot: Int) throws {
        let mem = try RingMemory(slots: 4, resultWords: 1)
        let ring = mem.view
        ring.initialize()
        let before = mem.bytes
        let operations: [(String, () throws(PipelineError) -> Void)] = [
            ("status", { () throws(PipelineError) in _ = try ring.status(ofSlot: slot) }),
            ("record", { () throws(PipelineError) in _ = try ring.record(ofSlot: slot) }),
            ("publish", { () throws(PipelineError) in try ring.publish(slot: slot, Self.payload(0)) }),
            ("reclaim", { () throws(PipelineError) in _ = try ring.reclaim(slot: slot) }),
            ("requestCancel", { () throws(PipelineError) in try ring.requestCancel(slot: slot) }),
        ]
        for (name, operation) in operations {
            let error = thrown(operation)
            guard case .invalidRequest(let chunk, let s, let reason)? = error else {
                Issue.record("\(name): expected .invalidRequest, got \(String(describing: error))")
                continue
            }
            #expect(chunk == nil)
            #expect(s == slot, "\(name)")
            #expect(reason.contains("4"), "\(name): the reason names the valid range")
            #expect(error!.message.contains("slot \(slot)"))
        }
        #expect(mem.bytes == before)
        #expect(mem.guardIntact)
    }

    @Test("shutdown flag and worker count go through the control block")
    func shutdownAndWorkers() throws {
        let mem = try RingMemory(slots: 1, resultWords: 0)
        let ring = mem.view
        ring.initialize()
        ring.workerEntered()
        ring.workerEntered()
        ring.workerEntered()
        #expect(mem.controlWordRaw(Doc.cWorkersRunning) == 3)
        ring.workerLeft()
        #expect(try ring.observe().workersRunning == 2)
        #expect(!ring.isShutdownRequested)
        ring.requestShutdown()
        #expect(ring.isShutdownRequested)
        #expect(mem.controlWordRaw(Doc.cShutdown) == 1)
        #expect(try ring.observe() == ControlBlock(shutdown: true, workersRunning: 2, slotCount: 1))
    }

    @Test("observe rejects a control block without the magic")
    func observeUninitialized() throws {
        let mem = try RingMemory(slots: 2, resultWords: 1)
        let ring = mem.view
        ring.initialize()
        mem.setControlWordRaw(Doc.cMagic, 0x534C_5549_4345_0001)
        guard case .malformed(let what, _)? = thrown({ try ring.observe() }) else {
            Issue.record("expected .malformed")
            return
        }
        #expect(what == "control block")
    }

    @Test("a record written through RingView decodes through RingImage identically")
    func viewAndImageAgree() throws {
        let mem = try RingMemory(slots: 6, resultWords: 5)
        let ring = mem.view
        ring.initialize()
        let states: [SlotStatus] = [.empty, .published, .claimed, .done, .faulted, .cancelled]
        for (slot, state) in states.enumerated() { try Self.drive(ring, slot: slot, to: state) }
        for s in 0..<6 { ring.resultArea(ofSlot: s)[4] = UInt32(1_000 + s) }
        let bytes = mem.bytes
        let image = try RingImage.decode(bytes, geometry: ring.geometry)
        #expect(image.control == (try ring.observe()))
        for slot in 0..<6 {
            #expect(image.slots[slot] == (try ring.record(ofSlot: slot)), "slot \(slot)")
            #expect(image.slots[slot].status == states[slot])
            #expect(image.results[slot * 5 + 4] == UInt32(1_000 + slot))
        }
        #expect(image.encode() == bytes)
    }
}
