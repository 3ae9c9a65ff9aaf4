#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem

// Hyperscan (or Vectorscan, its portable fork with the same ABI), loaded with
// dlopen("libhs.so.5") so that Sluice has no build-time dependency on it and
// runs with its own matcher where it is not installed.
//
// Only this target touches raw Hyperscan handles; each has one owner type
// (HyperscanDatabase, HyperscanScratch) that frees it in deinit.

typealias HSError = Int32

/// `match_event_handler`: (id, from, to, flags, context) -> non-zero to stop.
typealias HSMatchHandler = @convention(c) (UInt32, UInt64, UInt64, UInt32, UnsafeMutableRawPointer?) -> Int32

/// The Hyperscan entry points Sluice uses, as typed C function pointers.
public final class HyperscanLibrary: @unchecked Sendable {
    // hs_error_t values (hs_common.h).
    static let success: HSError = 0
    // Compile flags and modes (hs_compile.h).
    static let flagCaseless: UInt32 = 1
    static let modeBlock: UInt32 = 1

    /// The soname loaded unless `SLUICE_HYPERSCAN_LIBRARY` names another file.
    public static let defaultLibrary = "libhs.so.5"
    /// Environment variable naming the library to load instead (a path or a soname).
    public static let libraryVariable = "SLUICE_HYPERSCAN_LIBRARY"
    /// What to install where the library is missing.
    public static let installHint = "install libhyperscan5 or libvectorscan5"

    /// The name it was loaded by.
    public let library: String
    /// The file the dynamic loader resolved it to (nil when it cannot tell).
    public let path: String?
    /// `hs_version()`: "5.4.0 2021-01-26" (version and build date).
    public let version: String
    private let handle: UnsafeMutableRawPointer

