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
import SluiceSystem
import SluiceThreads


/// The self-test's checks, one method each; `runAll` runs them in order.
extension SelfTestRun {
    func countSlot(_ slot: Int, offset: Int, data: [UInt8], label: String, expect: TestSlot.Expect = .count) -> TestSlot {
        TestSlot(
            slot: slot,
            payload: SlotPayload(
                opcode: .count, tenant: 7, bufferOffset: UInt64(offset), length: UInt32(data.count),
                fileOffset: UInt64(offset) &* 3, chunkIndex: UInt32(slot),
                resultOffset: UInt32(geometry.resultOffset(ofSlot: slot)), resultCapacity: UInt32(geometry.resultWordsPerSlot)),
            data: data, expect: expect, label: label)
    }

    /// Many sizes and patterns, at unaligned offsets, in rounds that fill the ring.
    func sizesCheck() throws(CheckFailure) -> String {
        let c = chunkBytes
        var sizes = [0, 1, 2, 3, 5, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000, 4095, 4096, 4097,
                     16383, 65535, 65536, 65537, 1 << 20 | 1, c - 1, c, c + 1, 3 * c + 12_345]
        for _ in 0..<(options.quick ? 6 : 16) { sizes.append(1 + rng.below(1 << 18) * 2) }   // odd sizes
        for _ in 0..<(options.quick ? 2 : 6) { sizes.append(rng.below(2 * c)) }
        var plan: [(Int, TestPattern)] = []
        let patterns: [TestPattern] = [.random, .text]
        for (k, size) in sizes.enumerated() { plan.append((size, patterns[k % 2])) }
        for size in [1, 4095, 4096, 4097, 65536, c] {
            plan.append((size, .constant(0x0A)))
            plan.append((size, .constant(UInt8(truncatingIfNeeded: rng.next()))))
        }
        plan.append((c + 1, .constant(0x00)))
        plan.append((4097, .constant(0xFF)))
        plan.shuffle(using: &rng)

        var rounds = 0
        var chunks = 0
        var total = 0
        var index = 0
        while index < plan.count {
            var slots: [TestSlot] = []
            var cursor = 0
            while index < plan.count, slots.count < geometry.slotCount {
                let (size, pattern) = plan[index]
                let offset = cursor + rng.below(64)
                guard offset + size <= dataBytes else { break }
                let slot = slots.count
                slots.append(countSlot(slot, offset: offset, data: pattern.bytes(count: size, rng: &rng), label: "\(pattern)"))
                cursor = offset + size
                index += 1
            }
            if slots.isEmpty {
                throw CheckFailure(message: "size \(plan[index].0) does not fit the \(dataBytes)-byte data region")
            }
            // A chunk that ends exactly at the end of the data region.
            if rounds == 0, slots.count < geometry.slotCount {
                let size = 4097
                if cursor + size <= dataBytes {
                    slots.append(countSlot(slots.count, offset: dataBytes - size, data: TestPattern.random.bytes(count: size, rng: &rng), label: "random, ending at the end of the data region"))
                }
            }
            _ = try runAndCompare(slots)
            rounds += 1
            chunks += slots.count
            total += slots.reduce(0) { $0 + Int($1.payload.length) }
        }
        let largest = plan.map(\.0).max() ?? 0
        return "\(chunks) chunks of 0 B to \(formatSize(largest)) (\(formatSize(total)) in all) in \(rounds) rounds, random/text/one-value/all-newline bytes at unaligned offsets: every word equal to \(report.reference)"
    }

    /// Every slot published at once, many rounds over the same buffers whose
    /// content and lengths change each round (stale reads of data, payload or
    /// results would show).
    func fullRingCheck() throws(CheckFailure) -> String {
        let rounds = options.quick ? 6 : 24
        let stride = (dataBytes / geometry.slotCount) / 64 * 64
        let maxSize = min(stride, 64 << 10)
        var total = 0
        for round in 0..<rounds {
            var slots: [TestSlot] = []
            for slot in 0..<geometry.slotCount {
                let size: Int
                switch round % 3 {
                case 0: size = 4096
                case 1: size = rng.below(maxSize + 1)
                default: size = maxSize - rng.below(64)
                }
                let pattern: TestPattern = round % 4 == 3 ? .constant(UInt8(truncatingIfNeeded: round &* 37 &+ slot)) : .random
                slots.append(countSlot(slot, offset: slot * stride, data: pattern.bytes(count: size, rng: &rng), label: "round \(round), \(pattern)"))
                total += size
            }
            _ = try runAndCompare(slots)
        }
        return "\(rounds) rounds × \(geometry.slotCount) slots published at once over the same buffers with new content and lengths each round (\(formatSize(total))): every word equal to \(report.reference)"
    }

