#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import Sluice

/// The walk fans out over a directory's subdirectories on threads; what it
/// returns must be what one thread returns, in the same order.
@Suite struct FileWalkerTests {
    @Test(arguments: [2, 3, 8])
    func threadsChangeNothingButTheSampledSizes(threads: Int) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: UInt64(threads))
        var expectedBytes = 0
        // Files beside directories at the top, names that sort around the
        // directories ("a", "a-b", "a/"), nested levels, empty directories.
        for i in 0..<300 {
            let n = Int(rng.next() % 5000)
            expectedBytes += n
            let top = ["a", "a-b", "b", "c d", "é", "z"][i % 6]
            let depth = i % 3 == 0 ? "" : "/s\(i % 4)"
            dir.write("\(top)\(depth)/f\(i)", [UInt8](repeating: 0x61, count: n))
        }
        for name in ["a.txt", "a0", "m"] {
            dir.write(name, [1, 2, 3])
            expectedBytes += 3
        }
        mkdir(dir.file("empty"), 0o755)
        mkdir(dir.file("b/empty"), 0o755)
        mkfifo(dir.file("c d/fifo"), 0o644)
        _ = run(["/bin/ln", "-s", dir.file("a"), dir.file("link")])
        _ = run(["/bin/ln", "-s", dir.file("nowhere"), dir.file("b/dangling")])
        // A name that is not UTF-8: a file like any other, its bytes kept.
        let bad: [UInt8] = Array(dir.file("z/bad-").utf8) + [0xFF, 0xFE, 0]
        let fd = bad.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) }
        }
        try #require(fd >= 0)
        close(fd)

        let one = FileWalker(threads: 1).expand([dir.path.raw, dir.file("a.txt").raw])
        let many = FileWalker(threads: threads).expand([dir.path.raw, dir.file("a.txt").raw])
        #expect(one.files.count == 305)
        #expect(one.files.contains { $0.bytes == bad.dropLast() })
        #expect(many.files == one.files)
        #expect(many.notes == one.notes)
        #expect(many.errors.map(\.message) == one.errors.map(\.message))
        #expect(one.notes.contains { $0.contains("FIFO") } && one.notes.contains { $0.contains("symbolic link") })
        #expect(one.errors.isEmpty)
        // Sizes: every file of this small tree is sampled by one thread; the
        // fan-out shares the sample out, and what it sampled adds up right.
        #expect(one.bytes == expectedBytes + 3 && one.sizedFiles == 305)
        #expect(many.sizedFiles + many.unsizedFiles == 305)
        #expect(many.sizedFiles >= 16 * 6)
    }

    /// A lopsided tree (3,000 files in one directory, 10 in another) is
    /// still small enough for one thread to size every file: so is the fan-out.
    @Test func aSmallLopsidedTreeIsSizedWhole() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        for i in 0..<3000 { dir.write("root/a/f\(i)", [1, 2, 3]) }
        for i in 0..<10 { dir.write("root/b/f\(i)", [1, 2, 3]) }
        let one = FileWalker(threads: 1).expand([dir.file("root").raw])
        let two = FileWalker(threads: 2).expand([dir.file("root").raw])
        #expect(two.files == one.files)
        #expect(one.inputHint == InputHint(files: 3010, bytes: 9030))
        #expect(two.inputHint == one.inputHint)
    }
}
