import SluiceHyperscan
import SluiceOps

extension PatternSet {
    /// Whether a compiled Hyperscan database of this set is in the cache
    /// that scans use (`SLUICE_HYPERSCAN_CACHE`), so that a CPU scan with
    /// Hyperscan skips the compile; false where Hyperscan does not load.
    public var hyperscanDatabaseCached: Bool {
        guard case .success(let library) = HyperscanLibrary.shared else { return false }
        return HyperscanDatabase.isCached(self, library: library, caching: .configured)
    }
}
