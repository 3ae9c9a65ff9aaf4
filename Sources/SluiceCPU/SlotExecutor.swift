import SluiceCore
import SluiceHyperscan
import SluiceOps

/// Runs one claimed slot on the CPU: checks every argument against the
/// regions before touching memory, then runs the opcode. The GPU kernel
/// performs the same checks in the same order, so both fault alike.
public struct SlotExecutor: @unchecked Sendable {
    /// How a slot ended.
    public enum Outcome: Equatable, Sendable {
        /// Finished; `resultWords` words of the result area were written.
        case done(resultWords: UInt32)
        /// Failed with this fault code.
        case fault(FaultCode)
    }

    /// The data region the slots' `bufferOffset` addresses.
    public let data: UnsafeRawBufferPointer
    /// The result region the slots' `resultOffset` addresses, in 32-bit words.
    public let results: UnsafeMutableBufferPointer<UInt32>
    /// The scan-table directory and its validated tables (`ScanTableRegistry`).
    let scanTables: ScanTableRegistry?
    let tenants: TenantTableHolder?
    let ring: RingView?
    /// The user operations this executor runs (their Swift references).
    let operations: OperationSet

    /// An executor over `data` and `results`; `ring`, `scanTables` and `tenants` give it the installed scan and tenant tables (without them a scan slot faults and tenants are not checked); `operations` are the user operations it runs.
    public init(
        data: UnsafeRawBufferPointer, results: UnsafeMutableBufferPointer<UInt32>, ring: RingView? = nil,
        scanTables: ScanTableRegistry? = nil, tenants: TenantTableHolder? = nil, operations: OperationSet = OperationSet()
    ) {
        self.data = data
        self.results = results
        self.ring = ring
        self.scanTables = scanTables
        self.tenants = tenants
        self.operations = operations
    }

    /// Opcodes this executor implements.
    public static let supported: Set<Opcode> = [.count, .scan, .crc32c, .nop]

    /// Runs `p` on the calling thread. `worker` picks the Hyperscan scratch
    /// region when the slot's table has a Hyperscan matcher: no two
    /// threads may run with the same `worker` at once.
    public func execute(_ p: SlotPayload, worker: Int = 0) -> Outcome {
        if p.opcode.isUser { return executeUser(p) }
        guard p.opcode.isDefined else { return .fault(.unknownOpcode) }
        guard SlotExecutor.supported.contains(p.opcode) else { return .fault(.unsupportedOpcode) }
        // Checks nothing and touches nothing (Opcode.nop).
        if p.opcode == .nop { return .done(resultWords: 0) }
        if let code = checkRegions(p) { return .fault(code) }
        let chunk = UnsafeRawBufferPointer(rebasing: data[Int(p.bufferOffset)..<(Int(p.bufferOffset) + Int(p.length))])
        let area = UnsafeMutableBufferPointer(
            rebasing: results[Int(p.resultOffset)..<(Int(p.resultOffset) + Int(p.resultCapacity))])
        switch p.opcode {
        case .count:
            guard area.count >= CountOp.resultWords else { return .fault(.resultOverflow) }
            CountOp.run(chunk, into: area)
            return .done(resultWords: UInt32(CountOp.resultWords))
        case .scan:
            // The directory entry the slot names, in the directory the
            // control block names, as validated when it was installed. The
            // index is bounded by control word 11 too, as the GPU dispatcher bounds it.
            guard let ring, let scanTables, case let directory = ring.scanDirectory,
                directory.address == scanTables.directoryAddress,
                UInt64(ScanDirectory.index(of: p.arguments.1)) < directory.entries,
                let entry = scanTables.entry(argument1: p.arguments.1)
            else {
                return .fault(.badArguments)
            }
            guard entry.owner == ScanDirectory.anyTenant || ring.tenantTable.address == 0 || entry.owner == p.tenant else {
                return .fault(.tenantViolation)
            }
            let startLimit = Int(p.arguments.0)
            // Hyperscan, when a matcher was compiled with the table; should
            // hs_scan itself fail, the built-in matcher redoes the slot.
            if let hyperscan = entry.hyperscan, let scratch = hyperscan.scratch(worker: worker),
                let outcome = try? HyperscanScanOp.run(
                    database: hyperscan.database, scratch: scratch, chunk: chunk, startLimit: startLimit,
                    flags: p.arguments.1, into: area)
            {
                switch outcome {
                case .done(let words): return .done(resultWords: words)
                case .fault(let code): return .fault(code)
                }
            }
            switch ScanOp.run(table: entry.view, chunk: chunk, startLimit: startLimit, flags: p.arguments.1, into: area) {
            case .done(let words): return .done(resultWords: words)
            case .fault(let code): return .fault(code)
            }
        case .crc32c:
            guard area.count >= CRC32COp.resultWords else { return .fault(.resultOverflow) }
            CRC32COp.run(chunk, into: area)
            return .done(resultWords: UInt32(CRC32COp.resultWords))
        default:
            return .fault(.unsupportedOpcode)
        }
    }

    /// A slot of a user opcode: the installed operation's Swift reference
    /// over the chunk, with a checked result area of its declared words,
    /// zeroed first (as the GPU dispatch zeroes it). An opcode of the user
    /// range that is not installed faults before any region check, where an
    /// unknown opcode does.
    private func executeUser(_ p: SlotPayload) -> Outcome {
        guard let op = operations.operation(for: p.opcode) else { return .fault(.operationNotInstalled) }
        if let code = checkRegions(p) { return .fault(code) }
        guard Int(p.resultCapacity) >= op.resultWords else { return .fault(.resultOverflow) }
        let start = Int(p.bufferOffset)
        let chunk = OperationChunk(
            bytes: UnsafeRawBufferPointer(rebasing: data[start..<(start + Int(p.length))]), fileOffset: p.fileOffset,
            argument0: p.arguments.0, argument1: p.arguments.1)
        let area = UnsafeMutableBufferPointer(
            rebasing: results[Int(p.resultOffset)..<(Int(p.resultOffset) + op.resultWords)])
        area.update(repeating: 0)
        do throws(OperationFault) {
            try op.reference(chunk, OperationResults(area: area))
        } catch {
            return .fault(error.faultCode)
        }
        return .done(resultWords: UInt32(op.resultWords))
    }

    /// The checks every slot passes before its opcode runs, in the kernel's
    /// order: ingest region, buffer bounds, result bounds, tenant regions. Nil when the slot
    /// may touch what it names. Also what a test-only opcode must pass before
    /// a backend with fault injection runs it, as the GPU dispatcher does.
    public func checkRegions(_ p: SlotPayload) -> FaultCode? {
        // The CPU has no device ingest region: its chunks are GPU memory.
        guard p.region == .host else { return .regionUnavailable }
        // Compare in 64 bits so that offset + length cannot wrap.
        guard p.bufferOffset <= UInt64(data.count), UInt64(p.length) <= UInt64(data.count) - p.bufferOffset else {
            return .bufferOutOfBounds
        }
        guard UInt64(p.resultOffset) + UInt64(p.resultCapacity) <= UInt64(results.count) else {
            return .resultOutOfBounds
        }
        // Tenant regions, when the host turned them on: a slot may touch only
        // the buffers and result areas its tenant was given.
        if let ring, case let (address, _) = ring.tenantTable, address != 0 {
            guard let table = tenants?.table(at: address), TenantTable.permits(p, table: table) else {
                return .tenantViolation
            }
        }
        return nil
    }
}
