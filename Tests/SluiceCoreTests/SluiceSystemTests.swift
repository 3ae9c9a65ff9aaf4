import Glibc
import SluiceCore
import SluiceSystem
import SystemPackage
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
    @Test(.enabled(if: AnonymousMapping.pageSize == 4096, "2 MiB huge pages go with 4 KiB pages"))
    func hugePagesAlignLargeRegionsOnly() throws {
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

    // MARK: The small-file reader

    /// A scratch file with `bytes`, under a name that need not be UTF-8.
    private func scratch(_ name: [UInt8], _ bytes: [UInt8]) -> (directory: String, path: [UInt8]) {
        var template = Array("/var/tmp/sluice-reader-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        let path = Array(directory.utf8) + [UInt8(ascii: "/")] + name
        let fd = (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { open($0.baseAddress!, O_WRONLY | O_CREAT, 0o600) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return (directory, path)
    }

    private func remove(_ made: (directory: String, path: [UInt8])) {
        _ = (made.path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { unlink($0.baseAddress!) }
        rmdir(made.directory)
    }

    /// Whole files, prefixes below, at and past the size, and a name that is not UTF-8.
    @Test func filesAndPrefixesAreReadExactly() throws {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let made = scratch([0x62, 0xFF, 0x2E, 0x62, 0x69, 0x6E], bytes)  // "b\xff.bin"
        defer { remove(made) }
        #expect(try readWholeFile(rawPath: made.path, what: "test") == bytes)
        let path = String(decoding: made.path, as: UTF8.self)
        #expect(throws: PipelineError.self) { _ = try readWholeFile(path, what: "test") }  // U+FFFD is another name
        let plain = scratch(Array("plain".utf8), bytes)
        defer { remove(plain) }
        let plainPath = String(decoding: plain.path, as: UTF8.self)
        for limit in [0, 1, 65_535, 65_536, 65_537, 199_999, 200_000, 200_001, 1 << 30] {
            #expect(try readFilePrefix(plainPath, limit: limit, what: "test") == Array(bytes.prefix(limit)), "limit \(limit)")
        }
        #expect(try readWholeFile(plainPath, atMost: 200_000, what: "test") == bytes)
        let over = #expect(throws: PipelineError.self) { _ = try readWholeFile(plainPath, atMost: 199_999, what: "list") }
        guard case .io(let failure) = over else { Issue.record("\(String(describing: over))"); return }
        #expect(failure.errno == EFBIG && failure.path == plainPath && failure.operation == "read list")
    }

    /// procfs files say size 0 and are read to their end; a missing file names itself.
    @Test func procfsFilesAreReadToTheirEndAndAMissingFileIsNamed() throws {
        let status = try readWholeFile("/proc/self/status", what: "status")
        #expect(String(decoding: status, as: UTF8.self).contains("VmRSS:"))
        #expect(try readWholeFile("/proc/self/status", atMost: 1 << 20, what: "status").count > 100)
        let missing = #expect(throws: PipelineError.self) { _ = try readWholeFile("/nowhere/list", what: "pattern file") }
        guard case .io(let failure) = missing else { Issue.record("\(String(describing: missing))"); return }
        #expect(failure.errno == ENOENT && failure.path == "/nowhere/list" && failure.operation == "open pattern file")
        #expect(failure.reason == "No such file or directory")
    }

    /// First lines and small text files, as sysfs and procfs readers take them.
    @Test func firstLinesAndSmallTextFiles() {
        let two = scratch(Array("two".utf8), Array("0-1\nsecond\n".utf8))
        let bare = scratch(Array("bare".utf8), Array("42".utf8))
        let empty = scratch(Array("empty".utf8), [])
        defer { [two, bare, empty].forEach(remove) }
        func path(_ made: (directory: String, path: [UInt8])) -> String { String(decoding: made.path, as: UTF8.self) }
        #expect(readFirstLine(path(two)) == "0-1")
        #expect(readFirstLine(path(bare)) == "42")
        #expect(readFirstLine(path(empty)) == nil)
        #expect(readFirstLine("/nowhere/value") == nil)
        #expect(readSmallTextFile(path(two)) == "0-1\nsecond\n")
        #expect(readSmallTextFile(path(two), limit: 5) == "0-1\ns")
        #expect(readSmallTextFile("/nowhere/value") == nil)
        // procfs: a size of 0, read to its end.
        #expect(readSmallTextFile("/proc/self/status")?.contains("Pid:\t\(getpid())") == true)
    }

    /// A path's raw bytes reach stat(2): a name that is not UTF-8, a link
    /// followed or not, a missing path's errno.
    @Test func rawPathStat() throws {
        let made = scratch([0x66, 0xFE], Array("12345".utf8))
        defer { remove(made) }
        let file = RawPath(bytes: made.path)
        #expect(try file.stat().size == 5 && file.stat().type == .regular)
        let link = RawPath(bytes: Array(made.directory.utf8) + Array("/link".utf8))
        #expect(link.withCString { linkTarget in (made.path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { symlink($0.baseAddress!, linkTarget) } } == 0)
        defer { _ = link.withCString { unlink($0) } }
        #expect(try link.stat().type == .regular)
        #expect(try link.stat(followingLinks: false).type == .symbolicLink)
        #expect(throws: Errno.noSuchFileOrDirectory) { _ = try RawPath(bytes: Array("/nowhere/x".utf8)).stat() }
        // The bytes as they are: a trailing slash after a file is ENOTDIR, as stat(2) says.
        #expect(throws: Errno.notDirectory) { _ = try RawPath(bytes: made.path + [UInt8(ascii: "/")]).stat() }
    }
}
