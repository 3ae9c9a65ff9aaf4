#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCache

/// Whether, and where, compiled Hyperscan databases are kept for the next
/// command with the same pattern set. The files hold the literals, so they
/// are written readable by their owner only.
public enum HyperscanCaching: Sendable, Equatable {
    /// Compile every time; keep nothing.
    case off
    /// Sluice's cache directory (`$XDG_CACHE_HOME/sluice`, else
    /// `~/.cache/sluice`), beside the CUBINs; off where it cannot be made.
    case standard
    /// This directory (made, one level, where missing).
    case directory(String)

    /// The environment variable that turns the cache off (`off`) or names
    /// its directory; unset or empty: `standard`.
    public static let variable = "SLUICE_HYPERSCAN_CACHE"

    /// The caching `SLUICE_HYPERSCAN_CACHE` asks for.
    public static var configured: HyperscanCaching {
        guard let value = getenv(variable).map({ String(cString: $0) }), !value.isEmpty else { return .standard }
        return value == "off" ? .off : .directory(value)
    }
}

/// One pattern set's cache file, `hyperscan-KEY.db`: the set's description
/// (Hyperscan's version, the CPU it tunes for and the features it finds,
/// the mode and flags, and each distinct literal's pattern number, length
/// and bytes), then the database as `hs_serialize_database` wrote it.
/// A load compares the description whole, so two sets whose 64-bit keys
/// collide never share a database; Hyperscan itself refuses a database of
/// another version or platform. The directory keeps the `keep` files last
/// written or loaded; older ones are removed as a new one is written.
struct HyperscanDatabaseCache {
    static let tag = "SLUICEH1"
    static let prefix = "hyperscan-"
    static let suffix = ".db"
    /// Database files kept in the directory.
    static let keep = 32

    let directory: String
    let path: String
    let description: [UInt8]
    let library: HyperscanLibrary

    /// The cache file for `literals` under `caching`; nil where caching is off
    /// or the directory cannot be made.
    init?(_ caching: HyperscanCaching, literals: DistinctLiterals, caseInsensitive: Bool, library: HyperscanLibrary) {
        let directory: String?
        switch caching {
        case .off: directory = nil
        case .standard: directory = CacheFiles.directory()
        case .directory(let given): directory = CacheFiles.ensureDirectory(given) ? given : nil
        }
        guard let directory else { return nil }
        self.directory = directory
        description = Self.describe(
            literals, caseInsensitive: caseInsensitive, version: library.version, platform: library.platform)
        var hash = FNV1a64()
        hash.add(description)
        path = "\(directory)/\(Self.prefix)\(CacheFiles.hex(hash.value))\(Self.suffix)"
        self.library = library
    }

    /// What the database was compiled from, as bytes.
    static func describe(
        _ literals: DistinctLiterals, caseInsensitive: Bool, version: String, platform: HyperscanPlatform
    ) -> [UInt8] {
        var out = Array("sluice hyperscan literal database 1\n\(version)\n".utf8)
        func word(_ value: Int, bytes: Int) {
            out += (0..<bytes).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        word(Int(platform.tune), bytes: 4)
        word(Int(truncatingIfNeeded: platform.cpuFeatures), bytes: 8)
        word(Int(HyperscanLibrary.modeBlock), bytes: 4)
        word(Int(caseInsensitive ? HyperscanLibrary.flagCaseless : 0), bytes: 4)
        word(literals.ids.count, bytes: 8)
        for k in literals.ids.indices {
            word(Int(literals.ids[k]), bytes: 4)
            word(literals.lengths[k], bytes: 4)
            out += literals.blob[literals.starts[k]..<literals.starts[k] + literals.lengths[k]]
        }
        return out
    }

    /// The cached database, nil where there is none for this set that
    /// Hyperscan takes. A hit marks the file as used now, so it is kept.
    func load() -> OpaquePointer? {
        guard let payload = CacheFiles.load(path: path, tag: Self.tag), payload.count > description.count,
            payload.starts(with: description)
        else { return nil }
        var database: OpaquePointer? = nil
        let result = payload.withUnsafeBytes { raw in
            library.hs_deserialize_database(
                (raw.baseAddress! + description.count).assumingMemoryBound(to: CChar.self), raw.count - description.count,
                &database)
        }
        guard result == HyperscanLibrary.success, let database else { return nil }
        CacheFiles.markUsed(path: path)
        return database
    }

    /// Writes `database` to the cache file, then trims the directory to
    /// `keep` databases. False where it could not be written.
    func store(_ database: OpaquePointer) -> Bool {
        var bytes: UnsafeMutablePointer<CChar>? = nil
        var length = 0
        guard library.hs_serialize_database(database, &bytes, &length) == HyperscanLibrary.success, let bytes else {
            return false
        }
        defer { free(bytes) }
        let serialized = UnsafeRawBufferPointer(start: bytes, count: length)
        guard CacheFiles.store(path: path, tag: Self.tag, payload: description + Array(serialized), mode: 0o600) else {
            return false
        }
        CacheFiles.removeOldest(in: directory, prefix: Self.prefix, suffix: Self.suffix, keeping: Self.keep)
        return true
    }
}
