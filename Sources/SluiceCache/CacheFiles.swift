#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem
import SystemPackage

/// Sluice's cache directory and its files: compiled kernels (CUBINs),
/// compiled Hyperscan databases and the cost model's calibration, each kept
/// so that the next command skips work a previous one did.
///
/// A cache file is an 8-byte tag naming its kind, the payload length and
/// its FNV-1a hash (little-endian u64 each), then the payload. Files are
/// written to a temporary file and renamed into place, so a reader never
/// sees half a file; one that is truncated, corrupt or of another kind reads
/// as missing, and its writer rewrites it.
package enum CacheFiles {
    static let headerBytes = 24
    /// The largest cache file read back.
    static let largestFile = 1 << 30

    /// `$XDG_CACHE_HOME/sluice`, else `$HOME/.cache/sluice`, created if
    /// missing; nil when neither can be made (the cache is then off).
    package static func directory() -> String? {
        let base: String
        if let xdg = environment("XDG_CACHE_HOME"), xdg.hasPrefix("/") {
            base = xdg
            guard makeDirectory(base, mode: 0o700) else { return nil }
        } else if let home = environment("HOME"), home.hasPrefix("/") {
            base = home + "/.cache"
            guard makeDirectory(base, mode: 0o700) else { return nil }
        } else {
            return nil
        }
        let dir = base + "/sluice"
        return makeDirectory(dir, mode: 0o755) ? dir : nil
    }

    /// The payload of a valid cache file of kind `tag` (8 ASCII bytes), nil
    /// when it is missing, of another kind, or does not check out.
    package static func load(path: String, tag: String) -> [UInt8]? {
        guard let bytes = try? readWholeFile(path, atMost: largestFile, what: "cache file"), bytes.count >= headerBytes
        else { return nil }
        guard Array(bytes[0..<8]) == Array(tag.utf8) else { return nil }
        let length = word(bytes, at: 8)
        let checksum = word(bytes, at: 16)
        guard length == UInt64(bytes.count - headerBytes) else { return nil }
        let payload = Array(bytes[headerBytes...])
        var hash = FNV1a64()
        hash.add(payload)
        return hash.value == checksum ? payload : nil
    }

    /// Writes `payload` as a cache file of kind `tag` to `path` (temporary
    /// file, then rename) with permissions `mode`. False when it could not,
    /// or when the file would be larger than `load` reads.
    package static func store(path: String, tag: String, payload: [UInt8], mode: mode_t = 0o644) -> Bool {
        guard payload.count <= largestFile - headerBytes else { return false }
        var hash = FNV1a64()
        hash.add(payload)
        var bytes = Array(tag.utf8)
        for value in [UInt64(payload.count), hash.value] {
            bytes += (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        bytes += payload
        return writeAtomically(path: path, bytes: bytes, mode: mode) == 0
    }

    /// Writes `bytes` to a temporary file beside `path` (its own name, so
    /// that writers in other threads or processes never share one) and
    /// renames it into place. Returns 0, or the errno of the step that failed
    /// (nothing is then left behind; a write that wrote nothing counts as EIO).
    package static func writeAtomically(path: String, bytes: [UInt8], mode: mode_t = 0o644) -> Int32 {
        let temporary = "\(path).\(getpid()).\(hex(UInt64.random(in: 0...UInt64.max))).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { return errno }
        var done = 0
        var failure: Int32 = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                failure = n < 0 ? errno : EIO
                break
            }
            done += n
        }
        if close(fd) != 0, failure == 0 { failure = errno }
        if failure == 0, rename(temporary, path) == 0 { return 0 }
        if failure == 0 { failure = errno }
        unlink(temporary)
        return failure
    }

    /// Sets the file's modification time to now (`utimensat`), so that
    /// `removeOldest` counts it as recently used. Failures are ignored.
    package static func markUsed(path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    /// Removes the files of `directory` named `prefix…suffix` beyond the
    /// `keeping` most recently modified. Failures are ignored: a file
    /// another process removed first is gone either way.
    package static func removeOldest(in directory: String, prefix: String, suffix: String, keeping: Int) {
        guard let dir = opendir(directory) else { return }
        var files: [(name: String, modified: Int)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { continue }
            guard let info = try? RawPath(directory + "/" + name).stat() else { continue }
            files.append((name, Int(info.st_mtim.tv_sec) * 1_000_000_000 + Int(info.st_mtim.tv_nsec)))
        }
        closedir(dir)
        guard files.count > keeping else { return }
        for file in files.sorted(by: { $0.modified > $1.modified }).dropFirst(max(0, keeping)) {
            unlink(directory + "/" + file.name)
        }
    }

    /// `key` as 16 lower-case hex digits, for file names.
    package static func hex(_ key: UInt64) -> String {
        let digits = String(key, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// Makes `path` (one level, owner only) unless it is a directory already; false where it cannot.
    package static func ensureDirectory(_ path: String) -> Bool { makeDirectory(path, mode: 0o700) }

    private static func makeDirectory(_ path: String, mode: mode_t) -> Bool {
        if mkdir(path, mode) == 0 { return true }
        guard errno == EEXIST else { return false }
        return (try? RawPath(path).stat().type) == .directory
    }
}

/// 64-bit FNV-1a: cache keys and cache files' checksums (not a defence
/// against someone who can write the cache directory, who could change
/// anything there anyway).
package struct FNV1a64 {
    /// The hash of everything added so far.
    package private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// An empty hash.
    package init() {}

    /// Adds `bytes`.
    package mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }

    /// Adds the string's UTF-8 bytes and a terminating zero, so that
    /// ["ab", "c"] and ["a", "bc"] hash apart.
    package mutating func add(_ text: String) {
        add(text.utf8)
        add(CollectionOfOne(UInt8(0)))
    }

    /// Adds `word`'s 8 bytes, least significant first.
    package mutating func add(_ word: UInt64) {
        add((0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) })
    }
}
