#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// The megakernel's source, its NVRTC options and its kernel ABI.
package enum Megakernel {
    /// Kernels/megakernel.cu, embedded by SwiftPM.
    package static var source: [UInt8] { PackageResources.megakernel_cu }
    package static let sourceName = "megakernel.cu"
    /// The headers megakernel.cu includes (Kernels/sluice_*.h, embedded by
    /// SwiftPM), handed to NVRTC by name with every program that includes it.
    package static var headers: [KernelSource] {
        [
            KernelSource(name: "sluice_protocol.h", text: PackageResources.sluice_protocol_h),
            KernelSource(name: "sluice_abi.h", text: PackageResources.sluice_abi_h),
            KernelSource(name: "sluice_memory.h", text: PackageResources.sluice_memory_h),
            KernelSource(name: "sluice_counters.h", text: PackageResources.sluice_counters_h),
            KernelSource(name: "sluice_dispatcher.h", text: PackageResources.sluice_dispatcher_h),
            KernelSource(name: "sluice_worker.h", text: PackageResources.sluice_worker_h),
            KernelSource(name: "sluice_count.h", text: PackageResources.sluice_count_h),
            KernelSource(name: "sluice_crc32c.h", text: PackageResources.sluice_crc32c_h),
            KernelSource(name: "sluice_scan.h", text: PackageResources.sluice_scan_h),
        ]
    }
    static let kernelName = "sluice_megakernel"
    /// SLUICE_BLOCK_THREADS in Kernels/sluice_abi.h.
    package static let blockThreads = 256
    /// SLUICE_PARAMS_VERSION in Kernels/sluice_abi.h.
    static let paramsVersion: UInt64 = 9
    /// SLUICE_DYNAMIC_SHARED_BYTES in Kernels/sluice_abi.h: the dynamic shared
    /// memory every block of the megakernel is launched with (scan filter
    /// cache, crc tables, count histograms or the staged scan tile).
    static let dynamicSharedBytes = 108288
    /// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (cuda.h).
    static let maxDynamicSharedAttribute: Int32 = 8

    /// NVRTC options besides `--gpu-architecture=sm_XY` (which comes from the
    /// device). No `-default-device`: every function in the source names its
    /// execution space. The two ptxas options make register spills and any
    /// local-memory use print a warning, which scripts/check-kernel.py
    /// (it reads this list) turns into a CI failure.
    static let nvrtcOptions: [String] = ["-std=c++17", "--ptxas-options=--warn-on-spills", "--ptxas-options=--warn-on-local-memory-usage"]

    /// Bytes of the kernel's device-memory state (`SluiceDeviceState`), followed by
    /// one mailbox of `mailboxBytes` per slot; all zeroed before the launch.
    static let deviceStateBytes = 256
    /// SLUICE_MAILBOX_WORDS × 4: the dispatcher hands a slot to its worker through it.
    static let mailboxBytes = 64
    /// Byte offset of `SluiceDeviceState.trace` (6 × u64) in the device state.
    static let traceOffset = 88
    /// Words of `SluiceDeviceState.trace`.
    static let traceWords = 6

    /// The kernel's by-value parameter (`SluiceParams` in the source): 14 words of 64 bits.
    struct Parameters {
        var ring: UInt64
        var data: UInt64
        var dataBytes: UInt64
        var slotCount: UInt64
        var resultsOffset: UInt64
        var resultWordsTotal: UInt64
        /// Longest idle `__nanosleep` of the dispatcher warp; 0 polls without sleeping.
        var idleSleepMaxNanoseconds: UInt64
        /// Device address of the zeroed `SluiceDeviceState` (device memory): the counters.
        var state: UInt64
        /// `SLUICE_P_*` bits.
        var flags: UInt64
        /// Worker blocks; the grid is `workers + 1` (block 0 is the dispatcher).
        var workers: UInt64
        /// Dynamic shared bytes of the launch (`dynamicSharedBytes`).
        var sharedBytes: UInt64 = UInt64(Megakernel.dynamicSharedBytes)
        /// Device address of the device ingest region (device memory cuFile reads into); 0: none.
        var deviceData: UInt64 = 0
        /// Its bytes.
        var deviceDataBytes: UInt64 = 0

        /// SLUICE_P_SC_FENCES: fence.sc.sys instead of fence.acq_rel.sys for the host-facing fences.
        static let scFences: UInt64 = 1
        /// SLUICE_P_VOLATILE_POLL: volatile loads of host-written words instead of ld.global.cv.
        static let volatilePoll: UInt64 = 2
        /// SLUICE_P_WB_STORES: volatile (write-back) stores of host-read words instead of st.global.wt.
        static let writeBackStores: UInt64 = 4
        /// SLUICE_P_TEST_OPCODES: the dispatcher accepts the test-only opcodes
        /// (`BackendConfiguration.faultInjection`); without it they fault as unknown.
        static let testOpcodes: UInt64 = 8
        /// SLUICE_P_TRACE: the kernel sums each DONE slot's stage durations
        /// (`MegakernelStageTrace`) in its device state.
        static let stageTrace: UInt64 = 16
        /// SLUICE_P_LANE_CLAIMS: a lone slot is claimed by its polling lane, not the whole warp.
        static let laneClaims: UInt64 = 32

        var words: [UInt64] {
            [ring, data, dataBytes, slotCount, resultsOffset, resultWordsTotal, Megakernel.paramsVersion,
             idleSleepMaxNanoseconds, state, flags, workers, sharedBytes, deviceData, deviceDataBytes]
        }
    }
}