    /// Bad slots fault with the right code while good slots in the same round finish right.
    func badSlotsCheck() throws(CheckFailure) -> String {
        let d = UInt64(dataBytes)
        let t = UInt64(geometry.resultWordsTotal)
        let r = geometry.resultWordsPerSlot
        var slots: [TestSlot] = []
        var cursor = 0
        func next() -> Int { slots.count }
        func good(_ label: String) {
            let size = 1 + rng.below(20_000)
            let offset = cursor + rng.below(16)
            cursor = offset + size
            slots.append(countSlot(next(), offset: offset, data: TestPattern.text.bytes(count: size, rng: &rng), label: label))
        }
        func bad(_ label: String, _ code: FaultCode, opcode: Opcode = .count, offset: UInt64 = 0, length: UInt32 = 16,
                 arguments: (UInt32, UInt32) = (0, 0), resultOffset: UInt32? = nil, capacity: UInt32? = nil,
                 region: ChunkRegion = .host) {
            let slot = next()
            slots.append(TestSlot(
                slot: slot,
                payload: SlotPayload(
                    opcode: opcode, bufferOffset: offset, length: length, chunkIndex: UInt32(slot), arguments: arguments,
                    resultOffset: resultOffset ?? UInt32(geometry.resultOffset(ofSlot: slot)),
                    resultCapacity: capacity ?? UInt32(r), region: region),
                data: [], expect: .fault(code), label: label))
        }
        good("good before")
        bad("opcode 0", .unknownOpcode, opcode: Opcode(rawValue: 0))
        bad("opcode 99", .unknownOpcode, opcode: Opcode(rawValue: 99))
        bad("opcode 0xFFFFFFFF", .unknownOpcode, opcode: Opcode(rawValue: .max))
        // The last opcode of the user range: never installed (operations take the first ones).
        bad("user opcode 0x1FFFF (not installed)", .operationNotInstalled, opcode: .user(Opcode.userRange.count - 1))
        bad("opcode 0x20000, past the user range", .unknownOpcode, opcode: Opcode(rawValue: 0x2_0000))
        good("good between")
        var unsupported: [Opcode] = []
        for op in Opcode.defined where !subject.supportedOpcodes.contains(op) {
            unsupported.append(op)
            bad("opcode \(op.name) (not supported here)", .unsupportedOpcode, opcode: op)
        }
        // Neither backend here has a device ingest region (only --ingest gds makes one).
        bad("chunk in the device ingest region, which this backend lacks", .regionUnavailable, region: .device)
        bad("device-region chunk past any region (the region is checked first)", .regionUnavailable, offset: d + 1, region: .device)
        bad("buffer end 1 byte past the region", .bufferOutOfBounds, offset: d - 10, length: 11)
        bad("buffer offset past the region", .bufferOutOfBounds, offset: d + 1, length: 0)
        bad("buffer offset + length overflows 64 bits", .bufferOutOfBounds, offset: UInt64.max - 4, length: 10)
        bad("buffer offset high word set", .bufferOutOfBounds, offset: 1 << 32, length: 1)
        bad("length 0xFFFFFFFF", .bufferOutOfBounds, offset: 0, length: .max)
        good("good between")
        bad("result area past the region", .resultOutOfBounds, resultOffset: UInt32(t) - 100, capacity: UInt32(CountOp.resultWords))
        bad("result offset + capacity overflows 32 bits", .resultOutOfBounds, resultOffset: .max, capacity: .max)
        bad("result capacity 257", .resultOverflow, capacity: UInt32(CountOp.resultWords - 1))
        bad("result capacity 0", .resultOverflow, capacity: 0)
        bad("buffer out of bounds and capacity 0 (buffer is checked first)", .bufferOutOfBounds, offset: d, length: 1, capacity: 0)
        bad("unknown opcode and buffer out of bounds (opcode is checked first)", .unknownOpcode,
            opcode: Opcode(rawValue: 1234), offset: d + 100, length: 5)
        if subject.supportedOpcodes.contains(.crc32c) {
            bad("crc32c, result capacity 1", .resultOverflow, opcode: .crc32c, capacity: 1)
            bad("crc32c, buffer out of bounds", .bufferOutOfBounds, opcode: .crc32c, offset: d - 3, length: 4)
        }
        if subject.supportedOpcodes.contains(.scan), installedScan == nil {
            bad("scan with no scan table installed", .badArguments, opcode: .scan, arguments: (16, 0))
            bad("scan with no table and capacity 0 (the table is checked first)", .badArguments, opcode: .scan, capacity: 0)
        }
        // Good edge cases: a chunk ending exactly at the end of the data
        // region, an empty chunk there, and a result area ending exactly at
        // the end of the result region (the last slot's, which this round leaves unused).
        let tail = TestPattern.random.bytes(count: 7, rng: &rng)
        slots.append(countSlot(next(), offset: dataBytes - 7, data: tail, label: "7 bytes ending at the end of the data region"))
        slots.append(countSlot(next(), offset: dataBytes, data: [], label: "0 bytes at the end of the data region"))
        var edge = countSlot(next(), offset: cursor + 3, data: TestPattern.random.bytes(count: 999, rng: &rng), label: "result area ending at the end of the result region")
        edge.payload.resultOffset = UInt32(t) - UInt32(CountOp.resultWords)
        edge.payload.resultCapacity = UInt32(CountOp.resultWords)
        slots.append(edge)
        cursor += 3 + 999
        good("good after")
        guard slots.count < geometry.slotCount else {
            throw CheckFailure(message: "the bad-slot round needs \(slots.count + 1) slots; the ring has \(geometry.slotCount)")
        }
        let (observed, _) = try runAndCompare(slots)
        let faults = observed.filter { $0.status == .faulted }.count
        return "\(faults) bad slots (unknown opcodes 0/99/0xFFFFFFFF, crc32c and scan arguments, unsupported \(unsupported.isEmpty ? "none here" : unsupported.map(\.name).joined(separator: "/")), buffer out of bounds incl. 64-bit overflow, result out of bounds incl. overflow, result overflow, check order) faulted with the right code; \(slots.count - faults) good slots in the same round right; lastFault names a faulted slot; no result word written outside a DONE slot"
    }

