#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import SluiceCUDA

/// `PageFaulting.faultIn` brings every page of fresh anonymous memory in
/// (mincore is the independent witness), whatever the length and thread count.
@Suite struct PageFaultingTests {
    func residentPages(_ base: UnsafeMutableRawPointer, _ length: Int) -> Int {
        var vec = [UInt8](repeating: 0, count: (length + 4095) / 4096)
        guard mincore(base, length, &vec) == 0 else { return -1 }
        return vec.filter { $0 & 1 == 1 }.count
    }

    @Test(arguments: [(4096, 8), (3 * 4096, 1), (100 << 20, 4), ((96 << 20) + 3 * 4096, 3), (64 << 20, 64)])
    func everyPageIsInAfterwards(length: Int, threads: Int) throws {
        let base = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(base != MAP_FAILED)
        defer { munmap(base, length) }
        // Fresh: nothing in yet (so the check below can fail).
        #expect(residentPages(base, length) == 0)
        PageFaulting.faultIn(base, length: length, threads: threads)
        #expect(residentPages(base, length) == length / 4096, "\(length) bytes on \(threads) threads")
        // Still zero: touching wrote nothing a reader could see.
        let bytes = UnsafeRawBufferPointer(start: base, count: length)
        #expect(bytes.allSatisfy { $0 == 0 })
    }
}
