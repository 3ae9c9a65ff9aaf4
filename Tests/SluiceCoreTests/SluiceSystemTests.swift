import Glibc
import SluiceCore
import SluiceSystem
import Testing

/// `SluiceSystem`: the one strerror and the one mmap owner.
@Suite struct SluiceSystemTests {
    /// glibc's messages and errno names (the values of <errno.h> on Linux).
    @Test func errnoAsText() {
        #expect(SystemErrors.text(ENOENT) == "No such file or directory")
        #expect(SystemErrors.text(ENOMEM) == "Cannot allocate memory")
        #expect(SystemErrors.text(EPIPE) == "Broken pipe")
        #expect(SystemErrors.name(EPERM) == "EPERM" && SystemErrors.name(ECANCELED) == "ECANCELED")
        #expect(SystemErrors.name(4095) == "errno 4095")
        let failure = IOFailure(operation: "open", path: "/nowhere", errno: ENOENT)
        #expect(failure.reason == "No such file or directory" && failure.errno == 2 && !failure.allocatesMemory)
    }

    @Test func aMappingIsWholePagesOfZeroesAndWritable() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        for asked in [0, 1, page - 1, page, page + 1, 3 * page + 17] {
            let mapping = try AnonymousMapping(byteCount: asked, purpose: "test")
            let expected = max(1, (asked + page - 1) / page) * page
            #expect(mapping.bytes.count == expected, "asked \(asked)")
            #expect(Int(bitPattern: mapping.bytes.baseAddress) % page == 0)
            #expect(mapping.bytes.allSatisfy { $0 == 0 })
            mapping.bytes[mapping.bytes.count - 1] = 0xA5
            #expect(mapping.bytes[mapping.bytes.count - 1] == 0xA5)
        }
    }

    /// Huge pages asked for: a region of 2 MiB or more starts on a 2 MiB
    /// boundary (whatever mmap returned); a smaller one is left as it is.
    @Test func hugePagesAlignLargeRegionsOnly() throws {
        for _ in 0..<4 {
            let large = try AnonymousMapping(byteCount: (2 << 20) + 4096, purpose: "test", hugePages: true)
            #expect(Int(bitPattern: large.bytes.baseAddress) % (2 << 20) == 0)
            #expect(large.bytes.count == (2 << 20) + 4096)
            large.bytes[large.bytes.count - 1] = 1  // the last page is inside the mapping
        }
        let small = try AnonymousMapping(byteCount: 8192, purpose: "test", hugePages: true)
        #expect(small.bytes.count == 8192)
    }

    /// More than any address space: the kernel refuses, and the error says
    /// what was mapped, for what, with errno and its text.
    @Test func aRefusedMappingIsAMemoryError() {
        let error = #expect(throws: PipelineError.self) { _ = try AnonymousMapping(byteCount: 1 << 60, purpose: "chunk buffers") }
        guard case .io(let failure) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(failure.errno == ENOMEM && failure.allocatesMemory)
        #expect(failure.reason == "Cannot allocate memory")
        #expect(failure.operation == "mmap \(1 << 60) bytes for the chunk buffers")
    }
}
