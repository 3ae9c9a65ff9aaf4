import SluiceCore
import SluiceHyperscan
import SluiceOps
import Synchronization

/// The scan tables a CPU backend has installed, validated once on install and
/// found by the address the control block names, so workers never re-check a
/// table per slot and never read one that was not validated. A table may
/// come with a Hyperscan matcher compiled from the same literals, which the
/// workers then use instead of the table.
public final class ScanTableRegistry: Sendable {
    struct Entry: @unchecked Sendable {
        let memory: HostMemory
        let view: ScanTableView
        let hyperscan: HyperscanMatcher?
    }

    private let entries = Mutex<[UInt64: Entry]>([:])

    /// An empty registry; the backend installs tables into it.
    public init() {}

    /// Copies and validates `words`; returns the address to publish.
    func install(_ words: [UInt32], hyperscan: HyperscanMatcher? = nil) throws(PipelineError) -> UInt64 {
        let memory = try HostMemory(byteCount: max(words.count, 1) * 4, purpose: "scan table")
        let typed = memory.bytes.bindMemory(to: UInt32.self)
        _ = typed.initialize(from: words)
        let view = try ScanTableView(UnsafeBufferPointer(rebasing: typed[0..<words.count]))
        let address = UInt64(UInt(bitPattern: memory.bytes.baseAddress))
        // Tables stay until the backend goes: a worker may still hold a view.
        entries.withLock { $0[address] = Entry(memory: memory, view: view, hyperscan: hyperscan) }
        return address
    }

    /// The table at `address` and the Hyperscan matcher installed with it.
    func entry(at address: UInt64) -> Entry? {
        entries.withLock { $0[address] }
    }
}

/// The CPU backend's tenant table: host memory it allocated and validated,
/// found by the address the control block names.
public final class TenantTableHolder: Sendable {
    private struct Table: @unchecked Sendable {
        let memory: HostMemory
        let words: UnsafeMutableBufferPointer<UInt32>
    }

    private let table = Mutex<Table?>(nil)

    /// A holder with no table; the backend installs one into it.
    public init() {}

    func install(_ words: [UInt32]) throws(PipelineError) -> (address: UInt64, view: UnsafeMutableBufferPointer<UInt32>) {
        try words.withUnsafeBufferPointer { (w) throws(PipelineError) in try TenantTable.validate(w) }
        let memory = try HostMemory(byteCount: words.count * 4, purpose: "tenant table")
        let typed = UnsafeMutableBufferPointer(rebasing: memory.bytes.bindMemory(to: UInt32.self)[0..<words.count])
        _ = typed.initialize(from: words)
        table.withLock { $0 = Table(memory: memory, words: typed) }
        return (UInt64(UInt(bitPattern: typed.baseAddress)), typed)
    }

    /// The table at `address`, or nil when it is not the installed one.
    func table(at address: UInt64) -> UnsafeBufferPointer<UInt32>? {
        table.withLock { t in
            guard let t, UInt64(UInt(bitPattern: t.words.baseAddress)) == address else { return nil }
            return UnsafeBufferPointer(t.words)
        }
    }
}
