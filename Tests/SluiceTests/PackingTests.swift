#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceCPU
import SluiceIngest
import SluiceOps
import Testing

@testable import Sluice

/// Scans `paths` through a CPU engine with packing on or off; count mode
/// keeps `records` too (packed chunks need them), as the command does.
func packScan(
    _ paths: [String], _ literals: [[UInt8]], packing: Bool, caseInsensitive: Bool = false, chunk: Int = 8192,
    slots: Int = 4, records: Int = 64, mode: ScanMode = .matches
) throws -> [FileMatches] {
    let patterns = try PatternSet(literals: literals, caseInsensitive: caseInsensitive)
    let engine = try Engine(
        EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: chunk, slots: slots, workers: 2),
        resultWordsPerSlot: ScanJob.resultWords(records: records))
    defer { try? engine.close() }
    var out: [FileMatches] = []
    _ = try ScanJob.run(
        scanner: try engine.makeScanner(), patterns: patterns, table: ScanTable(patterns), paths: paths.raw, mode: mode,
        packing: packing, onFile: { out.append($0) })
    return out
}

/// Files that packed back to back put literals across every boundary: a
/// file ends with the head of "NEEDLE" and the next starts with its tail,
/// tiny files spell it across three files, and whole literals sit at the
/// first and last bytes. Sizes include 0, 1, the packing threshold and its
/// neighbours, and files of one and several chunks.
func writePackingTree(_ dir: ScratchDirectory, seed: UInt64, files: Int, chunk: Int) -> (paths: [String], texts: [[UInt8]]) {
    var rng = SeededRandom(state: seed)
    let threshold = chunk / 4
    let special = [0, 1, 2, 3, threshold - 1, threshold, threshold + 1, chunk - 1, chunk, 3 * chunk + 7]
    let alphabet = Array("abcdeNEDL \n".utf8)
    var paths: [String] = []
    var texts: [[UInt8]] = []
    for i in 0..<files {
        let size: Int
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: size = special.randomElement(using: &rng)!
        case 1...3: size = Int.random(in: 0...4, using: &rng)
        default: size = Int.random(in: 5...600, using: &rng)
        }
        var text = (0..<size).map { _ in alphabet.randomElement(using: &rng)! }
        if size >= 6 {
            switch i % 4 {
            case 0: text.replaceSubrange((size - 3)..<size, with: Array("NEE".utf8))  // head at the end
            case 1: text.replaceSubrange(0..<3, with: Array("DLE".utf8))  // tail at the start
            case 2: text.replaceSubrange(0..<6, with: Array("NEEDLE".utf8))
            default: text.replaceSubrange((size - 6)..<size, with: Array("needle".utf8))
            }
        } else if size == 2 {
            text = Array(["NE", "ED", "LE"][i % 3].utf8)
        }
        paths.append(dir.write("d\(i / 100)/f\(i)", text))
        texts.append(text)
    }
    return (paths, texts)
}

@Suite struct PackingTests {
    static let literals: [[UInt8]] = [Array("NEEDLE".utf8), Array("EDL".utf8), Array("a".utf8), Array("E\nN".utf8), [0x4C]]

