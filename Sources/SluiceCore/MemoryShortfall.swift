/// A ring that cannot fit the host: what was asked, the limit it ran into,
/// and what would fit instead. `HostMemoryCheck` finds it before anything
/// is allocated, so the run fails with these numbers rather than being
/// killed by the kernel's OOM killer.
public struct MemoryShortfall: Hashable, Sendable {
    /// Which limit the ring does not fit under.
    public enum Limit: Hashable, Sendable {
        /// The memory the kernel says is available now (MemAvailable).
        case available
        /// RLIMIT_MEMLOCK, for buffers registered with io_uring.
        case lockLimit
    }

    /// The limit the rings do not fit under.
    public var limit: Limit
    /// Bytes the rings need under `limit`, all of them together.
    public var neededBytes: Int
    /// Bytes `limit` allows.
    public var limitBytes: Int
    /// Slots per ring, as asked.
    public var slots: Int
    /// Bytes per chunk buffer, as asked.
    public var chunkBytes: Int
    /// Rings (one per device) that need the memory at once.
    public var rings: Int
    /// The most slots of `chunkBytes` that fit (0: not even one).
    public var fittingSlots: Int
    /// The largest chunk (a multiple of 4096) that fits with `slots` slots (0: none).
    public var fittingChunkBytes: Int
    /// Pinned memory (the CUDA backend's), which cannot be paged out.
    public var pinned: Bool

    /// A shortfall with every field given; `HostMemoryCheck` makes them.
    public init(
        limit: Limit, neededBytes: Int, limitBytes: Int, slots: Int, chunkBytes: Int, rings: Int,
        fittingSlots: Int, fittingChunkBytes: Int, pinned: Bool
    ) {
        self.limit = limit
        self.neededBytes = neededBytes
        self.limitBytes = limitBytes
        self.slots = slots
        self.chunkBytes = chunkBytes
        self.rings = rings
        self.fittingSlots = fittingSlots
        self.fittingChunkBytes = fittingChunkBytes
        self.pinned = pinned
    }

    /// What was asked, the limit and its size, and what would fit instead, in one sentence for the user.
    public var message: String {
        let ring = "\(slots) slots of \(MemoryShortfall.text(chunkBytes)) chunks"
        let what = rings > 1 ? "\(rings) rings (one per device) of \(ring)" : "a ring of \(ring)"
        let kind = pinned ? "pinned host memory" : "host memory"
        let against: String
        switch limit {
        case .available:
            against = "\(limitBytes) bytes (\(MemoryShortfall.text(limitBytes))) are available (MemAvailable)"
        case .lockLimit:
            against = "RLIMIT_MEMLOCK allows \(limitBytes) bytes (\(MemoryShortfall.text(limitBytes))) to be locked for io_uring"
        }
        let each = rings > 1 ? " per ring" : ""
        var fits: [String] = []
        if fittingSlots > 0 { fits.append("\(fittingSlots) slots of \(MemoryShortfall.text(chunkBytes))\(each)") }
        if fittingChunkBytes > 0 { fits.append("chunks of \(MemoryShortfall.text(fittingChunkBytes)) with \(slots) slots") }
        let instead = fits.isEmpty
            ? "not even one slot of the smallest chunk (4 KiB) fits"
            : "at most " + fits.joined(separator: ", or ") + " would fit"
        return "\(what) \(rings > 1 ? "need" : "needs") \(neededBytes) bytes (\(MemoryShortfall.text(neededBytes))) of \(kind), "
            + "but \(against): \(instead)"
    }

    /// "4 KiB", "1 GiB", "22.6 GiB": whole units where exact.
    public static func text(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var unit = 0
        var scale = 1
        while unit < units.count - 1, bytes >= scale * 1024 {
            scale *= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) bytes" }
        if bytes % scale == 0 { return "\(bytes / scale) \(units[unit])" }
        let tenths = Int((Double(bytes) / Double(scale) * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}
