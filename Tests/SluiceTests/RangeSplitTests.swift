#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceOps
import Testing

@testable import Sluice

/// Large files split into byte ranges that several (simulated CPU) devices
/// take: the output is that of one device, and of the independent oracles.
@Suite(.serialized) struct RangeSplitTests {
    /// Small knobs so that a 200 KB file has ten ranges of several chunks.
    static let range = 20 * 1024
    static let rangeOption = ["--range-size", "20K", "--chunk-size", "16K"]

    // MARK: Planning

    @Test func rangesCoverTheFileExactlyOnceOnPageBoundaries() {
        #expect(FileRange.split(size: 0, rangeBytes: 4096).isEmpty)
        #expect(FileRange.split(size: 1 << 20, rangeBytes: 0).isEmpty)
        // Not larger than one range: the file runs whole.
        #expect(FileRange.split(size: 8192, rangeBytes: 8192).isEmpty)
        #expect(FileRange.split(size: 8192, rangeBytes: 5000).isEmpty)  // 5000 rounds up to 8192
        for (size, bytes) in [(8193, 8192), (20 * 4096, 4096), (1_000_001, 65536), (3 * 4096 + 1, 4097)] as [(UInt64, UInt64)] {
            let r = FileRange.split(size: size, rangeBytes: bytes, modifiedSeconds: 7, modifiedNanoseconds: 9)
            let step = (bytes + 4095) / 4096 * 4096
            #expect(r.count == Int((size + step - 1) / step))
            #expect(r.first?.start == 0 && r.last?.end == size)
            for (i, x) in r.enumerated() {
                #expect(x.index == i && x.count == r.count && x.plannedSize == size)
                #expect(x.plannedModifiedSeconds == 7 && x.plannedModifiedNanoseconds == 9)
                #expect(x.start % 4096 == 0 && x.length > 0)
                #expect(i == r.count - 1 ? x.length <= step : x.length == step)
                if i > 0 { #expect(x.start == r[i - 1].end) }
            }
        }
    }

    @Test func rangeSizeParsingAndTheAutomaticChoice() throws {
        #expect(try RangeSize(parsing: "auto") == .auto)
        #expect(try RangeSize(parsing: "0") == .off)
        #expect(try RangeSize(parsing: "0M") == .off)
        #expect(try RangeSize(parsing: "64K") == .bytes(65536))
        #expect(try RangeSize(parsing: "1g") == .bytes(1 << 30))
        for bad in ["", "x", "-1", "12Q", "1KB"] {
            #expect(throws: PipelineError.self) { try RangeSize(parsing: bad) }
        }
        let gib: UInt64 = 1 << 30, mib: UInt64 = 1 << 20
        // One device never splits.
        #expect(RangeSize.auto.bytes(forFileOf: 100 * gib, devices: 1, ringBytes: 512 * mib) == 0)
        #expect(RangeSize.bytes(4096).bytes(forFileOf: 100 * gib, devices: 1, ringBytes: 0) == 0)
        #expect(RangeSize.off.bytes(forFileOf: 100 * gib, devices: 8, ringBytes: 512 * mib) == 0)
        #expect(RangeSize.bytes(12345).bytes(forFileOf: 1, devices: 2, ringBytes: 0) == 12345)
        // A quarter of a device's share, capped at four rings...
        #expect(RangeSize.auto.bytes(forFileOf: 16 * gib, devices: 2, ringBytes: 512 * mib) == 2 * gib)
        #expect(RangeSize.auto.bytes(forFileOf: 100 * gib, devices: 2, ringBytes: 512 * mib) == 2 * gib)
        #expect(RangeSize.auto.bytes(forFileOf: 4 * gib, devices: 2, ringBytes: 512 * mib) == 512 * mib)
        // ...never below 256 MiB.
        #expect(RangeSize.auto.bytes(forFileOf: 1 * gib, devices: 2, ringBytes: 512 * mib) == 256 * mib)
        #expect(RangeSize.auto.bytes(forFileOf: 100 * gib, devices: 2, ringBytes: 16 * mib) == 256 * mib)
    }

    @Test func aRangeIsABatchOfItsOwn() {
        let r = FileRange.split(size: 3 * 4096, rangeBytes: 4096)
        let items = [WorkItem(path: "a"), WorkItem(path: "b")] + r.map { WorkItem(path: "big", range: $0) }
            + (0..<5).map { WorkItem(path: "s\($0)".raw) }
        #expect(DevicePool.batches(items, batchFiles: 2) == [0..<2, 2..<3, 3..<4, 4..<5, 5..<7, 7..<9, 9..<10])
        #expect(DevicePool.batches(items, batchFiles: 64) == [0..<2, 2..<3, 3..<4, 4..<5, 5..<10])
        #expect(DevicePool.batches([], batchFiles: 3).isEmpty)
    }

    @Test func thePlanSplitsOnlyLargeRegularFilesAndOnlyWithSeveralDevices() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let big = dir.write("big", [UInt8](repeating: 7, count: 50_000))
        let small = dir.write("small", [UInt8](repeating: 7, count: 1000))
        let empty = dir.write("empty", [])
        let missing = dir.file("missing")
        let paths = [big, small, empty, missing, dir.path]
        let pool = try DevicePool(
            EngineConfiguration(backend: .cpu, chunkBytes: 4096, slots: 2), devices: .list([0, 1, 2]),
            resultWordsPerSlot: CountOp.resultWords)
        defer { try? pool.close() }
        pool.rangeSize = .bytes(16384)
        let items = pool.plan(paths.raw)
        #expect(items.map(\.path) == [big, big, big, big, small, empty, missing, dir.path])
        #expect(items.prefix(4).map { $0.range?.start } == [0, 16384, 32768, 49152])
        #expect(items[3].range?.end == 50_000)
        #expect(items.dropFirst(4).allSatisfy { $0.range == nil })
        pool.rangeSize = .off
        #expect(pool.plan(paths.raw).allSatisfy { $0.range == nil })

        let one = try DevicePool(
            EngineConfiguration(backend: .cpu, chunkBytes: 4096, slots: 2), devices: .list([0]),
            resultWordsPerSlot: CountOp.resultWords)
        defer { try? one.close() }
        one.rangeSize = .bytes(4096)
        #expect(one.plan(paths.raw).allSatisfy { $0.range == nil })
    }

