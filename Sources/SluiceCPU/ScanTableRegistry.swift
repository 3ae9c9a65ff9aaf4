import SluiceCore
import SluiceHyperscan
import SluiceOps
import Synchronization

/// The scan-table directory of a CPU backend and the tables it names, each
/// validated once on install, so workers never re-check a table per slot and
/// never read one that was not validated. A table may come with a Hyperscan
/// matcher compiled from the same literals, which the workers then use
/// instead of the table. The directory's words (`ScanDirectory`) are also
/// kept in memory the control block points at, as the protocol lays them out.
public final class ScanTableRegistry: Sendable {
    struct Entry: @unchecked Sendable {
        let memory: HostMemory
        let view: ScanTableView
        let hyperscan: HyperscanMatcher?
        /// The tenant whose slots may use it (`ScanDirectory.anyTenant`: all).
        let owner: UInt32
    }

    private struct State: @unchecked Sendable {
        let directory: HostMemory
        /// The directory as the workers read it (in `directory`).
        let words: UnsafeMutableBufferPointer<UInt32>
        /// The tables by directory index.
        var tables: [Int: Entry] = [:]
    }

    private let state: Mutex<State>
    /// Entries in the directory.
    public let entries: Int
    /// The directory's address, which control word 10 must name.
    public let directoryAddress: UInt64

    /// An empty directory of `entries` entries; the backend installs tables into it.
    public init(entries: Int = ScanDirectory.defaultEntries) throws(PipelineError) {
        let count = max(1, min(entries, ScanDirectory.maxEntries))
        let memory = try HostMemory(byteCount: count * ScanDirectory.entryWords * 4, purpose: "scan-table directory")
        let words = memory.bytes.bindMemory(to: UInt32.self)
        words.initialize(repeating: 0)
        self.entries = count
        directoryAddress = UInt64(UInt(bitPattern: words.baseAddress))
        state = Mutex(State(directory: memory, words: words))
    }

    /// Copies and validates `words` and makes it entry `index`, usable by
    /// `owner`'s slots. The entry must not be named by a slot in flight.
    func install(
        _ words: [UInt32], hyperscan: HyperscanMatcher? = nil, at index: Int, owner: UInt32
    ) throws(PipelineError) {
        try checkIndex(index)
        let memory = try HostMemory(byteCount: max(words.count, 1) * 4, purpose: "scan table")
        let typed = memory.bytes.bindMemory(to: UInt32.self)
        _ = typed.initialize(from: words)
        let view = try ScanTableView(UnsafeBufferPointer(rebasing: typed[0..<words.count]))
        let address = UInt64(UInt(bitPattern: memory.bytes.baseAddress))
        let entry = ScanDirectory.Entry(address: address, words: UInt32(words.count), owner: owner)
        state.withLock { s in
            // A worker still running an old slot holds its own reference.
            s.tables[index] = Entry(memory: memory, view: view, hyperscan: hyperscan, owner: owner)
            for (k, w) in entry.encoded.enumerated() { s.words[index * ScanDirectory.entryWords + k] = w }
        }
    }

    /// Empties entry `index`; its table goes once no worker holds it.
    func remove(at index: Int) throws(PipelineError) {
        try checkIndex(index)
        state.withLock { s in
            s.tables[index] = nil
            for k in 0..<ScanDirectory.entryWords { s.words[index * ScanDirectory.entryWords + k] = 0 }
        }
    }

    private func checkIndex(_ index: Int) throws(PipelineError) {
        guard index >= 0, index < entries else {
            throw .invalidRequest(chunk: nil, slot: nil, reason: "scan-table index \(index) outside the directory's 0..<\(entries)")
        }
    }

    /// The table a scan slot's `argument1` names, checked as the GPU
    /// dispatcher checks it (`ScanDirectory.lookup`); nil when none.
    func entry(argument1: UInt32) -> Entry? {
        state.withLock { s in
            guard let named = ScanDirectory.lookup(argument1: argument1, in: UnsafeBufferPointer(s.words)) else {
                return nil
            }
            return s.tables[ScanDirectory.index(of: argument1)].flatMap {
                UInt64(UInt(bitPattern: $0.memory.bytes.baseAddress)) == named.address ? $0 : nil
            }
        }
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