    /// Cancel requested right after each publish: CANCELLED (nothing written)
    /// or, when a worker claimed first, DONE and right; counters agree.
    func cancelCheck() throws(CheckFailure) -> String {
        var cancelled = 0, late = 0, total = 0
        for round in 0..<(options.quick ? 2 : 4) {
            var slots: [TestSlot] = []
            let stride = (dataBytes / geometry.slotCount) / 64 * 64
            for slot in 0..<geometry.slotCount {
                let size = rng.below(min(stride, 8192))
                var s = countSlot(slot, offset: slot * stride, data: TestPattern.random.bytes(count: size, rng: &rng), label: "round \(round), cancel requested", expect: .cancelOrCount)
                if slot % 4 == 3 { s.expect = .count; s.label = "round \(round), not cancelled" }
                slots.append(s)
            }
            let (observed, _) = try runAndCompare(slots)
            cancelled += observed.filter { $0.status == .cancelled }.count
            late += observed.indices.filter { slots[$0].expect == .cancelOrCount && observed[$0].status == .done }.count
            total += slots.filter { $0.expect == .cancelOrCount }.count
        }
        guard cancelled > 0 else {
            throw CheckFailure(message: "none of \(total) cancel requests took effect (every slot was claimed first)")
        }
        return "\(cancelled) of \(total) cancel requests took effect (CANCELLED, nothing written, counted); \(late) came after the claim and finished DONE with the right words"
    }

    /// Nops with arguments that would fault any other opcode, some with a
    /// cancel request, between count slots: every nop DONE with completion 0,
    /// no result word written, no bytes counted; the count slots right.
    func nopCheck() throws(CheckFailure) -> String {
        var nops = 0
        for round in 0..<(options.quick ? 2 : 6) {
            var slots: [TestSlot] = []
            let stride = (dataBytes / geometry.slotCount) / 64 * 64
            for slot in 0..<geometry.slotCount {
                if slot % 3 == 2 {
                    let size = rng.below(min(stride, 4096))
                    slots.append(countSlot(slot, offset: slot * stride, data: TestPattern.random.bytes(count: size, rng: &rng), label: "round \(round), count beside nops"))
                    continue
                }
                let own = UInt32(geometry.resultOffset(ofSlot: slot))
                let (payload, what): (SlotPayload, String) = switch rng.below(5) {
                case 0: (SlotPayload(opcode: .nop, bufferOffset: 0, length: 0, resultOffset: own), "nop")
                case 1: (SlotPayload(opcode: .nop, bufferOffset: UInt64(dataBytes) + 100, length: 5, resultOffset: own, resultCapacity: 258), "nop, buffer out of bounds")
                case 2: (SlotPayload(opcode: .nop, bufferOffset: 0, length: 64, resultOffset: .max, resultCapacity: .max), "nop, result out of bounds")
                case 3: (SlotPayload(opcode: .nop, tenant: 99, bufferOffset: 0, length: 64, resultOffset: own, resultCapacity: 1, region: .device), "nop, device region, capacity 1")
                default: (SlotPayload(opcode: .nop, bufferOffset: 0, length: 16, resultOffset: own, resultCapacity: 258), "nop, cancel requested")
                }
                var s = TestSlot(slot: slot, payload: payload, data: [], expect: .count, label: "round \(round), \(what)")
                s.cancel = what.hasSuffix("cancel requested")
                slots.append(s)
                nops += 1
            }
            _ = try runAndCompare(slots)
        }
        return "\(nops) nops (out-of-bounds buffers and results, a device-region flag, tenant 99, cancel requests) DONE with completion 0, no result word written, no bytes counted; the count slots between them right"
    }

