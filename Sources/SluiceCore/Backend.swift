/// How a backend's ring and data region are sized.
public struct BackendConfiguration: Hashable, Sendable {
    /// Slot count and result words per slot of the ring the backend allocates.
    public var geometry: RingGeometry
    /// Bytes of chunk data the backend must be able to read (the ingest buffers).
    public var dataBytes: Int
    /// Worker threads (CPU) or a hint for blocks per multiprocessor (GPU); 0 picks a default.
    public var workers: Int
    /// Accept the test-only opcodes (`Opcode.testOnly`) that kill the backend
    /// or hang a worker. Off everywhere except fault-injection tests, the
    /// self-test's fault checks and `sluice soak`: not a library user's API.
    package var faultInjection: Bool
    /// User operations the backend runs besides the built-in opcodes: the
    /// CPU backend calls their Swift references, the CUDA backend compiles
    /// their sources into the megakernel before it starts.
    public var operations: OperationSet

    /// A configuration whose backend runs the defined opcodes and `operations`.
    public init(geometry: RingGeometry, dataBytes: Int, workers: Int = 0, operations: OperationSet = OperationSet()) {
        self.init(geometry: geometry, dataBytes: dataBytes, workers: workers, faultInjection: false, operations: operations)
    }

    /// With `faultInjection`, the backend also runs the test-only opcodes.
    package init(
        geometry: RingGeometry, dataBytes: Int, workers: Int = 0, faultInjection: Bool,
        operations: OperationSet = OperationSet()
    ) {
        self.geometry = geometry
        self.dataBytes = dataBytes
        self.workers = workers
        self.faultInjection = faultInjection
        self.operations = operations
    }
}

/// A persistent megakernel: workers that poll a ring of slots in memory the
/// host shares with them, run each slot's opcode on its chunk, and report
/// through the slot status and the control block.
///
/// The CPU backend (threads) and the CUDA backend (one persistent kernel)
/// implement the same protocol; the host side (`RingView`'s host methods,
/// the pump, the scanner) cannot tell them apart.
public protocol MegakernelBackend: AnyObject {
    /// "cpu" or "cuda".
    var name: String { get }
    /// What runs its slots, for messages about slots that stopped moving.
    var slotRunner: SlotRunner { get }
    /// A human-readable line on what runs (device, worker count, why this backend).
    var summary: String { get }
    /// The ring, in memory the workers read.
    var ring: RingView { get }
    /// The chunk buffers as the host sees them: ingest reads land here and the
    /// workers read them in place (for CUDA, pinned host memory mapped into the GPU).
    var dataRegion: UnsafeMutableRawBufferPointer { get }
    /// Opcodes this backend runs; any other defined opcode faults with `unsupportedOpcode`.
    var supportedOpcodes: Set<Opcode> { get }
    /// Starts the workers; they poll until `shutdown()`.
    func start() throws(PipelineError)
    /// Blocks until the epoch passes `epoch` or `timeout` elapses, without
    /// spinning a core while idle. Returns the epoch it saw last. Throws
    /// `.contextLost` when the workers died with their state (a sticky CUDA
    /// error, or the CPU backend's test twin of one): the backend must then
    /// be released and replaced (docs/protocol.md, "Lost context and recovery").
    func waitForProgress(after epoch: UInt64, timeout: Duration) throws(PipelineError) -> UInt64
    /// Sets the shutdown flag, waits for every worker to leave, and releases
    /// nothing (deinit does). Calling it twice is harmless.
    func shutdown() throws(PipelineError)
    /// Entries in the backend's scan-table directory (`ScanDirectory`): how
    /// many scan tables may be installed at once. 0 when it runs no scan.
    var scanDirectoryEntries: Int { get }
    /// Bytes of scan tables the backend keeps although they were removed
    /// (memory its workers may still read while the kernel runs); a
    /// long-lived session restarts a backend whose tables pass a budget.
    /// 0 for a backend that frees a table when it is removed.
    var retainedTableBytes: Int { get }
    /// Copies a compiled scan table (`ScanTable.words`) into memory the
    /// workers read and makes it entry `index` of the scan-table directory,
    /// usable by the slots of `owner` (`ScanDirectory.anyTenant`: any
    /// tenant's). `literals` are those the table was compiled from (pattern i
    /// is `literals[i]`), for a backend whose own matcher compiles them (the
    /// CPU backend's Hyperscan engine); nil runs the table's own matcher.
    /// Only while no slot naming `index` is in flight. Returns one line
    /// naming the matcher that runs the table, and why.
    func installScanTable(
        _ words: [UInt32], literals: [[UInt8]]?, caseInsensitive: Bool, at index: Int, owner: UInt32
    ) throws(PipelineError) -> String
    /// Empties entry `index` of the scan-table directory: slots naming it
    /// fault from then on. Only while no slot naming it is in flight.
    func removeScanTable(at index: Int) throws(PipelineError)
    /// Allocates a tenant table (`TenantTable.make`) in memory the workers
    /// read, points the control block at it, and returns its host view, whose
    /// owner words the host updates as it hands buffers and areas to tenants.
    /// Only while no slot is in flight.
    func enableTenants(_ table: [UInt32]) throws(PipelineError) -> UnsafeMutableBufferPointer<UInt32>
}

extension MegakernelBackend {
    /// A backend without a scan-table directory has no entries.
    public var scanDirectoryEntries: Int { 0 }

    /// A backend that frees its tables keeps none.
    public var retainedTableBytes: Int { 0 }

    /// Throws `backendUnavailable`: a backend that runs the scan opcode provides its own.
    public func installScanTable(
        _ words: [UInt32], literals: [[UInt8]]?, caseInsensitive: Bool, at index: Int, owner: UInt32
    ) throws(PipelineError) -> String {
        throw .backendUnavailable(backend: name, reason: "this backend does not run the scan opcode yet")
    }

    /// Throws `backendUnavailable`: a backend that runs the scan opcode provides its own.
    public func removeScanTable(at index: Int) throws(PipelineError) {
        throw .backendUnavailable(backend: name, reason: "this backend does not run the scan opcode yet")
    }

    /// Installs `words` as entry 0, for any tenant, and returns the matcher's line:
    /// what a run with one literal set (one tenant, or all sharing it) uses.
    @discardableResult
    public func installScanTable(
        _ words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool
    ) throws(PipelineError) -> String {
        try installScanTable(words, literals: literals, caseInsensitive: caseInsensitive, at: 0, owner: ScanDirectory.anyTenant)
    }

    /// Installs `words` as entry 0, for any tenant, run by the table's own
    /// matcher (the built-in one, on the CPU backend too).
    public func installScanTable(_ words: [UInt32]) throws(PipelineError) {
        _ = try installScanTable(words, literals: nil, caseInsensitive: false, at: 0, owner: ScanDirectory.anyTenant)
    }

    /// Throws `backendUnavailable`: a backend that checks tenants provides its own.
    public func enableTenants(_ table: [UInt32]) throws(PipelineError) -> UnsafeMutableBufferPointer<UInt32> {
        throw .backendUnavailable(backend: name, reason: "this backend does not check tenants yet")
    }
}
