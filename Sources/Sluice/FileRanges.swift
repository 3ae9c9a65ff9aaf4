#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest
import SluiceOps

/// One byte range of a file that is too large for one device to take
/// whole: the start positions `start ..< end` belong to it, and it was
/// planned when the file had `plannedSize` bytes and that modification time.
///
/// A range owns start positions, not bytes: its chunks read up to the job's
/// overlap past `end` (scan), exactly as chunks do within a file, so a match
/// that starts in the range and ends in the next is found once, by this range.
public struct FileRange: Hashable, Sendable, CustomStringConvertible {
    /// First start position (a multiple of 4096, so O_DIRECT reads stay aligned).
    public var start: UInt64
    /// One past the last start position.
    public var end: UInt64
    /// This range's number within its file, and how many ranges the file has.
    public var index: Int
    /// Ranges the file was cut into.
    public var count: Int
    /// The file as it was when the ranges were planned; a range that opens
    /// the file and finds another size or time reports the file changed.
    public var plannedSize: UInt64
    /// The file's modification time when planned: seconds since the epoch.
    public var plannedModifiedSeconds: Int
    /// The nanoseconds part of that modification time.
    public var plannedModifiedNanoseconds: Int

    /// A range of start positions `start ..< end`, number `index` of `count`, of a file planned at `plannedSize` bytes and that modification time.
    public init(
        start: UInt64, end: UInt64, index: Int, count: Int, plannedSize: UInt64,
        plannedModifiedSeconds: Int = 0, plannedModifiedNanoseconds: Int = 0
    ) {
        self.start = start
        self.end = end
        self.index = index
        self.count = count
        self.plannedSize = plannedSize
        self.plannedModifiedSeconds = plannedModifiedSeconds
        self.plannedModifiedNanoseconds = plannedModifiedNanoseconds
    }

    /// Start positions in the range.
    public var length: UInt64 { end - start }

    /// "range I of N (bytes START..<END)", as messages show it.
    public var description: String { "range \(index + 1) of \(count) (bytes \(start)..<\(end))" }

    /// The file as planned, to compare with what a range finds when it opens it.
    var plannedStamp: FileStamp {
        FileStamp(size: plannedSize, modifiedSeconds: plannedModifiedSeconds, modifiedNanoseconds: plannedModifiedNanoseconds)
    }

    /// The ranges of a file of `size` bytes cut into pieces of about
    /// `rangeBytes` (rounded up to 4096), all of one length but the last;
    /// empty when the file is not larger than one range (it runs whole).
    public static func split(
        size: UInt64, rangeBytes: UInt64, modifiedSeconds: Int = 0, modifiedNanoseconds: Int = 0
    ) -> [FileRange] {
        guard rangeBytes > 0 else { return [] }
        let step = (rangeBytes + 4095) / 4096 * 4096
        guard size > step else { return [] }
        let count = Int((size + step - 1) / step)
        return (0..<count).map { i in
            let start = UInt64(i) * step
            return FileRange(
                start: start, end: min(size, start + step), index: i, count: count, plannedSize: size,
                plannedModifiedSeconds: modifiedSeconds, plannedModifiedNanoseconds: modifiedNanoseconds)
        }
    }
}


/// One unit of a device's work: a whole file, or one range of a large one.
public struct WorkItem: Hashable, Sendable {
    /// The file.
    public var path: RawPath
    /// Nil for the whole file.
    public var range: FileRange?

    /// The whole file at `path`, or its `range`.
    public init(path: RawPath, range: FileRange? = nil) {
        self.path = path
        self.range = range
    }
}

extension Array where Element == WorkItem {
    /// The items' ranges for a job's `ranges` argument: empty (every file
    /// whole) when no item is a range, which spares a large batch of whole
    /// files an array of nils.
    public var ranges: [FileRange?] {
        contains { $0.range != nil } ? map(\.range) : []
    }
}

/// How large the ranges of large files are when several devices share a run
/// (`--range-size`).
public enum RangeSize: Sendable, Hashable {
    /// Files run whole, on one device each.
    case off
    /// Chosen per file by `RangeSize.automatic`.
    case auto
    /// Ranges of this many bytes (rounded up to 4096); files not larger run whole.
    case bytes(UInt64)

    /// The least automatic range: below it the drain and refill of a device's
    /// ring at each range's end costs more than the balance gained.
    public static let minimumAutomaticBytes: UInt64 = 256 << 20

    /// Parses "auto", "0" (off) or a byte count with an optional K, M or G suffix.
    public init(parsing text: String) throws(PipelineError) {
        if text == "auto" {
            self = .auto
            return
        }
        var digits = text.uppercased()
        var scale: UInt64 = 1
        if let last = digits.last, let s = ["K": UInt64(1) << 10, "M": 1 << 20, "G": 1 << 30][String(last)] {
            scale = s
            digits.removeLast()
        }
        guard let n = UInt64(digits), n <= UInt64(1) << 50 else {
            throw .invalidConfiguration("range size \(text): expected auto, 0 or a size such as 512M")
        }
        self = n == 0 ? .off : .bytes(n * scale)
    }

    /// The range length for a file of `size` bytes shared by `devices`
    /// devices whose rings each hold `ringBytes` of chunk buffers; 0 when the
    /// file should run whole.
    ///
    /// Automatic: about a quarter of one device's share of the file, so that
    /// a device that finishes early can still take ranges a slower one would
    /// have had; never below 256 MiB; and not below four rings' worth when the
    /// file is large enough, because each range ends by draining its device's
    /// ring (the next range refills it), and four rings keep that bubble to a
    /// few percent of the range's time.
    public func bytes(forFileOf size: UInt64, devices: Int, ringBytes: UInt64) -> UInt64 {
        guard devices > 1 else { return 0 }
        switch self {
        case .off: return 0
        case .bytes(let n): return n
        case .auto:
            let share = size / UInt64(4 * devices)
            return max(RangeSize.minimumAutomaticBytes, min(4 * ringBytes, share))
        }
    }
}