    /// Packed and unpacked scans against the oracle, file by file, in every mode.
    @Test(arguments: [(UInt64(1), false), (2, true), (3, false), (4, true)])
    func packedScansEqualTheOracleAndTheUnpackedPath(seed: UInt64, caseInsensitive: Bool) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 8192
        let (paths, texts) = writePackingTree(dir, seed: seed, files: 400, chunk: chunk)
        let literals = PackingTests.literals
        for mode in [ScanMode.matches, .count] {
            let packed = try packScan(paths, literals, packing: true, caseInsensitive: caseInsensitive, mode: mode)
            let unpacked = try packScan(paths, literals, packing: false, caseInsensitive: caseInsensitive, mode: mode)
            #expect(packed.map(\.path) == paths)
            #expect(unpacked.map(\.path) == paths)
            for (i, text) in texts.enumerated() {
                let expected = naiveMatches(text, literals, caseInsensitive: caseInsensitive)
                #expect(packed[i].errors.isEmpty && unpacked[i].errors.isEmpty, "\(paths[i])")
                #expect(packed[i].count == UInt64(expected.count), "\(paths[i]) (\(text.count) bytes)")
                #expect(packed[i].count == unpacked[i].count)
                if mode == .matches {
                    expectSameMatches(packed[i].matches, expected, "packed \(paths[i])")
                    #expect(packed[i].matches == unpacked[i].matches)
                } else {
                    #expect(packed[i].matches.isEmpty)
                }
            }
        }
    }

    /// Records overflow every packed chunk (a literal at every byte): each
    /// file is rescanned alone on the host, nothing lost, nothing spanning.
    @Test func overflowingPackedChunksAreRescannedPerFile() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var paths: [String] = []
        var texts: [[UInt8]] = []
        for i in 0..<120 {
            let text = [UInt8](repeating: 97, count: i % 7 == 0 ? 0 : 1 + (i * 37) % 900)
            paths.append(dir.write("a\(i)", text))
            texts.append(text)
        }
        let literals = [Array("a".utf8), Array("aa".utf8), Array("aaa".utf8)]
        for mode in [ScanMode.matches, .count] {
            for records in [0, 3] {
                let got = try packScan(paths, literals, packing: true, records: records, mode: mode)
                for (i, text) in texts.enumerated() {
                    let expected = naiveMatches(text, literals)
                    #expect(got[i].errors.isEmpty)
                    #expect(got[i].count == UInt64(expected.count), "\(paths[i]) records \(records)")
                    if mode == .matches { expectSameMatches(got[i].matches, expected, paths[i]) }
                }
            }
        }
    }

    /// Thousands of files of 0 to 3 bytes: thousands per chunk, literals
    /// spelled across several files, none of them reported.
    @Test func thousandsOfTinyFiles() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 5)
        let alphabet = Array("NEDL".utf8)
        var paths: [String] = []
        var texts: [[UInt8]] = []
        for i in 0..<5000 {
            let text = (0..<Int.random(in: 0...3, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            paths.append(dir.write("t\(i / 250)/\(i)", text))
            texts.append(text)
        }
        let literals = [Array("NEEDLE".utf8), Array("ED".utf8), Array("L".utf8), Array("DLN".utf8)]
        let got = try packScan(paths, literals, packing: true, records: 4096)
        #expect(got.map(\.path) == paths)
        var total: UInt64 = 0
        for (i, text) in texts.enumerated() {
            let expected = naiveMatches(text, literals)
            #expect(got[i].errors.isEmpty)
            expectSameMatches(got[i].matches, expected, paths[i])
            total += got[i].count
        }
        #expect(total == UInt64(texts.reduce(0) { $0 + naiveMatches($1, literals).count }))
    }

    /// The scanner's side alone: every small file lands whole in exactly one
    /// packed chunk, back to back from offset 0, in input order; larger
    /// files take ordinary chunks (chunks finish in any order, so input
    /// order is checked within each chunk); `maxFiles: 1` gives one file per chunk.
    @Test(arguments: [4096, 1])
    func packsHoldWholeFilesBackToBackInInputOrder(maxFiles: Int) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 8192
        let (paths, texts) = writePackingTree(dir, seed: 9, files: 300, chunk: chunk)
        let engine = try Engine(
            EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: chunk, slots: 4, workers: 2),
            resultWordsPerSlot: CountOp.resultWords)
        defer { try? engine.close() }
        var seen = [Int](repeating: 0, count: paths.count)
        var chunkFiles: Set<Int> = []
        var outcomes: [Int: ChunkScheduler.FileOutcome] = [:]
        var layoutErrors: [String] = []
        let summary = try engine.makeScanner().run(
            paths: paths.raw, opcode: .count, packing: ChunkScheduler.Packing(maxFileBytes: chunk / 4, maxFiles: maxFiles),
            onChunk: { c in
                guard !c.packed.isEmpty else {
                    chunkFiles.insert(c.fileIndex)
                    return
                }
                if c.packed.count > maxFiles { layoutErrors.append("\(c.packed.count) files in a chunk") }
                var end = 0
                var lastPacked = -1
                let chunkBytes = (try? c.bytes).map { Array($0) } ?? []
                for f in c.packed {
                    seen[f.fileIndex] += 1
                    if f.offset != end { layoutErrors.append("\(f.path) at \(f.offset), expected \(end)") }
                    if f.fileIndex <= lastPacked { layoutErrors.append("\(f.path) out of input order") }
                    lastPacked = f.fileIndex
                    end = f.offset + f.length
                    let bytes = Array(chunkBytes[min(f.offset, chunkBytes.count)..<min(end, chunkBytes.count)])
                    if bytes != texts[f.fileIndex] || f.path != paths[f.fileIndex] { layoutErrors.append("\(f.path) bytes differ") }
                }
                if end != chunkBytes.count { layoutErrors.append("chunk of \(chunkBytes.count) bytes, files end at \(end)") }
            },
            onFile: { outcomes[$0.fileIndex] = $0 })
        #expect(layoutErrors.isEmpty, "\(layoutErrors.prefix(5))")
        #expect(summary.files == paths.count && summary.filesFailed == 0)
        #expect(outcomes.count == paths.count && outcomes.values.allSatisfy { $0.errors.isEmpty })
        for (i, text) in texts.enumerated() {
            let small = !text.isEmpty && text.count <= chunk / 4
            #expect(seen[i] == (small ? 1 : 0), "\(paths[i]) (\(text.count) bytes) packed \(seen[i]) times")
            #expect(chunkFiles.contains(i) == (text.count > chunk / 4), "\(paths[i])")
            #expect(outcomes[i]?.size == UInt64(text.count))
        }
    }

    /// A missing file and a directory among packed files: the same errors as
    /// without packing, and every other file scanned.
    @Test func errorsAmongPackedFilesAreReportedPerFile() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var paths: [String] = []
        for i in 0..<30 { paths.append(dir.write("f\(i)", Array("xNEEDLEx\(i)".utf8))) }
        mkdir(dir.file("sub"), 0o755)
        paths.insert(dir.file("missing"), at: 7)
        paths.insert(dir.file("sub"), at: 15)
        for packing in [true, false] {
            let got = try packScan(paths, [Array("NEEDLE".utf8)], packing: packing)
            #expect(got.map(\.path) == paths)
            for (i, file) in got.enumerated() {
                switch i {
                case 7:
                    guard case .io(let f)? = file.errors.first else {
                        Issue.record("missing file, packing \(packing): \(file.errors)")
                        continue
                    }
                    #expect(f.errno == ENOENT && f.operation == "open")
                case 15:
                    guard case .io(let f)? = file.errors.first else {
                        Issue.record("directory, packing \(packing): \(file.errors)")
                        continue
                    }
                    #expect(f.errno == EISDIR && f.operation == "read")
                default:
                    #expect(file.errors.isEmpty)
                    #expect(file.matches == [ScanMatch(offset: 1, pattern: 0)])
                }
            }
        }
    }

    /// One pack load, file by file: a file that grows or shrinks between its
    /// open and its read is reported as changed and leaves no gap; a missing
    /// file, an empty one, one over the size limit and one that is no longer
    /// the file first packed are handed back as such; the files after a full
    /// buffer come back unopened, in order.
    @Test func aPackLoadSaysWhatBecameOfEveryFile() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let grows = dir.write("grows", Array("NEEDLE grows".utf8))
        let missing = dir.file("missing")
        let shrinks = dir.write("shrinks", Array("NEEDLE shrinks".utf8))
        let empty = dir.write("empty", [])
        let big = dir.write("big", [UInt8](repeating: 0x61, count: 2049))
        let stays = dir.write("stays", Array("stays NEEDLE".utf8))
        let replaced = dir.write("replaced", Array("was longer once".utf8))
        let fill = (0..<3).map { dir.write("fill\($0)", [UInt8](repeating: UInt8(0x30 + $0), count: 2000)) }
        let loader = try SmallFileLoader(threads: 2, beforeRead: { path in
            if path == grows {
                let fd = open(path.description, O_WRONLY | O_APPEND)
                _ = write(fd, "more", 4)
                close(fd)
            } else if path == shrinks {
                truncate(path.description, 3)
            }
        })
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 4096)
        defer { region.deallocate() }
        let feed = SmallFileFeed(loader: loader, region: region, chunkBytes: 8192, units: 1)
        let oldStamp = FileStamp(size: 99, modifiedSeconds: 0, modifiedNanoseconds: 0)
        let paths = [grows, missing, shrinks, empty, big, stays, replaced] + fill
        var files = paths.enumerated().map { SmallFileLoader.Candidate(index: $0.offset, path: $0.element.raw) }
        files[6].expected = oldStamp
        files[6].attempt = 1
        feed.load(unit: 0, job: 0, files: files, maxFileBytes: 2048)
        var events: [SmallFileFeed.Event] = []
        while !events.contains(where: { if case .packRead = $0 { return true } else { return false } }) {
            events += feed.poll(waitingUntil: .now + .milliseconds(100))
        }
        var failed: [Int: PipelineError] = [:]
        var emptyFiles: [Int] = [], large: [Int] = [], noRoom: [Int] = []
        for event in events {
            switch event {
            case .fileFailed(_, let file, let error): failed[file.index] = error
            case .fileEmpty(_, let file): emptyFiles.append(file.index)
            case .tooLarge(_, let files): large += files.map(\.index)
            case .noRoom(_, let files): noRoom += files.map(\.index)
            case .packRead(let unit): #expect(unit == 0)
            }
        }
        #expect(Set(failed.keys) == [0, 1, 2, 6])
        if case .fileChanged(let p, let d)? = failed[0] {
            #expect(p == grows && d.contains("size went from 12 to 16"))
        } else { Issue.record("grows: \(String(describing: failed[0]))") }
        if case .io(let f)? = failed[1] {
            #expect(f.path == missing && f.errno == ENOENT && f.operation == "open")
        } else { Issue.record("missing: \(String(describing: failed[1]))") }
        if case .fileChanged(let p, let d)? = failed[2] {
            #expect(p == shrinks && d.contains("read 3 of 14 bytes"))
        } else { Issue.record("shrinks: \(String(describing: failed[2]))") }
        if case .fileChanged(let p, let d)? = failed[6] {
            #expect(p == replaced && d.contains("size went from 99 to 15"))
        } else { Issue.record("replaced: \(String(describing: failed[6]))") }
        #expect(emptyFiles == [3])
        #expect(large == [4])
        // "stays" (12 bytes) and two fills (4000) leave 4180 bytes: the third fill fits, nothing is left over.
        #expect(noRoom == [])
        let intact = feed.packs[0]?.intact ?? []
        #expect(intact.map(\.path) == ([stays] + fill).raw)
        #expect(intact.map(\.offset) == [0, 12, 2012, 4012])
        for file in intact {
            #expect(Array(region[file.offset..<(file.offset + file.length)]) == readBytes(file.path.description))
        }
        _ = feed.release(unit: 0)

        // A full buffer: what does not fit comes back, in order, and is packed next time.
        let more = (0..<6).map { dir.write("more\($0)", [UInt8](repeating: 0x41, count: 1900)) }
        feed.load(unit: 0, job: 0, files: more.enumerated().map { .init(index: $0.offset, path: $0.element.raw) }, maxFileBytes: 2048)
        events = []
        while !events.contains(where: { if case .packRead = $0 { return true } else { return false } }) {
            events += feed.poll(waitingUntil: .now + .milliseconds(100))
        }
        var back: [SmallFileLoader.Candidate] = []
        for case .noRoom(_, let files) in events { back += files }
        #expect(back.map(\.index) == [4, 5])
        #expect(feed.packs[0]?.intact.map(\.length) == [1900, 1900, 1900, 1900])
        // 8 files of 13,612 bytes placed so far: about 4.8 fit a buffer.
        #expect(feed.filesWanted(maxFiles: 4096) == 8192 * 8 / (12 + 3 * 2000 + 4 * 1900) + 2)
        feed.drain()

        // Tiny files: a load takes at most `filesPerLoad` of them (and the job's own limit).
        let tinyFeed = SmallFileFeed(loader: loader, region: region, chunkBytes: 8192, units: 1)
        #expect(tinyFeed.filesWanted(maxFiles: 4096) == 64)   // nothing placed yet
        let tiny = (0..<40).map { dir.write("tiny\($0)", [UInt8(0x61 + $0 % 26)]) }
        tinyFeed.load(unit: 0, job: 0, files: tiny.enumerated().map { .init(index: $0.offset, path: $0.element.raw) }, maxFileBytes: 2048)
        events = []
        while !events.contains(where: { if case .packRead = $0 { return true } else { return false } }) {
            events += tinyFeed.poll(waitingUntil: .now + .milliseconds(100))
        }
        #expect(tinyFeed.packs[0]?.intact.count == 40)
        #expect(tinyFeed.filesWanted(maxFiles: 4096) == SmallFileFeed.filesPerLoad)
        #expect(tinyFeed.filesWanted(maxFiles: 100) == 100)
        tinyFeed.drain()
    }
}

/// Packing (on by default) changes nothing in what `sluice scan` prints.
@Suite struct PackFlagTests {
    @Test func packedAndUnpackedCommandsPrintTheSame() {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 91)
        for i in 0..<120 {
            var text = textLikeBytes(Int(rng.next() % 5000), &rng)
            // "needle" split over the end of one file and the start of the next must never match.
            if i % 7 == 0 { text += Array("nee".utf8) }
            if i % 7 == 1 { text = Array("dle".utf8) + text }
            if i % 5 == 0, text.count > 20 { text.replaceSubrange(5..<11, with: Array("needle".utf8)) }
            dir.write("t\(i % 4)/f\(i)", text)
        }
        for mode in [[], ["--count"], ["--json"], ["-l"], ["-i"]] {
            let base = [sluiceExecutable, "scan", "--backend", "cpu", "--quiet", "-e", "needle", "-e", "e"] + mode
            let plain = run(base + ["--no-pack", dir.path])
            let packed = run(base + [dir.path])
            #expect(plain.status == packed.status && plain.status == 0, "\(mode): \(packed.stderr)")
            #expect(plain.stdout == packed.stdout, "\(mode)")
            #expect(!plain.stdout.isEmpty)
        }
    }
}