    /// Files read through ScriptedReadStream in a chosen completion order,
    /// through the pump and scanner into the backend; per-file counts equal
    /// CountOp over the whole file.
    func pumpCheck(order: ScriptedReadStream.Order, stepsPerReap: Int) throws(CheckFailure) -> String {
        let streamChunk = 64 << 10
        let scratch: ScratchFiles
        do { scratch = try ScratchFiles(under: "/tmp") } catch { throw CheckFailure(error) }
        var paths: [String] = []
        defer {
            for path in paths { unlink(path) }
            scratch.remove()
        }
        let sizes = [0, 1, 4095, streamChunk - 1, streamChunk, streamChunk + 1, 5 * streamChunk + 17,
                     rng.below(3 * streamChunk), 40 * streamChunk + rng.below(streamChunk)]
        var expected: [CountResult] = []
        for (i, size) in sizes.enumerated() {
            let bytes = (i % 2 == 0 ? TestPattern.text : TestPattern.random).bytes(count: size, rng: &rng)
            do { paths.append(try scratch.write("file\(i)", bytes)) } catch { throw CheckFailure(error) }
            var words = [UInt32](repeating: 0, count: CountOp.resultWords)
            // CountOp over the whole file, in pieces below 4 GiB (none here is).
            bytes.withUnsafeBytes { raw in words.withUnsafeMutableBufferPointer { CountOp.run(raw, into: $0) } }
            do { expected.append(try CountResult(words: words)) } catch { throw CheckFailure(message: error.message) }
        }
        let chunks = try countThroughPump(paths, sizes: sizes, expected: expected, streamChunk: streamChunk, order: order, stepsPerReap: stepsPerReap)
        let orderText: String
        switch order {
        case .reverse: orderText = "reverse submission order"
        case .seeded(let s): orderText = "random order (seed \(s)), \(stepsPerReap) read steps per reap"
        default: orderText = "scripted order"
        }
        return "\(paths.count) files (0 B to \(formatSize(sizes.max() ?? 0)), \(chunks) chunks of \(formatSize(streamChunk))) read in \(orderText) through the pump and scanner: every file's counts equal CountOp"
    }

    /// Counts `paths` through a `ChunkScheduler` over a stream that completes
    /// reads in `order`, and checks each file's counts against `expected`;
    /// returns the chunks read.
    private func countThroughPump(
        _ paths: [String], sizes: [Int], expected: [CountResult], streamChunk: Int, order: ScriptedReadStream.Order,
        stepsPerReap: Int
    ) throws(CheckFailure) -> Int {
        let chunkCount = min(geometry.slotCount, dataBytes / streamChunk)
        do {
            let region = UnsafeMutableRawBufferPointer(rebasing: subject.dataRegion[0..<(chunkCount * streamChunk)])
            let stream = try ScriptedReadStream(
                region: region, chunkBytes: streamChunk, chunkCount: chunkCount, order: order, stepsPerReap: stepsPerReap)
            let scanner = try ChunkScheduler(backend: subject, stream: stream)
            var got: [FileCount] = []
            let summary = try CountJob.run(scanner: scanner, paths: paths.map { RawPath($0) }, onFile: { got.append($0) })
            guard got.count == paths.count else {
                throw CheckFailure(message: "\(got.count) of \(paths.count) files reported")
            }
            for (i, file) in got.enumerated() {
                guard file.errors.isEmpty else {
                    throw CheckFailure(message: "\(file.path) (\(sizes[i]) bytes): \(file.errors.map(\.message).joined(separator: "; "))")
                }
                guard file.result == expected[i] else {
                    let w = (0..<256).first { file.result.histogram[$0] != expected[i].histogram[$0] }
                    throw CheckFailure(message: "\(file.path) (\(sizes[i]) bytes): counted \(file.result.newlines) newlines, \(file.result.bytes) bytes\(w.map { ", bin 0x\(hex(UInt64($0), digits: 2)) \(file.result.histogram[$0])" } ?? ""); CountOp says \(expected[i].newlines), \(expected[i].bytes)\(w.map { ", \(expected[i].histogram[$0])" } ?? "")")
                }
            }
            return summary.chunks
        } catch {
            throw CheckFailure(error)
        }
    }

}
