// Fuzz target: the ring and control block decoders.
//
// Input layout (little-endian), by mode = byte 0 & 3:
//   0  control block: [1] options (bit 7: word count = bits 0-4 instead of 16;
//      bit 5: force the magic; bit 6: zero the reserved words), then u64 words.
//   1  ring image: [1] slots - 1 (mod 8), [2] result words per slot (mod 64),
//      [3] options (bit 0: pad or cut the rest to the geometry's size; bit 1: also
//      set the magic and slot count and zero the padding and reserved words), then
//      the image bytes.
//   2  a structured, valid image built from the bytes: encode, then decode must
//      give it back.
//   3  geometry from two raw 32-bit values (any sign, any size), then the image bytes.
//   4  a tenant table: [1] options (bit 0: raw words instead of a header built from
//      the next bytes), the table, then up to 4 slot ranges to check against it.
//
// Properties: decoding never traps; a control block or ring image that decodes
// re-encodes to exactly the same words/bytes; RingView over an accepted image
// reads the same control block, slots and results; an image built by the
// encoder always decodes to itself. TenantTable.validate accepts exactly the
// tables whose header matches their length, and for those TenantTable.permits
// (on an exactly sized copy) agrees with a byte-by-byte model of ownership.
#if canImport(Glibc)
import Glibc
#endif
import FuzzSupport
import SluiceCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRing(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var r = ByteReader(Array(UnsafeBufferPointer(start: data, count: size)))
    switch r.u8() % 5 {
    case 0: controlBlock(&r)
    case 1:
        let slots = 1 + Int(r.u8() % 8), resultWords = Int(r.u8() % 64), options = r.u8()
        guard let geometry = try? RingGeometry(slotCount: slots, resultWordsPerSlot: resultWords) else {
            fail("RingGeometry(\(slots), \(resultWords)) refused")
        }
        var bytes = r.rest()
        if options & 3 != 0 {
            if bytes.count > geometry.byteCount { bytes.removeLast(bytes.count - geometry.byteCount) }
            bytes += [UInt8](repeating: 0, count: geometry.byteCount - bytes.count)
        }
        if options & 2 != 0 { makePlausible(&bytes, geometry) }
        decodeImage(bytes, geometry)
    case 2: structuredImage(&r)
    case 4: tenantTable(&r)
    default:
        let slots = Int(Int32(bitPattern: r.u32())), resultWords = Int(Int32(bitPattern: r.u32()))
        guard let geometry = try? RingGeometry(slotCount: slots, resultWordsPerSlot: resultWords) else { return 0 }
        require(slots > 0 && resultWords >= 0, "RingGeometry accepted \(slots) slots × \(resultWords) words")
        decodeImage(r.rest(), geometry)
    }
    return 0
}

/// Control words past the last named one are reserved (zero).
let firstReservedWord = ControlWord.allCases.map(\.rawValue).max()! + 1

func controlBlock(_ r: inout ByteReader) {
    let options = r.u8()
    let count = options & 0x80 != 0 ? Int(options & 31) : ControlWord.count
    var words = (0..<count).map { _ in r.u64() }
    if count == ControlWord.count {
        if options & 0x20 != 0 { words[ControlWord.magic.rawValue] = ControlBlock.magic }
        if options & 0x40 != 0 { for i in firstReservedWord..<ControlWord.count { words[i] = 0 } }
    }
    guard let block = try? ControlBlock(words: words) else { return }
    require(count == ControlWord.count, "ControlBlock accepted \(count) words")
    Stats.count("control accepted\(block.lastFault != nil ? " with fault" : "")")
    require(block.words == words, "ControlBlock(words: \(words)).words is \(block.words)")
    if let fault = block.lastFault {
        require(try! FaultRecord(packed: fault.packed) == fault, "FaultRecord round trip")
    }
}

