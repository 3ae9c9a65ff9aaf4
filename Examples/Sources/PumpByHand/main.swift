import Sluice

// pump-by-hand FILE: prints `LINES BYTES FILE` like `wc -l -c`, by driving the
// ring yourself: the pump reads each chunk of the file into a buffer of the
// CPU backend's data region and publishes its slot once the bytes landed;
// the backend's workers run the `count` opcode on it; this loop reclaims
// finished slots and adds up their results.
let path = FilePath(CommandLine.arguments[1])
let chunkBytes = 64 << 10
let slots = 4
let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: CountOp.resultWords)
let backend = try CPUBackend(
    configuration: BackendConfiguration(geometry: geometry, dataBytes: slots * chunkBytes, workers: 2))
try backend.start()
var pump = try Pump(
    stream: try PreadStream(region: backend.dataRegion, chunkBytes: chunkBytes, chunkCount: slots), chunkBytes: chunkBytes)
let ring = backend.ring
let file = try FileDescriptor.open(path, .readOnly)
let size = UInt64(try file.seek(offset: 0, from: .end))

var nextOffset: UInt64 = 0
var busy = Set<Int>()  // slots with a read in flight or a chunk published
var total = CountResult()
while nextOffset < size || !busy.isEmpty {
    // Post the next chunk's read into every free slot (slot i uses chunk buffer i).
    for slot in 0..<slots where !busy.contains(slot) && nextOffset < size {
        let length = Int(min(UInt64(chunkBytes), size - nextOffset))
        try pump.submitFileScan(
            fd: file, path: path.string, fileOffset: nextOffset, length: length, chunkIndex: slot, slotIndex: slot,
            tenant: 0, opcode: .count, ring: ring)
        busy.insert(slot)
        nextOffset += UInt64(length)
    }
    // Publish every chunk whose read completed (in any order).
    for event in try pump.drainIntoRing(ring, waitingUpTo: .milliseconds(1)) {
        if case .failed(let chunk, _, let error) = event { fatalError("chunk \(chunk): \(error)") }
    }
    // Reclaim the slots the workers finished, and add up their counts.
    let epoch = pump.observeEpoch(ring)
    for slot in busy where try ring.status(ofSlot: slot) == .done || ring.status(ofSlot: slot) == .faulted {
        let record = try ring.reclaim(slot: slot)
        if let fault = record.fault { fatalError("slot \(slot) faulted: \(fault)") }
        total.add(try CountResult(words: ring.resultArea(ofSlot: slot).prefix(Int(record.completion))))
        busy.remove(slot)
    }
    if !busy.isEmpty { _ = try backend.waitForProgress(after: epoch, timeout: .milliseconds(10)) }
}
try file.close()
try backend.shutdown()
print("\(total.newlines) \(total.bytes) \(path)")