/// One CUDA C++ source file: the name NVRTC's messages and `#include` lines
/// call it by, and its text.
package struct KernelSource: Sendable {
    package var name: String
    package var text: [UInt8]

    package init(name: String, text: [UInt8]) {
        self.name = name
        self.text = text
    }
}

/// What `KernelBuild` compiles: a main source and the sources it includes.
package struct KernelProgram: Sendable {
    package var main: KernelSource
    package var headers: [KernelSource]
    /// Turns NVRTC's log of a failed compile into the error to report
    /// (user operations: `operationDidNotCompile`); nil, or a nil result,
    /// reports NVRTC's failure as it is.
    package var diagnose: (@Sendable (String) -> PipelineError?)?

    package init(main: KernelSource, headers: [KernelSource] = []) {
        self.main = main
        self.headers = headers
    }

    /// The production megakernel: megakernel.cu and its headers.
    package static var megakernel: KernelProgram {
        KernelProgram(main: KernelSource(name: Megakernel.sourceName, text: Megakernel.source), headers: Megakernel.headers)
    }

    /// The main source's name without `.cu`: the stem of its cache files.
    var stem: String {
        main.name.hasSuffix(".cu") ? String(main.name.dropLast(3)) : main.name
    }
}

/// Where the loaded megakernel came from.
package enum KernelOrigin: Sendable, CustomStringConvertible {
    /// Compiled now by NVRTC (`cachedAt`: where the CUBIN was saved, nil when it could not be).
    case compiled(milliseconds: Int, cachedAt: String?)
    /// Loaded from the on-disk cache.
    case cache(path: String)

    package var description: String {
        switch self {
        case .compiled(let ms, let path):
            return "compiled by NVRTC in \(ms) ms" + (path.map { ", cached at \($0)" } ?? ", not cached")
        case .cache(let path):
            return "loaded from \(path)"
        }
    }
}