    // MARK: Merging

    /// The ranges' checksums, each from the bitwise oracle, combined give the
    /// oracle's checksum of the whole file; counts and matches join in order.
    @Test func mergingJoinsRangesAsOneWholeFileRunWould() {
        var rng = SeededRandom(state: 5)
        let bytes = textLikeBytes(70_001, &rng)
        let ranges = FileRange.split(size: UInt64(bytes.count), rangeBytes: 12288)
        #expect(ranges.count == 6)
        let parts = ranges.map { r in
            FileHash(path: "p", crc32c: oracleCRC32C(Array(bytes[Int(r.start)..<Int(r.end)])), bytes: r.length, errors: [])
        }
        let whole = FileHash.merging(parts)
        #expect(whole.crc32c == oracleCRC32C(bytes) && whole.bytes == 70_001 && whole.errors.isEmpty)
        #expect(FileHash.merging([parts[0]]).crc32c == parts[0].crc32c)

        let changed = PipelineError.fileChanged(path: "p", detail: "size went from 1 to 2 bytes")
        let counts = ranges.map { r in
            FileCount(path: "p", result: naiveCountResult(bytes[Int(r.start)..<Int(r.end)]), errors: r.index >= 4 ? [changed] : [])
        }
        let total = FileCount.merging(counts)
        #expect(total.result == naiveCountResult(bytes[...]))
        #expect(total.errors == [changed])  // once, not once per range

        let m = FileMatches.merging([
            FileMatches(path: "p", matches: [ScanMatch(offset: 3, pattern: 0)], count: 1, errors: []),
            FileMatches(path: "p", matches: [], count: 0, errors: []),
            FileMatches(path: "p", matches: [ScanMatch(offset: 9000, pattern: 1), ScanMatch(offset: 9000, pattern: 2)], count: 2, errors: []),
        ])
        #expect(m.matches.map(\.offset) == [3, 9000, 9000] && m.count == 3)
    }

    // MARK: Whole runs

