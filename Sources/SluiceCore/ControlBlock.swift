/// Where each field of the control block lives: 16 little-endian 64-bit words
/// at the start of the ring region. The GPU kernel mirrors these indices.
public enum ControlWord: Int, CaseIterable, Sendable {
    /// `ControlBlock.magic`: written once by the host; a decoder rejects anything else.
    case magic = 0
    /// Host-written; non-zero asks every worker to exit.
    case shutdown = 1
    /// Incremented by a worker once per slot it finishes (DONE, FAULTED or CANCELLED).
    case epoch = 2
    /// Slots finished DONE, incremented by the worker that finished each.
    case slotsDone = 3
    /// Slots finished FAULTED.
    case slotsFaulted = 4
    /// Slots a worker moved from PUBLISHED to CANCELLED because the host asked.
    case slotsCancelled = 5
    /// Sum of `length` over DONE slots (a nop adds nothing).
    case bytesProcessed = 6
    /// Packed last fault: `(slot + 1) << 32 | code << 16 | opcode & 0xFFFF`; zero when none.
    case lastFault = 7
    /// Workers (threads, or GPU blocks) currently inside their polling loop.
    case workersRunning = 8
    /// Written by the host so a worker can check the ring it was handed.
    case slotCount = 9
    /// Address, in the workers' address space, of the scan-table directory
    /// (`ScanDirectory`): the tables a scan slot picks from by index. Written
    /// by the backend once, before the workers start.
    case scanDirectoryAddress = 10
    /// Entries in that directory.
    case scanDirectoryEntries = 11
    /// Address, in the workers' address space, of the tenant table; 0 when
    /// tenants are not checked (one trusted submitter).
    case tenantTableAddress = 12
    /// Length of that table in 32-bit words.
    case tenantTableWords = 13

    /// Words in the control block, reserved ones included.
    public static let count = 16
    /// Bytes of the control block (16 words of 8 bytes).
    public static let byteCount = count * 8
}

/// The most recent fault a worker recorded.
public struct FaultRecord: Hashable, Sendable, CustomStringConvertible {
    /// The faulted slot's index.
    public var slot: Int
    /// Why the worker faulted it.
    public var code: FaultCode
    /// The low 16 bits of the faulting slot's opcode.
    public var opcodeLow16: UInt32

    /// A fault record; only the low 16 bits of `opcodeLow16` are kept.
    public init(slot: Int, code: FaultCode, opcodeLow16: UInt32) {
        self.slot = slot
        self.code = code
        self.opcodeLow16 = opcodeLow16 & 0xFFFF
    }

    /// The record as the `lastFault` word: `(slot + 1) << 32 | code << 16 | opcode & 0xFFFF`.
    public var packed: UInt64 {
        (UInt64(slot) + 1) << 32 | UInt64(code.rawValue & 0xFFFF) << 16 | UInt64(opcodeLow16)
    }

    /// Unpacks a `lastFault` word; nil for zero (no fault yet).
    public init?(packed: UInt64) throws(PipelineError) {
        if packed == 0 { return nil }
        guard packed >> 32 != 0 else {
            throw .malformed(what: "control block", detail: "last fault 0x\(String(packed, radix: 16)) names no slot")
        }
        let rawCode = UInt32((packed >> 16) & 0xFFFF)
        guard let code = FaultCode(rawValue: rawCode) else {
            throw .malformed(what: "control block", detail: "last fault has unknown fault code \(rawCode)")
        }
        self.init(slot: Int(packed >> 32) - 1, code: code, opcodeLow16: UInt32(packed & 0xFFFF))
    }

    /// "slot S, opcode O: reason", as messages show it.
    public var description: String { "slot \(slot), opcode \(opcodeLow16): \(code)" }
}

/// A decoded copy of the control block.
public struct ControlBlock: Hashable, Sendable {
    /// "SLUICE" plus protocol version 2 (version 2: scan tables by directory index).
    public static let magic: UInt64 = 0x534C_5549_4345_0002

    /// The host asked every worker to exit.
    public var shutdown: Bool
    /// Slots finished so far (DONE, FAULTED or CANCELLED); workers add 1 per slot.
    public var epoch: UInt64
    /// Slots finished DONE.
    public var slotsDone: UInt64
    /// Slots finished FAULTED.
    public var slotsFaulted: UInt64
    /// Slots cancelled before a worker claimed them.
    public var slotsCancelled: UInt64
    /// Sum of `length` over DONE slots.
    public var bytesProcessed: UInt64
    /// The most recent fault a worker recorded; nil when none.
    public var lastFault: FaultRecord?
    /// Workers (threads, or GPU blocks) inside their polling loop.
    public var workersRunning: UInt64
    /// The ring's slot count, as the host wrote it for workers to check.
    public var slotCount: UInt64
    /// Address of the scan-table directory in the workers' address space; 0 when none.
    public var scanDirectoryAddress: UInt64
    /// Entries in the scan-table directory.
    public var scanDirectoryEntries: UInt64
    /// Address of the tenant table in the workers' address space; 0 when tenants are not checked.
    public var tenantTableAddress: UInt64
    /// Length of the tenant table in 32-bit words.
    public var tenantTableWords: UInt64

