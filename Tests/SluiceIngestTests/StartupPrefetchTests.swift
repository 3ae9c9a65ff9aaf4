#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceIngest
import Testing

/// The start-up prefetch brings a run's first bytes into the page cache, no more than its budget.
@Suite struct StartupPrefetchTests {
    /// Pages of `path`'s first `bytes` bytes in the page cache, per 4 KiB page (mincore).
    func residentPages(_ path: String, bytes: Int) -> [Bool] {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        guard let map = mmap(nil, bytes, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else { return [] }
        defer { munmap(map, bytes) }
        var vec = [UInt8](repeating: 0, count: (bytes + 4095) / 4096)
        guard mincore(map, bytes, &vec) == 0 else { return [] }
        return vec.map { $0 & 1 == 1 }
    }

    @Test func itReadsTheFirstFilesIntoThePageCacheWithinItsBudget() throws {
        let dir = try ScratchDirectory()
        let first = try dir.write("first", randomBytes(3 << 20, seed: 1))
        let second = try dir.write("second", randomBytes(5 << 20, seed: 2))
        for path in [first, second] {
            let fd = open(path, O_RDONLY)
            fsync(fd)
            // Clean pages leave the cache on this advice (not on tmpfs).
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
            close(fd)
        }
        let before = residentPages(first, bytes: 3 << 20).filter { $0 }.count + residentPages(second, bytes: 5 << 20).filter { $0 }.count
        try #require(before < 64, "the cache kept \(before) pages after DONTNEED: this filesystem cannot show the prefetch")

        // A missing file and a directory are passed over; the budget is 4 MiB.
        let prefetch = StartupPrefetch(paths: [dir.path + "/missing", dir.path, first, second].map { RawPath($0) }, budgetBytes: 4 << 20)
        let deadline = ContinuousClock.now + .seconds(5)
        while residentPages(first, bytes: 3 << 20).contains(false) || residentPages(second, bytes: 1 << 20).contains(false),
              ContinuousClock.now < deadline {
            usleep(10_000)
        }
        prefetch.finish()
        #expect(!residentPages(first, bytes: 3 << 20).contains(false), "the first file is all cached")
        let tail = residentPages(second, bytes: 5 << 20)
        #expect(!tail.prefix(256).contains(false), "the second file's first MiB is cached")
        #expect(tail.dropFirst(256).filter { $0 }.count < 768, "the budget stops it: not all of the last 4 MiB")
        #expect(StartupPrefetch.budget() > 0 && StartupPrefetch.budget() <= 1 << 30)
    }
}