    /// Text with literals planted across every range boundary (each at a
    /// different distance before it, the boundary itself included) and
    /// across chunk boundaries inside ranges, plus a run of one letter so
    /// overlapping matches cross a boundary.
    static func plantedFile(size: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(state: seed)
        var text = textLikeBytes(size, &rng).map { $0 == UInt8(ascii: "Z") ? UInt8(ascii: "z") : $0 }
        let needle = Array("NeedleX1".utf8)
        var boundary = range
        var k = 0
        while boundary + needle.count < size {
            let at = boundary - (k % needle.count)
            text.replaceSubrange(at..<(at + needle.count), with: needle)
            // A chunk boundary inside the range (chunks start every 12 KiB: 16 KiB less the 4 KiB overlap).
            let inner = boundary + 12 * 1024 - 1 - (k % 3)
            if inner + needle.count < size { text.replaceSubrange(inner..<(inner + needle.count), with: needle) }
            boundary += range
            k += 1
        }
        let run = 3 * range - 5
        if run + 10 < size { text.replaceSubrange(run..<(run + 10), with: [UInt8](repeating: UInt8(ascii: "Z"), count: 10)) }
        return text
    }

    @Test func scanCountAndHashMatchOneDeviceAndTheOracles() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var files: [(String, [UInt8])] = []
        let range = RangeSplitTests.range
        for (i, size) in [200_000, 2 * range + 1, range, range + 4096, 61_440].enumerated() {
            let bytes = RangeSplitTests.plantedFile(size: size, seed: UInt64(i + 1))
            files.append((dir.write("big\(i)", bytes), bytes))
        }
        files.append((dir.write("empty", []), []))
        files.append((dir.write("small", Array("a NeedleX1 and ZZZ\n".utf8)), Array("a NeedleX1 and ZZZ\n".utf8)))
        files.sort { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
        let literals = ["NeedleX1", "ZZ", "X1"].map { Array($0.utf8) }

        // The oracle's plain output, independent of any device run.
        var expected = ""
        var expectedCounts = ""
        for (path, bytes) in files {
            let ms = naiveMatches(bytes, literals)
            for m in ms { expected += "\(path):\(m.offset):\(String(decoding: literals[m.pattern], as: UTF8.self))\n" }
            if !ms.isEmpty { expectedCounts += "\(path):\(ms.count)\n" }
        }
        let base = [sluiceExecutable, "scan", "-e", "NeedleX1", "-e", "ZZ", "-e", "X1", "--backend", "cpu", "--quiet"]
            + RangeSplitTests.rangeOption
        let many = run(base + ["--devices", "0,1,2,3", dir.path])
        #expect(many.status == 0, "\(many.stderr)")
        #expect(many.stdout == expected)
        let counted = run(base + ["--devices", "0,1,2", "-c", dir.path])
        #expect(counted.stdout == expectedCounts)

        // Every mode, and a full result area (every chunk rescanned on the host), as one device prints it.
        for extra in [[], ["--json"], ["-c"], ["-l"], ["-i"], ["--records-per-slot", "1"], ["--ingest", "pread"]] {
            let one = run(base + extra + ["--devices", "0", dir.path])
            #expect(one.status == 0, "\(one.stderr)")
            for devices in ["0,1", "0,1,2,3"] {
                let r = run(base + extra + ["--devices", devices, dir.path])
                #expect(r.status == one.status && r.stderr == one.stderr, "\(extra) \(devices): \(r.stderr)")
                #expect(r.stdout == one.stdout, "scan \(extra) with --devices \(devices)")
            }
        }

        // count: wc is the oracle; hash: the bitwise CRC-32C.
        let paths = files.map(\.0)
        let wc = wcCounts(paths)
        let counts = run([sluiceExecutable, "count", "--backend", "cpu", "--quiet", "--devices", "0,1,2,3"]
            + RangeSplitTests.rangeOption + paths)
        #expect(counts.status == 0, "\(counts.stderr)")
        for line in counts.stdout.split(separator: "\n") where !line.hasSuffix(" total") {
            let parts = line.split(separator: " ")
            let path = String(parts[2])
            #expect(wc[path]?.lines == UInt64(parts[0]) && wc[path]?.bytes == UInt64(parts[1]), "count \(line)")
        }
        #expect(counts.stdout.split(separator: "\n").count == paths.count + 1)
        let oneCount = run([sluiceExecutable, "count", "--backend", "cpu", "--quiet", "--devices", "0"]
            + RangeSplitTests.rangeOption + paths)
        #expect(oneCount.stdout == counts.stdout)

        let hashes = run([sluiceExecutable, "hash", "--backend", "cpu", "--quiet", "--devices", "0,1,2,3"]
            + RangeSplitTests.rangeOption + paths)
        #expect(hashes.status == 0, "\(hashes.stderr)")
        #expect(hashes.stdout == files.map { hex8(oracleCRC32C($0.1)) + "  " + $0.0 + "\n" }.joined())
    }

