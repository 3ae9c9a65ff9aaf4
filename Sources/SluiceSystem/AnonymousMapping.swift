#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Private anonymous memory, zero-filled, and its only owner: the mapping
/// is unmapped when the owner goes. The one place Sluice calls mmap(2) and
/// munmap(2); the CPU backend's regions, the CUDA backend's pinned buffers
/// and the NUMA trial all hold one.
package struct AnonymousMapping: ~Copyable {
    /// A transparent huge page on x86-64 and arm64 with 4 KiB pages.
    package static let hugePage = 2 << 20
    /// The system's page size (4 KiB at least): what mappings are rounded to.
    package static let pageSize = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)

    /// The usable bytes: the size asked for rounded up to whole pages, on a
    /// huge-page boundary where huge pages were asked for.
    package let bytes: UnsafeMutableRawBufferPointer
    /// What was mapped: `bytes`, plus up to a huge page of slack for the alignment.
    private let mapping: UnsafeMutableRawPointer
    private let mappedBytes: Int

    /// Maps `byteCount` bytes (one page when zero), rounded up to pages.
    /// With `hugePages`, a region of a huge page or more starts on a
    /// huge-page boundary and asks for transparent huge pages (advice only:
    /// where THP is off, it is the same 4 KiB mapping). `purpose` names the
    /// memory in the error when the mapping is refused.
    package init(byteCount: Int, purpose: String, hugePages: Bool = false) throws(PipelineError) {
        let page = AnonymousMapping.pageSize
        let rounded = (max(byteCount, 1) + page - 1) / page * page
        let huge = hugePages && rounded >= AnonymousMapping.hugePage
        let mappedBytes = huge ? rounded + AnonymousMapping.hugePage : rounded
        guard let whole = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              whole != MAP_FAILED
        else {
            let e = errno
            throw .io(IOFailure(
                operation: "mmap \(mappedBytes) bytes for the \(purpose)", path: "", length: mappedBytes, errno: e,
                allocatesMemory: true))
        }
        var start = whole
        if huge {
            let misalignment = Int(bitPattern: whole) & (AnonymousMapping.hugePage - 1)
            if misalignment != 0 { start = whole + (AnonymousMapping.hugePage - misalignment) }
            _ = madvise(start, rounded, MADV_HUGEPAGE)
        }
        self.mapping = whole
        self.mappedBytes = mappedBytes
        self.bytes = UnsafeMutableRawBufferPointer(start: start, count: rounded)
    }

    deinit {
        munmap(mapping, mappedBytes)
    }
}
