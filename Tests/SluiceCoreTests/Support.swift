import Glibc
import Synchronization
import Testing

import SluiceCore
import SluiceThreads

// Helpers shared by the SluiceCore tests. Everything here is written
// independently of the code under test: little-endian words are assembled
// byte by byte, offsets come from docs/protocol.md, and the RNG is a
// self-contained SplitMix64 so that every "random" test is reproducible.

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, seeded, deterministic generator.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension RandomNumberGenerator {
    mutating func u32() -> UInt32 { UInt32.random(in: .min ... .max, using: &self) }
    mutating func u64() -> UInt64 { UInt64.random(in: .min ... .max, using: &self) }
    mutating func byte() -> UInt8 { UInt8.random(in: .min ... .max, using: &self) }
}

// MARK: little-endian, by hand

func readLE32(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
}

func readLE64(_ b: [UInt8], _ o: Int) -> UInt64 {
    UInt64(readLE32(b, o)) | UInt64(readLE32(b, o + 4)) << 32
}

func writeLE32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
    b[o] = UInt8(v & 0xFF)
    b[o + 1] = UInt8((v >> 8) & 0xFF)
    b[o + 2] = UInt8((v >> 16) & 0xFF)
    b[o + 3] = UInt8((v >> 24) & 0xFF)
}

func writeLE64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
    writeLE32(&b, o, UInt32(v & 0xFFFF_FFFF))
    writeLE32(&b, o + 4, UInt32(v >> 32))
}

// MARK: the documented layout, written out by hand (docs/protocol.md)

enum Doc {
    /// Ring region: control block at 0 (16 × u64 = 128 bytes), padded to 256.
    static let controlBytes = 128
    static let slotsOffset = 256
    static let slotBytes = 64
    static let magic: UInt64 = 0x534C_5549_4345_0002

    // Slot words.
    static let wStatus = 0
    static let wOpcode = 1
    static let wTenant = 2
    static let wPriority = 3
    static let wBufferOffsetLo = 4
    static let wBufferOffsetHi = 5
    static let wLength = 6
    static let wFileOffsetLo = 7
    static let wFileOffsetHi = 8
    static let wChunkIndex = 9
    static let wArgument0 = 10
    static let wArgument1 = 11
    static let wResultOffset = 12
    static let wResultCapacity = 13
    static let wHostFlags = 14
    static let wCompletion = 15

    // Control words.
    static let cMagic = 0
    static let cShutdown = 1
    static let cEpoch = 2
    static let cSlotsDone = 3
    static let cSlotsFaulted = 4
    static let cSlotsCancelled = 5
    static let cBytesProcessed = 6
    static let cLastFault = 7
    static let cWorkersRunning = 8
    static let cSlotCount = 9

    // Status values.
    static let empty: UInt32 = 0
    static let published: UInt32 = 1
    static let claimed: UInt32 = 2
    static let done: UInt32 = 3
    static let faulted: UInt32 = 4
    static let cancelled: UInt32 = 5

    static func slotByte(_ slot: Int, word: Int) -> Int { slotsOffset + slot * slotBytes + word * 4 }

    static func resultsOffset(slotCount: Int) -> Int {
        let end = slotsOffset + slotCount * slotBytes
        return end % 256 == 0 ? end : (end / 256 + 1) * 256
    }
}

// MARK: ring memory

/// An aligned, owned allocation holding one ring region plus a guard tail
/// that must never be written.
final class RingMemory: @unchecked Sendable {
    static let guardBytes = 64
    static let guardPattern: UInt8 = 0xA5

    let geometry: RingGeometry
    let raw: UnsafeMutableRawBufferPointer
    let view: RingView

    init(_ geometry: RingGeometry, fill: UInt8 = 0xCD) throws {
        self.geometry = geometry
        raw = UnsafeMutableRawBufferPointer.allocate(
            byteCount: geometry.byteCount + RingMemory.guardBytes, alignment: 4096)
        raw.initializeMemory(as: UInt8.self, repeating: fill)
        for i in geometry.byteCount..<raw.count { raw[i] = RingMemory.guardPattern }
        view = try RingView(
            bytes: UnsafeMutableRawBufferPointer(rebasing: raw[0..<geometry.byteCount]), geometry: geometry)
    }

    convenience init(slots: Int, resultWords: Int) throws {
        try self.init(RingGeometry(slotCount: slots, resultWordsPerSlot: resultWords))
    }

    deinit { raw.deallocate() }

    var base: UnsafeMutableRawPointer { raw.baseAddress! }

    /// A copy of the ring region's bytes (without the guard tail).
    var bytes: [UInt8] { Array(raw[0..<geometry.byteCount]) }

    var guardIntact: Bool { raw[geometry.byteCount...].allSatisfy { $0 == RingMemory.guardPattern } }

    func slotWordRaw(_ slot: Int, _ word: Int) -> UInt32 {
        readLE32(bytes, Doc.slotByte(slot, word: word))
    }

    func setSlotWordRaw(_ slot: Int, _ word: Int, _ v: UInt32) {
        let o = Doc.slotByte(slot, word: word)
        for i in 0..<4 { raw[o + i] = UInt8((v >> (8 * UInt32(i))) & 0xFF) }
    }

    func controlWordRaw(_ word: Int) -> UInt64 { readLE64(bytes, word * 8) }

    func setControlWordRaw(_ word: Int, _ v: UInt64) {
        for i in 0..<8 { raw[word * 8 + i] = UInt8((v >> (8 * UInt64(i))) & 0xFF) }
    }
}

/// Runs `body` and returns the PipelineError it threw, or nil when it returned.
/// (Closures are not inferred as `throws(PipelineError)`, so this takes any error
/// and records an issue for one that is not a PipelineError.)
func thrown<R>(
    _ body: () throws -> R, sourceLocation: SourceLocation = #_sourceLocation
) -> PipelineError? {
    do {
        _ = try body()
        return nil
    } catch let error as PipelineError {
        return error
    } catch {
        Issue.record("threw \(error), which is not a PipelineError", sourceLocation: sourceLocation)
        return nil
    }
}

// MARK: threads

/// Runs `body(i)` for i in 0..<count on real pthreads and joins them all.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    var threads: [PosixThread] = []
    for i in 0..<count {
        do throws(ThreadStartFailure) {
            threads.append(try PosixThread(name: "test \(i)") { body(i) })
        } catch {
            preconditionFailure(error.message)
        }
    }
    for t in threads { t.join() }
}

/// All threads spin here until the last one arrives, so they start racing together.
final class StartLine: Sendable {
    let waiting: Atomic<Int>
    init(parties: Int) { waiting = Atomic(parties) }
    func arriveAndWait() {
        waiting.subtract(1, ordering: .acquiringAndReleasing)
        while waiting.load(ordering: .acquiring) > 0 { sched_yield() }
    }
}
