import SluiceCore
import SluiceOps
import Synchronization

/// The scan tables a CPU backend has installed, validated once on install and
/// found by the address the control block names, so workers never re-check a
/// table per slot and never read one that was not validated.
public final class ScanTableRegistry: Sendable {
    private struct Entry: @unchecked Sendable {
        let memory: HostMemory
        let view: ScanTableView
    }

    private let entries = Mutex<[UInt64: Entry]>([:])

    public init() {}

    /// Copies and validates `words`; returns the address to publish.
    func install(_ words: [UInt32]) throws(PipelineError) -> UInt64 {
        let memory = try HostMemory(byteCount: max(words.count, 1) * 4, purpose: "scan table")
        let typed = memory.bytes.bindMemory(to: UInt32.self)
        _ = typed.initialize(from: words)
        let view = try ScanTableView(UnsafeBufferPointer(rebasing: typed[0..<words.count]))
        let address = UInt64(UInt(bitPattern: memory.bytes.baseAddress))
        // Tables stay until the backend goes: a worker may still hold a view.
        entries.withLock { $0[address] = Entry(memory: memory, view: view) }
        return address
    }

    func table(at address: UInt64) -> ScanTableView? {
        entries.withLock { $0[address]?.view }
    }
}
