import SluiceCore
import SluiceSystem

/// Page-aligned anonymous memory that the CPU backend shares between the
/// host side and its worker threads. Owns the mapping (`AnonymousMapping`),
/// which goes with it.
public final class HostMemory: @unchecked Sendable {
    /// The mapped bytes: as many as asked, rounded up to whole pages.
    public var bytes: UnsafeMutableRawBufferPointer { mapping.bytes }
    private let mapping: AnonymousMapping

    /// Maps `byteCount` bytes (rounded up to whole pages), zero-filled.
    public init(byteCount: Int, purpose: String) throws(PipelineError) {
        mapping = try AnonymousMapping(byteCount: byteCount, purpose: purpose)
        MemoryLedger.cpuRegionChanged(by: mapping.bytes.count)
    }

    deinit {
        MemoryLedger.cpuRegionChanged(by: -bytes.count)
    }
}
