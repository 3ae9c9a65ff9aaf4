import SluiceIngest

/// `--backend auto`'s rule for trees of many small files: the CPU backend.
///
/// On such a tree the run is bound by per-file system calls (open, stat,
/// read, close: about 12 us a file, spread over the cores) and by the host's
/// per-file bookkeeping, not by matching or checksumming bytes, so a GPU has
/// nothing to speed up, while its start (driver, context, pinned buffers:
/// about 0.4 s on the H100 machine, benchmarks/RESULTS.md "Start-up") adds
/// to every run. Runs 16-17 measured it: 40,000 files of 16 KiB took 706 ms
/// on CUDA and 472 ms on the CPU backend with Hyperscan.
public enum SmallFileTrees {
    /// Fewer files than this are never called a tree of small files (a GPU
    /// start pays off when a few files add up to much data).
    public static let minimumFiles = 1000
    /// The largest mean file size (over the files the walk stat-ed) of a
    /// tree of small files.
    public static let largestMeanFileBytes = 256 << 10

    /// Why `auto` should run this walk's files on the CPU backend, or nil
    /// when the GPU may pay off (few files, large ones, or sizes unknown) or
    /// is needed (cuFile, `--ingest gds`, reads only into GPU memory).
    public static func cpuReason(_ walk: FileWalker.Result, ingest: IngestChoice = .auto) -> String? {
        cpuReason(files: walk.files.count, sizedFiles: walk.sizedFiles, bytes: walk.bytes, ingest: ingest)
    }

    /// `cpuReason` for a walk's totals: `files` found, `bytes` in the
    /// `sizedFiles` whose sizes it read.
    public static func cpuReason(files: Int, sizedFiles: Int, bytes: Int, ingest: IngestChoice = .auto) -> String? {
        guard ingest != .gds, files >= minimumFiles, sizedFiles > 0 else { return nil }
        let mean = bytes / sizedFiles
        guard mean <= largestMeanFileBytes else { return nil }
        return "\(files) files of \(mean) bytes on average (sampled): per-file system calls bound "
            + "such a tree, so the CPU backend runs it (a GPU's start would not pay off)"
    }
}
