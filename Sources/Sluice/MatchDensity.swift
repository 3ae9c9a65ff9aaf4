import SluiceCore
import SluiceIngest
import SluiceOps
import SystemPackage

/// How often a scan's literals match in its input, from a small sample,
/// for the cost model (`CostModel.BackendCosts.matchSeconds`): on a dense
/// pattern set, storing and counting matches, not reading bytes, sets a
/// backend's pace, and the CPU pays far more per match than the GPU.
public enum MatchDensity {
    /// Bytes of one sampled piece.
    public static let pieceBytes = 64 << 10
    /// Pieces sampled at most, one per file.
    public static let maxPieces = 4

    /// Matches per byte in up to `maxPieces` pieces of `pieceBytes`, one from
    /// the middle of each of the first files of `paths` that can be read,
    /// matched on this thread with the built-in matcher (a few milliseconds);
    /// nil when nothing could be read.
    public static func sample(_ paths: [RawPath], table: ScanTable) -> Double? {
        table.words.withUnsafeBufferPointer { words -> Double? in
            guard let view = try? ScanTableView(words) else { return nil }
            var matches = 0
            var bytes = 0
            var buffer = [UInt8](repeating: 0, count: pieceBytes)
            for path in paths {
                guard bytes < maxPieces * pieceBytes else { break }
                guard let read = readMiddle(of: path, into: &buffer), read > 0 else { continue }
                buffer.withUnsafeBytes { all in
                    let piece = UnsafeRawBufferPointer(rebasing: all[0..<read])
                    ScanOp.forEachMatch(table: view, chunk: piece, startLimit: read) { _, _ in matches += 1 }
                }
                bytes += read
            }
            return bytes > 0 ? Double(matches) / Double(bytes) : nil
        }
    }

    /// Reads up to a buffer's worth from the middle of the input at `path`,
    /// opened as the scan will open it (`InputSource`: a named stream the
    /// walk copied is read from its copy, never opened again; a procfs file
    /// from a copy of it); nil where it cannot be opened or read (the run
    /// itself will say why).
    static func readMiddle(of path: RawPath, into buffer: inout [UInt8]) -> Int? {
        guard let (fd, stamp) = try? InputSource.open(path: path, direct: false) else { return nil }
        defer { try? fd.close() }
        let offset = max(0, Int64(stamp.size / 2) - Int64(buffer.count / 2))
        return try? buffer.withUnsafeMutableBytes { try fd.read(fromAbsoluteOffset: offset, into: $0) }
    }
}