    let hs_compile_lit_multi: @convention(c) (
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UInt32>?, UnsafePointer<UInt32>?, UnsafePointer<Int>?,
        UInt32, UInt32, OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> HSError
    /// Takes an `hs_compile_error_t *` (read through `CompileError`).
    let hs_free_compile_error: @convention(c) (UnsafeMutableRawPointer?) -> HSError
    let hs_free_database: @convention(c) (OpaquePointer?) -> HSError
    let hs_alloc_scratch: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?) -> HSError
    let hs_clone_scratch: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>?) -> HSError
    let hs_free_scratch: @convention(c) (OpaquePointer?) -> HSError
    let hs_scan: @convention(c) (
        OpaquePointer?, UnsafePointer<CChar>?, UInt32, UInt32, OpaquePointer?, HSMatchHandler?, UnsafeMutableRawPointer?
    ) -> HSError
    /// Writes a database's bytes to memory Hyperscan allocates with `malloc` (its default misc allocator).
    let hs_serialize_database: @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, UnsafeMutablePointer<Int>?
    ) -> HSError
    let hs_deserialize_database: @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutablePointer<OpaquePointer?>?) -> HSError
    let hs_version: @convention(c) () -> UnsafePointer<CChar>?
    let hs_populate_platform: @convention(c) (UnsafeMutableRawPointer?) -> HSError
    /// What `hs_populate_platform` finds here: what a database compiled
    /// here is tuned for, which the cache key holds.
    private(set) var platform = HyperscanPlatform(tune: 0, cpuFeatures: 0)
    let hs_valid_platform: @convention(c) () -> HSError

    /// The process-wide library: `SLUICE_HYPERSCAN_LIBRARY` if set, else
    /// libhs.so.5; loaded and checked (hs_valid_platform) on first use.
    public static let shared: Result<HyperscanLibrary, PipelineError> = Result { () throws(PipelineError) -> HyperscanLibrary in
        let override = getenv(libraryVariable).map { String(cString: $0) } ?? ""
        return try HyperscanLibrary(library: override.isEmpty ? defaultLibrary : override)
    }

    /// Whether Hyperscan can be used here (for test traits and the doctor).
    public static var isAvailable: Bool {
        if case .success = shared { return true }
        return false
    }

    /// Why it cannot be used here, or nil when it can.
    public static var unavailableReason: String? {
        guard case .failure(let e) = shared else { return nil }
        if case .backendUnavailable(_, let reason) = e { return reason }
        return e.message
    }

    /// Loads `library` (a soname or a path). Each call dlopens it once more;
    /// use `shared` outside tests.
    public init(library: String) throws(PipelineError) {
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            let detail = loaderError()
            throw .backendUnavailable(
                backend: "hyperscan",
                reason: detail.contains("No such file")
                    ? "\(library) not found: \(HyperscanLibrary.installHint)"
                    : "\(library) cannot be loaded (\(detail)): \(HyperscanLibrary.installHint)")
        }
        self.library = library
        self.handle = handle
        func symbol<T>(_ name: String) throws(PipelineError) -> T {
            guard let address = dlsym(handle, name) else {
                dlclose(handle)
                throw .backendUnavailable(
                    backend: "hyperscan",
                    reason: "\(library) has no \(name); Hyperscan 5.2 or later (or Vectorscan) is needed")
            }
            return unsafeBitCast(address, to: T.self)
        }
        hs_compile_lit_multi = try symbol("hs_compile_lit_multi")
        hs_free_compile_error = try symbol("hs_free_compile_error")
        hs_free_database = try symbol("hs_free_database")
        hs_alloc_scratch = try symbol("hs_alloc_scratch")
        hs_clone_scratch = try symbol("hs_clone_scratch")
        hs_free_scratch = try symbol("hs_free_scratch")
        hs_scan = try symbol("hs_scan")
        hs_serialize_database = try symbol("hs_serialize_database")
        hs_deserialize_database = try symbol("hs_deserialize_database")
        hs_populate_platform = try symbol("hs_populate_platform")
        let versionCall: @convention(c) () -> UnsafePointer<CChar>? = try symbol("hs_version")
        let platformCall: @convention(c) () -> HSError = try symbol("hs_valid_platform")
        hs_version = versionCall
        hs_valid_platform = platformCall
        let version = versionCall().map { String(cString: $0) } ?? "unknown version"
        self.version = version
        path = HyperscanLibrary.resolvedPath(of: handle, symbol: "hs_scan")
        guard platformCall() == HyperscanLibrary.success else {
            dlclose(handle)
            throw .backendUnavailable(
                backend: "hyperscan",
                reason: "\(library) \(version) loaded, but this CPU lacks the instructions it needs (SSSE3 at least)")
        }
        platform = HyperscanPlatform.populate(hs_populate_platform)
    }

    /// A one-line name for reports: "Hyperscan/Vectorscan 5.4.0 2021-01-26 (/usr/lib/.../libhs.so.5.4.0)".
    /// The two share the soname and the version format, so which one it is
    /// shows in the file name, if anywhere.
    public var description: String {
        "Hyperscan/Vectorscan \(version) (\(path ?? library))"
    }

    /// The message Hyperscan attaches to an error code (hs_common.h).
    static func describe(_ code: HSError) -> String {
        switch code {
        case -1: return "HS_INVALID: a parameter was invalid"
        case -2: return "HS_NOMEM: a memory allocation failed"
        case -3: return "HS_SCAN_TERMINATED"
        case -4: return "HS_COMPILER_ERROR"
        case -5: return "HS_DB_VERSION_ERROR: the database was built for another version"
        case -6: return "HS_DB_PLATFORM_ERROR: the database was built for another platform"
        case -7: return "HS_DB_MODE_ERROR: the database was built for another mode"
        case -8: return "HS_BAD_ALIGN: a parameter was not correctly aligned"
        case -9: return "HS_BAD_ALLOC: the allocator did not return aligned memory"
        case -10: return "HS_SCRATCH_IN_USE: the scratch region was already in use"
        case -11: return "HS_ARCH_ERROR: this CPU is not supported"
        case -12: return "HS_INSUFFICIENT_SPACE"
        case -13: return "HS_UNKNOWN_ERROR"
        default: return "hs_error_t \(code)"
        }
    }

    /// The file `symbol` was found in: the mapping of /proc/self/maps that
    /// holds its address (dladdr is not visible to Swift on glibc).
    private static func resolvedPath(of handle: UnsafeMutableRawPointer, symbol: String) -> String? {
        guard let address = dlsym(handle, symbol).map({ UInt(bitPattern: $0) }),
            let maps = readSmallTextFile("/proc/self/maps", limit: 64 << 20)
        else { return nil }
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            let range = fields.first?.split(separator: "-") ?? []
            guard fields.count >= 6, range.count == 2, let low = UInt(range[0], radix: 16),
                let high = UInt(range[1], radix: 16), low <= address, address < high
            else { continue }
            return fields[5...].joined(separator: " ")
        }
        return nil
    }

    // The library stays loaded for the life of the process: databases and
    // scratch regions made from it may outlive any one owner.
}

/// What `hs_populate_platform` reports: `hs_platform_info_t` { unsigned int
/// tune; unsigned long long cpu_features; two reserved words }.
struct HyperscanPlatform: Equatable {
    var tune: UInt32
    var cpuFeatures: UInt64

    /// This machine's, or zeros where Hyperscan does not say.
    static func populate(_ call: @convention(c) (UnsafeMutableRawPointer?) -> HSError) -> HyperscanPlatform {
        let info = UnsafeMutableRawPointer.allocate(byteCount: 32, alignment: 8)
        defer { info.deallocate() }
        info.initializeMemory(as: UInt8.self, repeating: 0, count: 32)
        guard call(info) == HyperscanLibrary.success else { return HyperscanPlatform(tune: 0, cpuFeatures: 0) }
        return HyperscanPlatform(tune: info.load(as: UInt32.self), cpuFeatures: info.load(fromByteOffset: 8, as: UInt64.self))
    }
}

/// Reads an `hs_compile_error_t` { char *message; int expression; }.
struct CompileError {
    let raw: UnsafeMutableRawPointer

    var message: String? {
        raw.load(as: UnsafePointer<CChar>?.self).map { String(cString: $0) }
    }

    var expression: Int {
        Int(raw.load(fromByteOffset: MemoryLayout<UnsafeRawPointer>.stride, as: Int32.self))
    }
}

/// The text of the last dynamic-loader error.
private func loaderError() -> String {
    guard let text = dlerror() else { return "no reason given" }
    return String(cString: text)
}
