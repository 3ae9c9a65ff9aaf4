#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest

/// What the host offers the rings, read once per check.
public struct HostMemoryFacts: Sendable, Hashable {
    /// MemAvailable from /proc/meminfo; nil where it cannot be read.
    public var availableBytes: Int?
    /// MemTotal from /proc/meminfo (physical memory); nil where it cannot be read.
    public var totalBytes: Int?
    /// RLIMIT_MEMLOCK's soft limit; nil when unlimited.
    public var lockLimitBytes: Int?
    /// The process has CAP_IPC_LOCK, so io_uring does not count registered
    /// buffers against RLIMIT_MEMLOCK (root usually has it).
    public var lockLimitExempt: Bool

    /// Facts as given (tests describe machines with this); `HostMemoryFacts.current()` reads the real ones.
    public init(availableBytes: Int?, totalBytes: Int?, lockLimitBytes: Int?, lockLimitExempt: Bool) {
        self.availableBytes = availableBytes
        self.totalBytes = totalBytes
        self.lockLimitBytes = lockLimitBytes
        self.lockLimitExempt = lockLimitExempt
    }

    /// This machine and process now.
    public static func current() -> HostMemoryFacts {
        let meminfo = (try? readWholeFile("/proc/meminfo", what: "memory information")) ?? []
        let status = (try? readWholeFile("/proc/self/status", what: "process status")) ?? []
        let capabilities = field("CapEff:", in: status).flatMap { UInt64($0, radix: 16) }
        return HostMemoryFacts(
            availableBytes: field("MemAvailable:", in: meminfo).flatMap { Int($0) }.map { $0 * 1024 },
            totalBytes: field("MemTotal:", in: meminfo).flatMap { Int($0) }.map { $0 * 1024 },
            lockLimitBytes: lockLimit(),
            lockLimitExempt: capabilities.map { $0 & (1 << 14) != 0 } ?? false)  // bit 14: CAP_IPC_LOCK
    }

    /// The first word after `name` on the line that starts with it.
    static func field(_ name: String, in text: [UInt8]) -> String? {
        for line in text.split(separator: 0x0A) where line.starts(with: name.utf8) {
            let rest = String(decoding: line.dropFirst(name.utf8.count), as: UTF8.self)
            return rest.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init)
        }
        return nil
    }

    private static func lockLimit() -> Int? {
        guard case .bytes(let n) = LockedMemoryLimit.current() else { return nil }
        return n
    }
}

/// What one ring asks of the host, with the rings still to be made beside it.
public struct RingMemoryRequest: Sendable, Hashable {
    /// Slots of the ring, as resolved (a default already picked).
    public var slots: Int
    /// Bytes per chunk buffer; the data region is `slots * chunkBytes`.
    public var chunkBytes: Int
    /// Bytes of the ring region (control block, slots, result areas).
    public var ringBytes: Int
    /// Rings that need this memory at once: this one and those of the
    /// pool's devices still to be made (each device gets one like it).
    public var rings: Int
    /// The CUDA backend pins (faults in and locks) the ring and the data
    /// region at start; the CPU backend's are pageable.
    public var pinned: Bool
    /// io_uring is forced, and registers the data region, which counts
    /// against RLIMIT_MEMLOCK (where it cannot, `auto` falls back to pread
    /// instead, so only a forced io_uring is refused for it).
    public var registeredForIO: Bool

    /// A request as given; see the properties.
    public init(slots: Int, chunkBytes: Int, ringBytes: Int, rings: Int = 1, pinned: Bool, registeredForIO: Bool = false) {
        self.slots = slots
        self.chunkBytes = chunkBytes
        self.ringBytes = ringBytes
        self.rings = rings
        self.pinned = pinned
        self.registeredForIO = registeredForIO
    }
}

/// The up-front check: whether the rings a run is about to allocate fit the
/// host's memory, and its locked-memory limit where that applies.
public enum HostMemoryCheck {
    /// nil when `request` fits `host`; else the shortfall, with what would fit.
    ///
    /// The data regions and ring regions of every ring must fit in the
    /// memory available now (MemAvailable, else MemTotal; unknown: no
    /// check). A forced io_uring without CAP_IPC_LOCK must also fit its data
    /// regions under RLIMIT_MEMLOCK. cuMemHostRegister's pinning is not
    /// counted against RLIMIT_MEMLOCK by the NVIDIA driver, so pinned rings
    /// are checked against the available memory only.
    public static func shortfall(_ request: RingMemoryRequest, on host: HostMemoryFacts) -> MemoryShortfall? {
        let rings = max(1, request.rings)
        let slots = max(1, request.slots)
        // Ring region bytes per slot, rounded up (it is nearly linear in slots).
        let ringPerSlot = (request.ringBytes + slots - 1) / slots
        if let limit = host.availableBytes ?? host.totalBytes {
            let needed = total(rings, slots, request.chunkBytes + ringPerSlot)
            if needed > limit {
                return MemoryShortfall(
                    limit: .available, neededBytes: needed, limitBytes: limit, slots: slots,
                    chunkBytes: request.chunkBytes, rings: rings,
                    fittingSlots: limit / rings / (request.chunkBytes + ringPerSlot),
                    fittingChunkBytes: fittingChunk(limit / rings / slots - ringPerSlot), pinned: request.pinned)
            }
        }
        if request.registeredForIO, !host.lockLimitExempt, let limit = host.lockLimitBytes {
            let needed = total(rings, slots, request.chunkBytes)
            if needed > limit {
                return MemoryShortfall(
                    limit: .lockLimit, neededBytes: needed, limitBytes: limit, slots: slots,
                    chunkBytes: request.chunkBytes, rings: rings, fittingSlots: limit / rings / request.chunkBytes,
                    fittingChunkBytes: fittingChunk(limit / rings / slots), pinned: request.pinned)
            }
        }
        return nil
    }

    /// `rings * slots * perSlot`, saturating instead of overflowing.
    private static func total(_ rings: Int, _ slots: Int, _ perSlot: Int) -> Int {
        let (a, o1) = rings.multipliedReportingOverflow(by: slots)
        let (b, o2) = a.multipliedReportingOverflow(by: perSlot)
        return o1 || o2 ? .max : b
    }

    /// `bytes` rounded down to a chunk size one can give as an option:
    /// whole MiB from 1 MiB up, else a multiple of 4 KiB; at most 1 GiB (the
    /// engine's limit); 0 when not even 4 KiB.
    private static func fittingChunk(_ bytes: Int) -> Int {
        let b = min(1 << 30, max(0, bytes))
        let unit = b >= 1 << 20 ? 1 << 20 : 4096
        return b / unit * unit
    }

    /// Throws the shortfall of `request` on this host now, if any.
    static func require(_ request: RingMemoryRequest) throws(PipelineError) {
        if let shortfall = shortfall(request, on: .current()) { throw .insufficientMemory(shortfall) }
    }
}