    /// A control block with every field given (zero or false by default).
    public init(
        shutdown: Bool = false, epoch: UInt64 = 0, slotsDone: UInt64 = 0, slotsFaulted: UInt64 = 0,
        slotsCancelled: UInt64 = 0, bytesProcessed: UInt64 = 0, lastFault: FaultRecord? = nil,
        workersRunning: UInt64 = 0, slotCount: UInt64 = 0, scanDirectoryAddress: UInt64 = 0, scanDirectoryEntries: UInt64 = 0,
        tenantTableAddress: UInt64 = 0, tenantTableWords: UInt64 = 0
    ) {
        self.shutdown = shutdown
        self.epoch = epoch
        self.slotsDone = slotsDone
        self.slotsFaulted = slotsFaulted
        self.slotsCancelled = slotsCancelled
        self.bytesProcessed = bytesProcessed
        self.lastFault = lastFault
        self.workersRunning = workersRunning
        self.slotCount = slotCount
        self.scanDirectoryAddress = scanDirectoryAddress
        self.scanDirectoryEntries = scanDirectoryEntries
        self.tenantTableAddress = tenantTableAddress
        self.tenantTableWords = tenantTableWords
    }

    /// The block as its 16 words, with the magic in word 0 and the reserved words zero.
    public var words: [UInt64] {
        var w = [UInt64](repeating: 0, count: ControlWord.count)
        w[ControlWord.magic.rawValue] = ControlBlock.magic
        w[ControlWord.shutdown.rawValue] = shutdown ? 1 : 0
        w[ControlWord.epoch.rawValue] = epoch
        w[ControlWord.slotsDone.rawValue] = slotsDone
        w[ControlWord.slotsFaulted.rawValue] = slotsFaulted
        w[ControlWord.slotsCancelled.rawValue] = slotsCancelled
        w[ControlWord.bytesProcessed.rawValue] = bytesProcessed
        w[ControlWord.lastFault.rawValue] = lastFault?.packed ?? 0
        w[ControlWord.workersRunning.rawValue] = workersRunning
        w[ControlWord.slotCount.rawValue] = slotCount
        w[ControlWord.scanDirectoryAddress.rawValue] = scanDirectoryAddress
        w[ControlWord.scanDirectoryEntries.rawValue] = scanDirectoryEntries
        w[ControlWord.tenantTableAddress.rawValue] = tenantTableAddress
        w[ControlWord.tenantTableWords.rawValue] = tenantTableWords
        return w
    }

    /// Decodes 16 control words, rejecting a wrong magic, a shutdown flag
    /// other than 0 or 1, or a last-fault record with an unknown code.
    public init(words w: [UInt64]) throws(PipelineError) {
        guard w.count == ControlWord.count else {
            throw .malformed(what: "control block", detail: "expected \(ControlWord.count) words, got \(w.count)")
        }
        guard w[ControlWord.magic.rawValue] == ControlBlock.magic else {
            throw .malformed(
                what: "control block",
                detail: "magic is 0x\(String(w[ControlWord.magic.rawValue], radix: 16)), expected 0x\(String(ControlBlock.magic, radix: 16))")
        }
        if let reserved = (ControlWord.tenantTableWords.rawValue + 1..<ControlWord.count).first(where: { w[$0] != 0 }) {
            throw .malformed(what: "control block", detail: "reserved word \(reserved) is \(w[reserved]), expected 0")
        }
        let flag = w[ControlWord.shutdown.rawValue]
        guard flag <= 1 else {
            throw .malformed(what: "control block", detail: "shutdown flag is \(flag), expected 0 or 1")
        }
        self.init(
            shutdown: flag == 1, epoch: w[ControlWord.epoch.rawValue],
            slotsDone: w[ControlWord.slotsDone.rawValue], slotsFaulted: w[ControlWord.slotsFaulted.rawValue],
            slotsCancelled: w[ControlWord.slotsCancelled.rawValue],
            bytesProcessed: w[ControlWord.bytesProcessed.rawValue],
            lastFault: try FaultRecord(packed: w[ControlWord.lastFault.rawValue]),
            workersRunning: w[ControlWord.workersRunning.rawValue], slotCount: w[ControlWord.slotCount.rawValue],
            scanDirectoryAddress: w[ControlWord.scanDirectoryAddress.rawValue],
            scanDirectoryEntries: w[ControlWord.scanDirectoryEntries.rawValue],
            tenantTableAddress: w[ControlWord.tenantTableAddress.rawValue],
            tenantTableWords: w[ControlWord.tenantTableWords.rawValue])
    }
}
