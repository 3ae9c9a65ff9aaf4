#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem

/// `--shard I/N`: a deterministic split of an input set into N shares of
/// about equal bytes, so that N processes on N hosts (a Slurm job array, a
/// Kubernetes Indexed Job) each scan one share and their outputs together
/// are exactly one run's.
///
/// Every process computes the whole assignment from the same file list and
/// keeps its own share: largest files first, each to the share with the
/// fewest bytes so far (ties to the lower share), files of equal size
/// ordered by a hash of their path. The shares therefore partition the set
/// for any N, whatever order the paths were listed in.
public struct Shard: Hashable, Sendable, CustomStringConvertible {
    /// This process's share, in `0 ..< count`.
    public let index: Int
    /// How many shares the file list is split into (processes of the run).
    public let count: Int

    /// Share `index` of `count`; throws `invalidConfiguration` unless `0 <= index < count`.
    public init(index: Int, count: Int) throws(PipelineError) {
        guard count >= 1, index >= 0, index < count else {
            throw .invalidConfiguration("shard \(index)/\(count): the index must be in 0..<count and count at least 1")
        }
        self.index = index
        self.count = count
    }

    /// Parses "I/N".
    public init(parsing text: String) throws(PipelineError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw .invalidConfiguration("shard \(text): expected INDEX/COUNT, for example 0/4")
        }
        try self.init(index: i, count: n)
    }

    /// "I/N", as `--shard` takes it.
    public var description: String { "\(index)/\(count)" }

    /// The share each file goes to, for files with these sizes.
    public static func assignment(paths: [RawPath], sizes: [UInt64], count: Int) -> [Int] {
        precondition(paths.count == sizes.count)
        let order = paths.indices.sorted { a, b in
            if sizes[a] != sizes[b] { return sizes[a] > sizes[b] }
            let ha = pathHash(paths[a]), hb = pathHash(paths[b])
            if ha != hb { return ha < hb }
            return PathOrder.precedes(paths[a], paths[b])
        }
        var load = [UInt64](repeating: 0, count: count)
        var share = [Int](repeating: 0, count: paths.count)
        for i in order {
            // The least-loaded share; every process breaks ties the same way.
            var best = 0
            for s in 1..<max(count, 1) where load[s] < load[best] { best = s }
            share[i] = best
            load[best] += sizes[i]
        }
        return share
    }

    /// The files of `paths` that belong to this shard (sizes read with lstat;
    /// a file that cannot be examined counts as 0 bytes, so its error is still
    /// reported by exactly one process).
    public func select(_ paths: [RawPath]) -> [RawPath] {
        guard count > 1 else { return paths }
        let sizes = paths.map { p -> UInt64 in (try? p.stat(followingLinks: false)).map { UInt64($0.size) } ?? 0 }
        let shares = Shard.assignment(paths: paths, sizes: sizes, count: count)
        return paths.indices.filter { shares[$0] == index }.map { paths[$0] }
    }

    /// FNV-1a over the path's bytes: stable across runs, hosts and builds.
    static func pathHash(_ path: RawPath) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in path.bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01B3
        }
        return h
    }
}