/// Sets what a snapshot of a live ring always has, so that decoding gets past
/// the control block and padding checks to the slots.
func makePlausible(_ bytes: inout [UInt8], _ g: RingGeometry) {
    func put64(_ v: UInt64, _ o: Int) { for i in 0..<8 { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    put64(ControlBlock.magic, ControlWord.magic.rawValue * 8)
    put64(UInt64(g.slotCount), ControlWord.slotCount.rawValue * 8)
    for o in (firstReservedWord * 8)..<g.slotsOffset { bytes[o] = 0 }
    for o in g.slotOffset(g.slotCount)..<g.resultsOffset { bytes[o] = 0 }
}

func decodeImage(_ bytes: [UInt8], _ geometry: RingGeometry) {
    let image: RingImage
    do {
        image = try RingImage.decode(bytes, geometry: geometry)
    } catch {
        guard case .malformed(let what, let detail) = error else { fail("RingImage.decode threw \(error), not .malformed") }
        Stats.count("image rejected: \(what.hasPrefix("slot") ? "slot" : what) \(detail.prefix(while: { !$0.isNumber }))")
        return
    }
    Stats.count("image accepted")
    require(image.geometry == geometry, "decoded geometry changed")
    require(image.slots.count == geometry.slotCount && image.results.count == geometry.resultWordsTotal, "decoded sizes")
    let again = image.encode()
    require(again == bytes, "re-encoding changed byte \(zip(again, bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
    require((try? RingImage.decode(again, geometry: geometry)) == image, "decode(encode(image)) != image")
    checkRingView(bytes, image)
}

/// A RingView over the same bytes must read what the decoder read.
func checkRingView(_ bytes: [UInt8], _ image: RingImage) {
    let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
    defer { memory.deallocate() }
    bytes.withUnsafeBytes { memory.copyMemory(from: $0) }
    guard let view = try? RingView(bytes: memory, geometry: image.geometry) else { fail("RingView refused the image") }
    do {
        let control = try view.observe()
        require(control == image.control, "RingView.observe() differs from the decoded control block")
        // The accessors workers use read the same words 10-13.
        require(view.scanDirectory == (image.control.scanDirectoryAddress, image.control.scanDirectoryEntries),
                "RingView.scanDirectory \(view.scanDirectory) differs from the decoded words 10-11")
        require(view.tenantTable == (image.control.tenantTableAddress, image.control.tenantTableWords),
                "RingView.tenantTable \(view.tenantTable) differs from the decoded words 12-13")
        for s in 0..<image.geometry.slotCount {
            let record = try view.record(ofSlot: s)
            require(record == image.slots[s], "RingView.record(ofSlot: \(s)) differs")
        }
    } catch {
        fail("RingView threw \(error) on an image RingImage accepted")
    }
    require(Array(view.results) == image.results, "RingView.results differs")
}

func structuredImage(_ r: inout ByteReader) {
    guard let geometry = try? RingGeometry(slotCount: 1 + Int(r.u8() % 8), resultWordsPerSlot: Int(r.u8() % 64)) else {
        fail("small geometry refused")
    }
    func code(_ v: UInt8) -> FaultCode { FaultCode.allCases[Int(v) % FaultCode.allCases.count] }
    let faultBits = r.u64()
    let lastFault: FaultRecord? = faultBits & 1 == 0 ? nil : FaultRecord(
        slot: Int(faultBits >> 8 & 0xFF) % geometry.slotCount, code: code(UInt8(truncatingIfNeeded: faultBits >> 16)),
        opcodeLow16: UInt32(truncatingIfNeeded: faultBits >> 32))
    let control = ControlBlock(
        shutdown: r.u8() & 1 != 0, epoch: r.u64(), slotsDone: r.u64(), slotsFaulted: r.u64(), slotsCancelled: r.u64(),
        bytesProcessed: r.u64(), lastFault: lastFault, workersRunning: r.u64(), slotCount: UInt64(geometry.slotCount),
        scanDirectoryAddress: r.u64(), scanDirectoryEntries: r.u64(), tenantTableAddress: r.u64(), tenantTableWords: r.u64())
    var slots: [SlotRecord] = []
    for _ in 0..<geometry.slotCount {
        let status = SlotStatus.allCases[Int(r.u8()) % SlotStatus.allCases.count]
        var words = (0..<SlotWord.count).map { _ in r.u32() }
        // A live slot carries a defined opcode or one of the user range (which decodes).
        if status != .empty, !Opcode(rawValue: words[SlotWord.opcode.rawValue]).isInProtocol {
            words[SlotWord.opcode.rawValue] = Opcode.defined[Int(words[SlotWord.opcode.rawValue] % 3)].rawValue
        }
        var completion = words[SlotWord.completion.rawValue]
        if status == .faulted { completion = code(UInt8(truncatingIfNeeded: completion)).rawValue }
        slots.append(SlotRecord(
            status: status, payload: SlotPayload(words: words), hostFlags: words[SlotWord.hostFlags.rawValue],
            completion: completion))
    }
    let results = (0..<geometry.resultWordsTotal).map { _ in r.u32() }
    let image = RingImage(geometry: geometry, control: control, slots: slots, results: results)
    let bytes = image.encode()
    require(bytes.count == geometry.byteCount, "encode() gave \(bytes.count) bytes for \(geometry.byteCount)")
    do {
        let decoded = try RingImage.decode(bytes, geometry: geometry)
        require(decoded == image, "decode(encode(image)) != image")
    } catch {
        fail("a valid image did not decode: \(error)")
    }
    decodeImage(bytes, geometry)
}

func tenantTable(_ r: inout ByteReader) {
    let options = r.u8()
    var words: [UInt32]
    if options & 1 != 0 {
        words = (0..<Int(r.u8() % 80)).map { _ in r.u32() }
    } else {
        let tenants = UInt32(r.u8() % 5), chunkBytes = UInt32(r.u8()), chunks = Int(r.u8() % 32)
        let areaWords = UInt32(r.u8()), areas = Int(r.u8() % 32)
        words = [TenantTable.magic, tenants, chunkBytes, UInt32(chunks), areaWords, UInt32(areas), 0, 0]
        for _ in 0..<(chunks + areas) {
            let v = r.u8()
            words.append(v == 0xFF ? TenantTable.unowned : UInt32(v) % (tenants + 1))
        }
    }
    let headerMatches = words.count >= TenantTable.headerWords && words[0] == TenantTable.magic && words[1] >= 1
        && words[2] > 0 && words[4] > 0 && words.count == TenantTable.headerWords + Int(words[3]) + Int(words[5])
    withExactWords(words) { table in
        let table = UnsafeBufferPointer(table)
        do {
            try TenantTable.validate(table)
        } catch {
            require(!headerMatches, "TenantTable.validate rejected \(words): \(error)")
            return
        }
        require(headerMatches, "TenantTable.validate accepted \(words)")
        let tenants = words[1], chunkBytes = Int(words[2]), chunks = Int(words[3]), areaWords = Int(words[4])
        let areas = Int(words[5])
        for _ in 0..<4 where !r.isAtEnd {
            let t = r.u8()
            let p = SlotPayload(
                opcode: .count, tenant: t == 0xFF ? TenantTable.unowned : UInt32(t % 6),
                bufferOffset: UInt64(r.u16() % 4096), length: UInt32(r.u16() % 2048),
                resultOffset: UInt32(r.u16() % 4096), resultCapacity: UInt32(r.u16() % 2048))
            // Byte by byte and word by word: every one touched is in a buffer or area the tenant owns.
            var model = p.tenant < tenants
            for b in Int(p.bufferOffset)..<(Int(p.bufferOffset) + Int(p.length)) where model {
                let c = b / chunkBytes
                model = c < chunks && words[TenantTable.headerWords + c] == p.tenant
            }
            for w in Int(p.resultOffset)..<(Int(p.resultOffset) + Int(p.resultCapacity)) where model {
                let a = w / areaWords
                model = a < areas && words[TenantTable.headerWords + chunks + a] == p.tenant
            }
            let permitted = TenantTable.permits(p, table: table)
            Stats.count("tenant permits \(permitted)")
            require(permitted == model, "TenantTable.permits says \(permitted) for \(p.words) in \(words)")
        }
    }
}

// MARK: seeds

@_cdecl("LLVMFuzzerInitialize")
public func fuzzRingInitialize(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    writeSeedsIfAsked(ringSeeds)
    return 0
}

func ringSeeds() -> [(name: String, bytes: [UInt8])] {
    let g = try! RingGeometry(slotCount: 2, resultWordsPerSlot: 3)
    let image = RingImage(
        geometry: g,
        control: ControlBlock(
            epoch: 9, slotsDone: 7, slotsFaulted: 1, slotsCancelled: 1, bytesProcessed: 0x1_0000_0002,
            lastFault: FaultRecord(slot: 1, code: .bufferOutOfBounds, opcodeLow16: 2), workersRunning: 4, slotCount: 2,
            scanDirectoryAddress: 0x7F00_1234_5000, scanDirectoryEntries: 300),
        slots: [
            SlotRecord(
                status: .done,
                payload: SlotPayload(
                    opcode: .count, tenant: 5, priority: 6, bufferOffset: 0x3_0000_1000, length: 4096,
                    fileOffset: 0x10_0000_0000, chunkIndex: 11, arguments: (12, 13), resultOffset: 0, resultCapacity: 3),
                completion: 3),
            SlotRecord(
                status: .faulted,
                payload: SlotPayload(opcode: .scan, bufferOffset: 0xFFFF_FFFF_FFFF_F000, length: 0x2000, resultOffset: 3, resultCapacity: 3),
                hostFlags: 1, completion: FaultCode.bufferOutOfBounds.rawValue),
        ],
        results: [0xAABB_CCDD, 1, 0xFFFF_FFFF, 0, 0, 0x8000_0000])
    let fresh = RingImage(
        geometry: try! RingGeometry(slotCount: 1, resultWordsPerSlot: 0), control: ControlBlock(slotCount: 1),
        slots: [SlotRecord(status: .empty, payload: SlotPayload(opcode: Opcode(rawValue: 77), bufferOffset: 0, length: 0))],
        results: [])
    var control = ByteWriter()
    control.u8(0)
    control.u8(0)
    for w in image.control.words { control.u64(w) }
    var shortControl = ByteWriter()
    shortControl.u8(0)
    shortControl.u8(0x80 | 15)
    for w in image.control.words.prefix(15) { shortControl.u64(w) }
    var structured = ByteWriter()
    structured.u8(2)
    structured.u8(2)
    structured.u8(4)
    for i in 0..<300 { structured.u8(UInt8(truncatingIfNeeded: i &* 37)) }
    var raw = ByteWriter()
    raw.u8(3)
    raw.u32(2)
    raw.u32(3)
    raw.append(image.encode())
    return [
        ("control-block", control.bytes),
        ("control-15-words", shortControl.bytes),
        ("image-2x3", [1, 1, 3, 0] + image.encode()),
        ("image-fresh-1x0", [1, 0, 0, 0] + fresh.encode()),
        ("image-plausible-4x8", [1, 3, 8, 3] + [UInt8](repeating: 1, count: 96)),
        ("structured", structured.bytes),
        ("raw-geometry", raw.bytes),
        // 2 tenants, 4 chunks of 16 bytes, 3 areas of 8 words; three slot ranges.
        ("tenants", [4, 0, 2, 16, 4, 8, 3, 0, 1, 1, 0xFF, 0, 1, 0xFF]
            + [0, 0, 0, 16, 0, 0, 0, 8, 0] + [1, 16, 0, 32, 0, 8, 0, 8, 0] + [1, 20, 0, 20, 0, 0, 0, 0, 0]),
    ]
}