    /// O_DIRECT reads of ranges: every range starts and, but for the file's
    /// last, ends on a 4096 boundary, so the reads stay aligned.
    @Test func rangesReadWithODirect() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let bytes = RangeSplitTests.plantedFile(size: 150_001, seed: 9)
        let path = dir.write("big", bytes)
        let base = [sluiceExecutable, "scan", "-e", "NeedleX1", "--backend", "cpu", "--quiet", "--direct"]
            + RangeSplitTests.rangeOption
        let one = run(base + ["--devices", "0", path])
        guard one.status == 0 else {
            // Some filesystems refuse O_DIRECT; the error says so, and there is nothing to compare.
            #expect(one.stderr.contains("O_DIRECT") || one.stderr.contains("direct"), "\(one.stderr)")
            return
        }
        let many = run(base + ["--devices", "0,1,2", path])
        #expect(many.status == 0, "\(many.stderr)")
        #expect(many.stdout == one.stdout)
        #expect(one.stdout.split(separator: "\n").count == naiveMatches(bytes, [Array("NeedleX1".utf8)]).count)
    }

    /// A file changed while its ranges run on several devices is reported as
    /// changed, once, whichever range noticed; the other files are not affected.
    @Test(arguments: ["append", "touch"])
    func aFileThatChangesDuringTheRunIsReported(how: String) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 77)
        let before = dir.write("a", textLikeBytes(5000, &rng))
        let big = dir.write("big", textLikeBytes(100_000, &rng))
        let after = dir.write("c", textLikeBytes(70_000, &rng))
        let pool = try DevicePool(
            EngineConfiguration(backend: .cpu, chunkBytes: 8192, slots: 4), devices: .list([0, 1]),
            resultWordsPerSlot: CountOp.resultWords)
        defer { try? pool.close() }
        pool.rangeSize = .bytes(16384)
        var outcomes: [FileCount] = []
        try pool.run(
            splitting: [before, big, after].raw,
            job: { engine, batch, report, progress throws(PipelineError) in
                // The third range of `big` changes the file before it runs.
                if batch.contains(where: { $0.path == big && $0.range?.index == 2 }) {
                    if how == "append" {
                        let fd = open(big, O_WRONLY | O_APPEND)
                        _ = write(fd, "more", 4)
                        close(fd)
                    } else {
                        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
                        _ = utimensat(AT_FDCWD, big, &times, 0)
                    }
                }
                _ = try CountJob.run(
                    scanner: try engine.scanner(), paths: batch.map(\.path), ranges: batch.map(\.range),
                    onFile: report, onProgress: progress)
            },
            onOutcome: { outcomes.append($0) })
        #expect(outcomes.map(\.path) == [before, big, after])
        #expect(outcomes[0].errors.isEmpty && outcomes[2].errors.isEmpty)
        #expect(outcomes[2].result.bytes == 70_000)
        let changes = outcomes[1].errors.filter {
            if case .fileChanged(let p, _) = $0 { return p == big }
            return false
        }
        #expect(!changes.isEmpty && changes.count == outcomes[1].errors.count, "\(outcomes[1].errors)")
        #expect(Set(changes).count == changes.count)
    }
}

/// Bytes, newlines and the byte histogram, one byte at a time.
func naiveCountResult(_ bytes: ArraySlice<UInt8>) -> CountResult {
    var histogram = [UInt64](repeating: 0, count: 256)
    for b in bytes { histogram[Int(b)] += 1 }
    return CountResult(bytes: UInt64(bytes.count), newlines: histogram[10], histogram: histogram)
}
