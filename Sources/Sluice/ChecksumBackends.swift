import SluiceIngest
import SluiceOps

/// `--backend auto`'s rule for checksums (`sluice hash`): the CPU backend
/// wherever the CPU has CRC-32C instructions.
///
/// Why: CRC-32C is a few instructions per 8 bytes there, so on every core it
/// runs at the speed the bytes arrive from the page cache or the disk, and a
/// GPU only adds the copy into its mapped buffers and its start (about 0.4 s).
/// Measured on the H100 machine (benchmarks/RESULTS.md, runs 21-22), warm:
/// 4 GiB in 0.21-0.23 s on the CPU backend against 0.47-0.69 s on CUDA, 40 GiB
/// in 0.93-1.69 s against 1.37-2.20 s; cold with `--direct`, 1.61 against
/// 1.52 GB/s. `--backend cuda` still runs it on the GPU.
public enum ChecksumBackends {
    /// Why `auto` should checksum on the CPU backend, or nil when a GPU may
    /// be better (no CRC-32C instructions: the CPU falls back to tables) or
    /// is needed (`--ingest gds` reads only into GPU memory).
    /// - Parameters:
    ///   - ingest: the configured ingest path.
    ///   - instructions: the CPU's CRC-32C instructions ("sse4.2",
    ///     "armv8-crc"), nil where it has none.
    public static func cpuReason(ingest: IngestChoice, instructions: String? = CRC32C.hardwareAvailable ? CRC32C.implementation : nil) -> String? {
        guard ingest != .gds, let instructions else { return nil }
        return "CRC-32C runs on the CPU's \(instructions) instructions at the speed bytes arrive, "
            + "so the CPU backend checksums (a GPU would add its start and a copy; backend cuda runs it there)"
    }
}
