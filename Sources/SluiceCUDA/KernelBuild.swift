#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCache
import SluiceCore
import SluiceSystem

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
    /// Compiled now by NVRTC (`compiler`: "NVRTC 13.0 for sm_90"; `cachedAt`:
    /// where the CUBIN was saved, nil when it was not).
    case compiled(milliseconds: Int, compiler: String, cachedAt: String?)
    /// Loaded from the on-disk cache.
    case cache(path: String)

    package var description: String {
        switch self {
        case .compiled(let ms, let compiler, let path):
            return "compiled by \(compiler) in \(ms) ms" + (path.map { ", cached at \($0)" } ?? ", not cached")
        case .cache(let path):
            return "loaded from \(path)"
        }
    }
}

/// Compiles a kernel program (the megakernel unless told otherwise) for one
/// device, or loads the CUBIN a previous run cached under
/// `$XDG_CACHE_HOME/sluice` (or `~/.cache/sluice`), keyed by a hash of the
/// sources, the options, the device's architecture and the driver's version
/// (a driver update compiles again). NVRTC is loaded only to compile, where
/// the cache has no CUBIN the driver takes: a process that finds its kernel
/// cached never maps NVRTC's 30 MiB. An NVRTC update does not change the
/// key (NVRTC is not loaded to ask its version): removing the cache's
/// `.cubin` files compiles with it. A build for another architecture than
/// the device's (an NVRTC that cannot target it) is not cached, so a newer
/// NVRTC builds the device's own. A cache entry that is truncated, corrupt
/// or rejected by the driver is ignored and rewritten.
package struct KernelBuild {
    /// The tag of CUBIN cache files (`CacheFiles`).
    static let cacheTag = "SLUICEK1"
    let program: KernelProgram
    /// The device's own architecture, "sm_XY": what the kernel is built and cached for.
    let architecture: String
    /// The options, `--gpu-architecture` of the device's own architecture first (an
    /// NVRTC that cannot target it compiles for the nearest it can, `NVRTC.architecture`).
    let options: [String]
    let key: UInt64
    let cachePath: String?
    private let computeCapability: (major: Int, minor: Int)

    package init(computeCapability: (major: Int, minor: Int), driverVersion: Int, program: KernelProgram = .megakernel) {
        self.program = program
        self.computeCapability = computeCapability
        self.architecture = "sm_\(computeCapability.major * 10 + computeCapability.minor)"
        self.options = ["--gpu-architecture=\(architecture)"] + Megakernel.nvrtcOptions
        var hash = FNV1a64()
        hash.add(KernelBuild.cacheTag)
        hash.add(program.main.text)
        // Every header's name and text: a change to any of them is a new key.
        for header in program.headers {
            hash.add(header.name)
            hash.add(header.text)
        }
        for option in options { hash.add(option) }
        hash.add(architecture)
        hash.add("driver \(driverVersion)")
        let key = hash.value
        let architecture = self.architecture
        let stem = program.stem
        self.key = key
        self.cachePath = CacheFiles.directory().map { "\($0)/\(stem)-\(architecture)-\(CacheFiles.hex(key)).cubin" }
    }

    /// Whether the cache holds a CUBIN for this build (which the driver may
    /// still refuse): where it does not, loading it needs NVRTC.
    package var cubinCached: Bool {
        guard let path = cachePath else { return false }
        return (try? RawPath(path).stat().type) == .regular
    }

    /// The loaded module and where its CUBIN came from; `log` holds NVRTC's
    /// warnings when it compiled (normally empty).
    package func load(into context: CUDAContext) throws(PipelineError) -> (module: CUDAModule, origin: KernelOrigin, log: String) {
        if let path = cachePath, let image = CacheFiles.load(path: path, tag: KernelBuild.cacheTag),
            let module = try? CUDAModule(context: context, image: image)
        {
            return (module, .cache(path: path), "")
        }
        let started = ContinuousClock.now
        let (output, compiler, ownArchitecture) = try compileNamingTheCompiler()
        let elapsed = ContinuousClock.now - started
        let milliseconds = Int(elapsed.components.seconds) * 1000 + Int(elapsed.components.attoseconds / 1_000_000_000_000_000)
        let module = try CUDAModule(context: context, image: output.cubin)
        var saved: String? = nil
        if ownArchitecture, let path = cachePath, CacheFiles.store(path: path, tag: KernelBuild.cacheTag, payload: output.cubin) {
            saved = path
        }
        return (module, .compiled(milliseconds: milliseconds, compiler: compiler, cachedAt: saved), output.log)
    }

    /// The program compiled by NVRTC (loaded now, if this process has not
    /// yet) for the device's architecture, or the nearest it can target.
    package func compile() throws(PipelineError) -> NVRTC.Output {
        try compileNamingTheCompiler().output
    }

    /// `compile()`, with "NVRTC 13.0 for sm_90" and whether that is the device's own architecture.
    private func compileNamingTheCompiler() throws(PipelineError) -> (output: NVRTC.Output, compiler: String, ownArchitecture: Bool) {
        let nvrtc = try NVRTC.shared.get()
        let target = try nvrtc.architecture(major: computeCapability.major, minor: computeCapability.minor)
        let output = try nvrtc.compile(
            source: program.main.text, name: program.main.name, headers: program.headers,
            options: ["--gpu-architecture=\(target)"] + options.dropFirst(), diagnose: program.diagnose)
        let compiler = "NVRTC \(nvrtc.version.major).\(nvrtc.version.minor) for \(target)"
            + (target == architecture ? "" : " (it cannot target the device's \(architecture))")
        return (output, compiler, target == architecture)
    }
}
