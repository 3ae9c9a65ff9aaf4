#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem

/// Memory for scan and tenant tables installed while the kernel runs. Both
/// arenas are allocated at init, before the kernel starts, because freeing
/// (and possibly allocating) driver memory may wait for the device to go
/// idle, which the persistent kernel never does. Allocation bumps a cursor
/// and never reuses memory: an old table stays valid until the backend goes.
struct TableMemory: @unchecked Sendable {
    /// Bytes of the scan-table arena (device memory): a table of 100,000
    /// literals takes about 3 MiB.
    static let scanArenaBytes = 64 << 20
    /// Tables that do not fit, in their own allocations (allocated while the
    /// kernel runs: cuMemAlloc does not wait for the device).
    private(set) var owners: [AnyObject] = []
    private let context: CUDAContext
    private let scanArena: CUDADeviceBuffer
    /// Entries of the scan-table directory.
    static let directoryEntries = ScanDirectory.defaultEntries
    /// The scan-table directory (`ScanDirectory`), in device memory: the
    /// dispatcher reads an entry per scan slot it claims.
    let directory: CUDADeviceBuffer
    private var scanUsed = 0
    private let tenantArena: CUDAMappedHostBuffer
    /// Tables placed so far, by their words' hash: the same table installed
    /// again (a session's requests for one literal set) gets the address it
    /// has, which still holds only it, instead of more device memory.
    private var placed: [Int: [(words: [UInt32], address: UInt64)]] = [:]
    private var tenantUsed = 0
    /// Bytes of scan tables placed outside the arena.
    private var ownedScanBytes = 0

    /// Bytes of scan tables placed so far, none of which is reused while the kernel runs.
    var scanTableBytes: Int { scanUsed + ownedScanBytes }

    init(context: CUDAContext, slotCount: Int) throws(PipelineError) {
        self.context = context
        scanArena = try CUDADeviceBuffer(context: context, byteCount: TableMemory.scanArenaBytes)
        directory = try CUDADeviceBuffer(
            context: context, byteCount: TableMemory.directoryEntries * ScanDirectory.entryWords * 4)
        // A scanner's tenant table: header, one word per chunk buffer and per
        // result area (one each per slot), with room for several.
        let page = AnonymousMapping.pageSize
        let tenantBytes = max(64 << 10, 4 * (8 + 4 * slotCount) * 4)
        tenantArena = try CUDAMappedHostBuffer(context: context, byteCount: tenantBytes, alignment: page)
        owners = [scanArena, tenantArena, directory]
    }

    /// Writes directory entry `index` (its four words) and waits for the copy.
    func writeDirectoryEntry(_ index: Int, _ words: [UInt32], stream: CUDAStream) throws(PipelineError) {
        guard index >= 0, index < TableMemory.directoryEntries, words.count == ScanDirectory.entryWords else {
            throw .invalidRequest(
                chunk: nil, slot: nil, reason: "scan-table index \(index) outside the directory's 0..<\(TableMemory.directoryEntries)")
        }
        let directory = self.directory
        try words.withUnsafeBytes { raw in
            Result { () throws(PipelineError) in try directory.upload(raw, at: index * ScanDirectory.entryWords * 4, on: stream) }
        }.get()
    }

    /// Copies `words` to device memory; returns its device address.
    mutating func placeScanTable(_ words: [UInt32], stream: CUDAStream) throws(PipelineError) -> UInt64 {
        let key = words.hashValue
        if let same = placed[key]?.first(where: { $0.words == words }) { return same.address }
        let address = try placeNewScanTable(words, stream: stream)
        placed[key, default: []].append((words, address))
        return address
    }

    /// Copies `words` to device memory not used before.
    private mutating func placeNewScanTable(_ words: [UInt32], stream: CUDAStream) throws(PipelineError) -> UInt64 {
        let bytes = max(words.count * 4, 4)
        let rounded = (bytes + 255) / 256 * 256
        if scanUsed + rounded <= scanArena.byteCount {
            let address = scanArena.deviceAddress + UInt64(scanUsed)
            let offset = scanUsed
            let arena = scanArena
            try words.withUnsafeBytes { raw in
                Result { () throws(PipelineError) in try arena.upload(raw, at: offset, on: stream) }
            }.get()
            scanUsed += rounded
            return address
        }
        let own = try CUDADeviceBuffer(context: context, byteCount: bytes)
        try words.withUnsafeBytes { raw in
            Result { () throws(PipelineError) in try own.upload(raw, at: 0, on: stream) }
        }.get()
        owners.append(own)
        ownedScanBytes += bytes
        return own.deviceAddress
    }

    /// Copies `words` to mapped host memory (16-byte aligned); returns its
    /// device address and the host view.
    mutating func placeTenantTable(_ words: [UInt32]) throws(PipelineError) -> (UInt64, UnsafeMutableBufferPointer<UInt32>) {
        let bytes = words.count * 4
        let rounded = (bytes + 63) / 64 * 64
        let base: UnsafeMutableRawPointer
        let device: UInt64
        if tenantUsed + rounded <= tenantArena.bytes.count {
            base = tenantArena.bytes.baseAddress! + tenantUsed
            device = tenantArena.deviceAddress + UInt64(tenantUsed)
            tenantUsed += rounded
        } else {
            let page = AnonymousMapping.pageSize
            let own = try CUDAMappedHostBuffer(context: context, byteCount: bytes, alignment: page)
            owners.append(own)
            base = own.bytes.baseAddress!
            device = own.deviceAddress
        }
        let view = UnsafeMutableBufferPointer(start: base.bindMemory(to: UInt32.self, capacity: words.count), count: words.count)
        _ = view.initialize(from: words)
        return (device, view)
    }
}
