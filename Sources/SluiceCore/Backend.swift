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

    /// A configuration whose backend runs only the defined opcodes.
    public init(geometry: RingGeometry, dataBytes: Int, workers: Int = 0) {
        self.init(geometry: geometry, dataBytes: dataBytes, workers: workers, faultInjection: false)
    }

    /// With `faultInjection`, the backend also runs the test-only opcodes.
    package init(geometry: RingGeometry, dataBytes: Int, workers: Int = 0, faultInjection: Bool) {
        self.geometry = geometry
        self.dataBytes = dataBytes
        self.workers = workers
        self.faultInjection = faultInjection
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
    /// Copies a compiled scan table (`ScanTable.words`) into memory the
    /// workers read and points the control block at it. Only while no scan
    /// slot is in flight.
    func installScanTable(_ words: [UInt32]) throws(PipelineError)
    /// `installScanTable(_:)`, also handing over the literals the table was
    /// compiled from (pattern i is `literals[i]`), for a backend whose own
    /// matcher compiles them (the CPU backend's Hyperscan engine). Returns one
    /// line naming the matcher that runs the scan opcode, and why.
    func installScanTable(_ words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool) throws(PipelineError) -> String
    /// Allocates a tenant table (`TenantTable.make`) in memory the workers
    /// read, points the control block at it, and returns its host view, whose
    /// owner words the host updates as it hands buffers and areas to tenants.
    /// Only while no slot is in flight.
    func enableTenants(_ table: [UInt32]) throws(PipelineError) -> UnsafeMutableBufferPointer<UInt32>
}

extension MegakernelBackend {
    /// Throws `backendUnavailable`: a backend that runs the scan opcode provides its own.
    public func installScanTable(_ words: [UInt32]) throws(PipelineError) {
        throw .backendUnavailable(backend: name, reason: "this backend does not run the scan opcode yet")
    }

    /// A backend with one matcher installs the table alone.
    public func installScanTable(
        _ words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool
    ) throws(PipelineError) -> String {
        try installScanTable(words)
        return "the \(name) megakernel's scan table matcher"
    }

    /// Throws `backendUnavailable`: a backend that checks tenants provides its own.
    public func enableTenants(_ table: [UInt32]) throws(PipelineError) -> UnsafeMutableBufferPointer<UInt32> {
        throw .backendUnavailable(backend: name, reason: "this backend does not check tenants yet")
    }
}