/// Compiles a kernel program (the megakernel unless told otherwise) for one
/// device, or loads the CUBIN a previous run cached under
/// `$XDG_CACHE_HOME/sluice` (or `~/.cache/sluice`), keyed by a hash of the
/// sources, the options, the NVRTC version and the architecture. A cache
/// entry that is truncated, corrupt or rejected by the driver is ignored and
/// rewritten.
package struct KernelBuild {
    let nvrtc: NVRTC
    let program: KernelProgram
    let architecture: String
    let options: [String]
    let key: UInt64
    let cachePath: String?

    package init(nvrtc: NVRTC, computeCapability: (major: Int, minor: Int), program: KernelProgram = .megakernel)
        throws(PipelineError)
    {
        self.nvrtc = nvrtc
        self.program = program
        self.architecture = try nvrtc.architecture(major: computeCapability.major, minor: computeCapability.minor)
        self.options = ["--gpu-architecture=\(architecture)"] + Megakernel.nvrtcOptions
        var hash = FNV1a64()
        hash.add(KernelCache.formatTag)
        hash.add(program.main.text)
        // Every header's name and text: a change to any of them is a new key.
        for header in program.headers {
            hash.add(header.name)
            hash.add(header.text)
        }
        for option in options { hash.add(option) }
        hash.add("nvrtc \(nvrtc.version.major).\(nvrtc.version.minor)")
        hash.add(architecture)
        let key = hash.value
        let architecture = self.architecture
        let stem = program.stem
        self.key = key
        self.cachePath = KernelCache.directory().map { dir in
            let hex = String(key, radix: 16)
            return "\(dir)/\(stem)-\(architecture)-\(String(repeating: "0", count: 16 - hex.count))\(hex).cubin"
        }
    }

    /// The loaded module and where its CUBIN came from; `log` holds NVRTC's
    /// warnings when it compiled (normally empty).
    package func load(into context: CUDAContext) throws(PipelineError) -> (module: CUDAModule, origin: KernelOrigin, log: String) {
        if let path = cachePath, let image = KernelCache.load(path: path),
            let module = try? CUDAModule(context: context, image: image)
        {
            return (module, .cache(path: path), "")
        }
        let started = ContinuousClock.now
        let output = try nvrtc.compile(
            source: program.main.text, name: program.main.name, headers: program.headers, options: options,
            diagnose: program.diagnose)
        let elapsed = ContinuousClock.now - started
        let milliseconds = Int(elapsed.components.seconds) * 1000 + Int(elapsed.components.attoseconds / 1_000_000_000_000_000)
        let module = try CUDAModule(context: context, image: output.cubin)
        var saved: String? = nil
        if let path = cachePath, KernelCache.store(path: path, image: output.cubin) {
            saved = path
        }
        return (module, .compiled(milliseconds: milliseconds, cachedAt: saved), output.log)
    }
}

/// 64-bit FNV-1a.
struct FNV1a64 {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }

    /// Adds the string's UTF-8 bytes and a terminating zero, so that
    /// ["ab", "c"] and ["a", "bc"] hash apart.
    mutating func add(_ text: String) {
        add(text.utf8)
        add(CollectionOfOne(UInt8(0)))
    }

    mutating func add(_ word: UInt64) {
        add((0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) })
    }
}

/// The CUBIN cache files: an 8-byte tag, the payload length and its FNV-1a
/// hash (little-endian u64 each), then the payload. Written to a temporary
/// file and renamed into place, so a reader never sees half a file. The
/// directory holds the cost model's calibration too (`CostModel`).
package enum KernelCache {
    static let formatTag = "SLUICEK1"
    static let headerBytes = 24

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

    /// The payload of a valid cache file, nil when it is missing or does not check out.
    static func load(path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size >= headerBytes, info.st_size <= 1 << 30 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return nil }
            done += n
        }
        guard Array(bytes[0..<8]) == Array(formatTag.utf8) else { return nil }
        let length = word(bytes, at: 8)
        let checksum = word(bytes, at: 16)
        guard length == UInt64(bytes.count - headerBytes) else { return nil }
        let payload = Array(bytes[headerBytes...])
        var hash = FNV1a64()
        hash.add(payload)
        return hash.value == checksum ? payload : nil
    }

    /// Writes `image` to `path` (temporary file, then rename). False when it could not.
    static func store(path: String, image: [UInt8]) -> Bool {
        var hash = FNV1a64()
        hash.add(image)
        var bytes = Array(formatTag.utf8)
        for value in [UInt64(image.count), hash.value] {
            bytes += (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        bytes += image
        return writeAtomically(path: path, bytes: bytes) == 0
    }

    /// Writes `bytes` to a temporary file beside `path` and renames it into
    /// place. Returns 0, or the errno of the step that failed (nothing is
    /// then left behind; a write that wrote nothing counts as EIO).
    package static func writeAtomically(path: String, bytes: [UInt8]) -> Int32 {
        let temporary = "\(path).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
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

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    private static func makeDirectory(_ path: String, mode: mode_t) -> Bool {
        if mkdir(path, mode) == 0 { return true }
        guard errno == EEXIST else { return false }
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
