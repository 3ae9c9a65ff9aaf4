#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// NVRTC, CUDA's run-time compiler, loaded with dlopen ("libnvrtc.so.13",
/// then "libnvrtc.so"). It turns the embedded megakernel source into a CUBIN
/// for the device's own architecture.
package final class NVRTC: @unchecked Sendable {
    typealias Result32 = Int32

    /// The dynamic library it was loaded from ("libnvrtc.so.13").
    package let library: String
    /// Its version (13.0).
    package let version: (major: Int, minor: Int)
    /// Architectures this NVRTC can target, as 10 × major + minor (90 for sm_90).
    let supportedArchitectures: [Int]
    private let handle: UnsafeMutableRawPointer

    private let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Result32
    private let nvrtcGetErrorString: @convention(c) (Result32) -> UnsafePointer<CChar>?
    private let nvrtcGetNumSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Result32
    private let nvrtcGetSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Result32
    private let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Result32
    private let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> Result32
    private let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Result32
    private let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Result32
    private let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Result32
    private let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Result32
    private let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Result32

    static let libraryNames = ["libnvrtc.so.13", "libnvrtc.so"]

    /// The process-wide NVRTC, loaded on first use.
    package static let shared: Result<NVRTC, PipelineError> = Result { () throws(PipelineError) -> NVRTC in
        try NVRTC()
    }

    private init() throws(PipelineError) {
        var reasons: [String] = []
        var loaded: (UnsafeMutableRawPointer, String)? = nil
        for name in NVRTC.libraryNames {
            if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) {
                loaded = (handle, name)
                break
            }
            reasons.append(dynamicLoaderError())
        }
        guard let (handle, library) = loaded else {
            throw .backendUnavailable(
                backend: "cuda",
                reason: "cannot load NVRTC (\(reasons.joined(separator: "; "))); install the CUDA toolkit's NVRTC 13 and make it visible to the dynamic loader")
        }
        self.handle = handle
        self.library = library
        func symbol<T>(_ name: String) throws(PipelineError) -> T {
            guard let address = dlsym(handle, name) else {
                throw .backendUnavailable(backend: "cuda", reason: "\(library) has no \(name)")
            }
            return unsafeBitCast(address, to: T.self)
        }
        nvrtcVersion = try symbol("nvrtcVersion")
        nvrtcGetErrorString = try symbol("nvrtcGetErrorString")
        nvrtcGetNumSupportedArchs = try symbol("nvrtcGetNumSupportedArchs")
        nvrtcGetSupportedArchs = try symbol("nvrtcGetSupportedArchs")
        nvrtcCreateProgram = try symbol("nvrtcCreateProgram")
        nvrtcDestroyProgram = try symbol("nvrtcDestroyProgram")
        nvrtcCompileProgram = try symbol("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try symbol("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try symbol("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try symbol("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try symbol("nvrtcGetCUBIN")

        let getVersion = nvrtcVersion
        let getCount = nvrtcGetNumSupportedArchs
        let getArchs = nvrtcGetSupportedArchs
        var major: Int32 = 0
        var minor: Int32 = 0
        let versionResult = getVersion(&major, &minor)
        var count: Int32 = 0
        let countResult = getCount(&count)
        var archs = [Int32](repeating: 0, count: Int(max(count, 0)))
        let archsResult = archs.isEmpty ? 0 : archs.withUnsafeMutableBufferPointer { getArchs($0.baseAddress) }
        self.version = (Int(major), Int(minor))
        self.supportedArchitectures = archs.map(Int.init)
        try check(versionResult, "nvrtcVersion")
        try check(countResult, "nvrtcGetNumSupportedArchs")
        try check(archsResult, "nvrtcGetSupportedArchs")
    }

    private func describe(_ result: Result32) -> String {
        guard let text = nvrtcGetErrorString(result) else { return "nvrtcResult \(result)" }
        return String(cString: text)
    }

    private func check(_ result: Result32, _ call: String, log: String = "") throws(PipelineError) {
        guard result != 0 else { return }
        var message = describe(result)
        if !log.isEmpty { message += "\n" + log }
        throw .gpu(call: call, code: result, message: message)
    }

    /// The `sm_XY` this NVRTC should compile for on a device of compute
    /// capability `major.minor`: the device's own, or else the newest older
    /// one of the same major version (whose CUBIN the device also runs).
    func architecture(major: Int, minor: Int) throws(PipelineError) -> String {
        let wanted = major * 10 + minor
        if supportedArchitectures.contains(wanted) { return "sm_\(wanted)" }
        if let fallback = supportedArchitectures.filter({ $0 / 10 == major && $0 < wanted }).max() {
            return "sm_\(fallback)"
        }
        throw .backendUnavailable(
            backend: "cuda",
            reason: "NVRTC \(version.major).\(version.minor) cannot compile for sm_\(wanted) (it supports \(supportedArchitectures.map { "sm_\($0)" }.joined(separator: ", ")))")
    }

    /// A CUBIN and whatever NVRTC printed while making it (warnings; empty when clean).
    package struct Output {
        /// The compiled module, an ELF image the driver loads.
        package var cubin: [UInt8]
        /// NVRTC's log: warnings, or empty when clean.
        package var log: String
    }

    /// Compiles CUDA C++ `source` to a CUBIN; `headers` are the sources its
    /// `#include "NAME"` lines find by name. A failure carries NVRTC's whole log.
    func compile(
        source: [UInt8], name: String, headers: [KernelSource] = [], options: [String],
        diagnose: (@Sendable (String) -> PipelineError?)? = nil
    ) throws(PipelineError) -> Output
    {
        var program: OpaquePointer? = nil
        let headerTexts = headers.map { String(decoding: $0.text, as: UTF8.self) }
        let created = (source + [0]).withUnsafeBufferPointer { text in
            text.withMemoryRebound(to: CChar.self) { main in
                withCStrings(headerTexts) { texts in
                    withCStrings(headers.map(\.name)) { names in
                        nvrtcCreateProgram(&program, main.baseAddress, name, Int32(headers.count), texts, names)
                    }
                }
            }
        }
        try check(created, "nvrtcCreateProgram")
        defer { _ = nvrtcDestroyProgram(&program) }

        let compiled = withCStrings(options) { list in nvrtcCompileProgram(program, Int32(options.count), list) }
        var logSize = 0
        var log = ""
        if nvrtcGetProgramLogSize(program, &logSize) == 0, logSize > 1 {
            var buffer = [CChar](repeating: 0, count: logSize)
            if buffer.withUnsafeMutableBufferPointer({ nvrtcGetProgramLog(program, $0.baseAddress) }) == 0 {
                log = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        if compiled != 0, let diagnosed = diagnose?(log) { throw diagnosed }
        try check(
            compiled, "nvrtcCompileProgram",
            log: "options: \(options.joined(separator: " "))\n" + (log.isEmpty ? "(NVRTC printed no log)" : log))

        var cubinSize = 0
        try check(nvrtcGetCUBINSize(program, &cubinSize), "nvrtcGetCUBINSize")
        guard cubinSize > 0 else {
            throw .gpu(call: "nvrtcGetCUBINSize", code: -1, message: "NVRTC produced no CUBIN (options: \(options.joined(separator: " ")))")
        }
        var cubin = [UInt8](repeating: 0, count: cubinSize)
        let got = cubin.withUnsafeMutableBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { nvrtcGetCUBIN(program, $0.baseAddress) }
        }
        try check(got, "nvrtcGetCUBIN")
        return Output(cubin: cubin, log: log)
    }
}

/// Calls `body` with `strings` as an array of NUL-terminated C strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { for copy in copies { free(copy) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}