/// An outcome of a range of a file that can be joined with the outcomes of
/// the file's other ranges into the outcome a whole-file run would give.
/// An item (a file or a range) may have several outcomes, the last with
/// `endsItem` set (a streaming scan's pieces); most have one.
public protocol RangeMergeable: Sendable {
    /// Joins the whole outcomes of every range of one file, given in range order.
    static func merging(_ parts: [Self]) -> Self
    /// What joins one file's range outcomes as they come; by default, it
    /// holds them until the last range ended and hands out `merging` of them.
    static func rangeJoiner() -> RangeJoiner<Self>
    /// True on an item's last outcome.
    var endsItem: Bool { get }
    /// Memory the outcome holds, for the pool's bound on what waits.
    var heldBytes: Int { get }
}

extension RangeMergeable {
    /// Holds every range's outcome until the last one ends, then hands out `merging` of them.
    public static func rangeJoiner() -> RangeJoiner<Self> {
        var parts: [Self] = []
        return RangeJoiner { part, lastRange in
            parts.append(part)
            guard lastRange else { return [] }
            defer { parts.removeAll() }
            return [merging(parts)]
        }
    }

    /// True: an outcome is whole unless the type says otherwise.
    public var endsItem: Bool { true }
    /// 0: the outcome holds nothing worth bounding unless the type says otherwise.
    public var heldBytes: Int { 0 }
}

/// Joins the outcomes of one file's ranges, given in order: `add` takes
/// each and returns what can be handed out.
public final class RangeJoiner<Outcome> {
    private let joining: (Outcome, Bool) -> [Outcome]

    /// `add(outcome, lastRange)` returns what can be handed out.
    public init(_ add: @escaping (_ outcome: Outcome, _ lastRange: Bool) -> [Outcome]) {
        joining = add
    }

    /// Takes the next outcome of the file (`lastRange`: it is of the file's
    /// last range) and returns what can be handed out now.
    public func add(_ outcome: Outcome, lastRange: Bool) -> [Outcome] { joining(outcome, lastRange) }
}

/// Each error once, in the order first seen: every range of a file that
/// changed or vanished says so, and one line per file is enough.
func uniqueErrors(_ lists: [[PipelineError]]) -> [PipelineError] {
    var seen = Set<PipelineError>()
    var out: [PipelineError] = []
    for e in lists.joined() where seen.insert(e).inserted { out.append(e) }
    return out
}

extension FileMatches: RangeMergeable {
    /// Ranges own disjoint, increasing start positions and each range's
    /// matches are sorted, so concatenating in range order keeps the order.
    public static func merging(_ parts: [FileMatches]) -> FileMatches {
        guard let first = parts.first, parts.count > 1 else { return parts[0] }
        return FileMatches(
            path: first.path, matches: parts.flatMap(\.matches), count: parts.reduce(0) { $0 + $1.count },
            errors: uniqueErrors(parts.map(\.errors)))
    }

    /// Pieces pass straight through: a range's matches are final once the
    /// ranges before it ended. Each range's lines count from its own start,
    /// so they are moved on by the newlines of the ranges before; errors wait
    /// for the file's last piece, which alone is complete.
    public static func rangeJoiner() -> RangeJoiner<FileMatches> {
        var newlinesBefore: UInt64? = 0
        var errors: [[PipelineError]] = []
        return RangeJoiner { piece, lastRange in
            var out = piece
            if !out.matches.isEmpty {
                for i in out.matches.indices {
                    out.matches[i].line = newlinesBefore.flatMap { b in out.matches[i].line.map { b + $0 } }
                }
            }
            guard piece.isComplete else { return [out] }
            errors.append(piece.errors)
            newlinesBefore = newlinesBefore.flatMap { b in piece.newlines.map { b + $0 } }
            guard lastRange else {
                // A range's end is not the file's: whatever it still carries goes on as a piece.
                out.isComplete = false
                out.errors = []
                out.newlines = nil
                return out.count > 0 || !out.matches.isEmpty ? [out] : []
            }
            out.errors = uniqueErrors(errors)
            out.newlines = newlinesBefore
            return [out]
        }
    }

    /// True on the file's (or range's) last piece.
    public var endsItem: Bool { isComplete }
    /// The memory the piece's matches take.
    public var heldBytes: Int { matches.count * MemoryLayout<ScanMatch>.stride }
}

extension FileCount: RangeMergeable {
    /// The ranges' counts added up; each error once.
    public static func merging(_ parts: [FileCount]) -> FileCount {
        guard let first = parts.first, parts.count > 1 else { return parts[0] }
        var total = CountResult()
        for p in parts { total.add(p.result) }
        return FileCount(path: first.path, result: total, errors: uniqueErrors(parts.map(\.errors)))
    }
}

extension FileHash: RangeMergeable {
    /// The ranges' checksums joined in file order with the CRC combine
    /// operator: crc(A ‖ B) = crc(A) · x^(8·|B|) ⊕ crc(B).
    public static func merging(_ parts: [FileHash]) -> FileHash {
        guard let first = parts.first, parts.count > 1 else { return parts[0] }
        var crc: UInt32 = 0
        var bytes: UInt64 = 0
        for p in parts {
            crc = CRC32C.combine(crc, p.crc32c, lengthB: p.bytes)
            bytes += p.bytes
        }
        return FileHash(path: first.path, crc32c: crc, bytes: bytes, errors: uniqueErrors(parts.map(\.errors)))
    }
}
