// Hyperscan (libhs.so.5, loaded at run time by SluiceHyperscan) as a second
// matcher behind the scan opcode. Where the library does not load, the
// targets simply skip the Hyperscan runs.
import SluiceCore
import SluiceHyperscan
import SluiceOps

nonisolated(unsafe) private var matcherCache: [MatcherKey: HyperscanMatcher] = [:]

private struct MatcherKey: Hashable {
    var literals: [[UInt8]]
    var caseInsensitive: Bool
}

/// A compiled matcher for the set with one scratch region, or nil when the
/// library does not load or cannot compile the set. Compiling costs
/// milliseconds, so the last few sets are kept (the fuzzer repeats them often).
public func hyperscanMatcher(literals: [[UInt8]], caseInsensitive: Bool) -> HyperscanMatcher? {
    guard case .success(let library) = HyperscanLibrary.shared else { return nil }
    let key = MatcherKey(literals: literals, caseInsensitive: caseInsensitive)
    if let m = matcherCache[key] { return m }
    guard let set = try? PatternSet(literals: literals, caseInsensitive: caseInsensitive),
        let matcher = try? HyperscanMatcher(set, workers: 1, library: library)
    else { return nil }
    if matcherCache.count >= 64 { matcherCache.removeAll() }
    matcherCache[key] = matcher
    return matcher
}
