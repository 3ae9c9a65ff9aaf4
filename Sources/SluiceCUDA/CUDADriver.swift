#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

// The CUDA driver API, loaded with dlopen("libcuda.so.1") so that the binary
// has no link-time dependency on CUDA and runs (with the CPU backend) where
// there is no driver. Symbols are resolved by the versioned names that
// cuda.h maps the API names to (cuMemAlloc -> cuMemAlloc_v2, ...).
//
// Only this file and CUDAResources.swift touch raw driver handles.

package typealias CUresult = Int32
typealias CUdevice = Int32
package typealias CUdeviceptr = UInt64

/// The driver API's entry points as typed C function pointers.
package final class CUDADriver: @unchecked Sendable {
    // CUresult values the wrappers branch on (cuda.h).
    static let success: CUresult = 0
    /// CUDA_ERROR_INVALID_VALUE.
    package static let errorInvalidValue: CUresult = 1
    /// CUDA_ERROR_OUT_OF_MEMORY: host or device memory refused (pinning,
    /// registration, allocation).
    package static let errorOutOfMemory: CUresult = 2
    static let errorNotReady: CUresult = 600

    /// Results after which the context is unusable ("sticky" errors of a
    /// kernel: illegal address 700, launch timeout 702, assert 710, hardware
    /// stack error 714, illegal instruction 715, misaligned address 716,
    /// invalid address space 717, invalid PC 718, launch failed 719): every
    /// later call in the context returns the same error, so the only way on
    /// is to destroy the context and make a new one.
    static let stickyErrors: Set<CUresult> = [700, 702, 710, 714, 715, 716, 717, 718, 719]

    // CUdevice_attribute values (cuda.h).
    enum DeviceAttribute: Int32 {
        case maxThreadsPerBlock = 1
        case multiprocessorCount = 16
        case kernelExecTimeout = 17
        case canMapHostMemory = 19
        case computeMode = 20
        case unifiedAddressing = 41
        case computeCapabilityMajor = 75
        case computeCapabilityMinor = 76
        case hostNativeAtomicSupported = 86
        case maxSharedMemoryPerBlockOptin = 97
    }

    // CUfunction_attribute values (cuda.h).
    enum FunctionAttribute: Int32 {
        case maxThreadsPerBlock = 0
        case sharedSizeBytes = 1
        case localSizeBytes = 3
        case numRegisters = 4
    }

    // Flags (cuda.h).
    static let memHostAllocPortable: UInt32 = 0x01
    static let memHostAllocDeviceMap: UInt32 = 0x02
    static let memHostRegisterPortable: UInt32 = 0x01
    static let memHostRegisterDeviceMap: UInt32 = 0x02
    static let streamNonBlocking: UInt32 = 0x01
    static let eventDisableTiming: UInt32 = 0x02

    let library: String
    private let handle: UnsafeMutableRawPointer

    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>?) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>?, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>?, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRelease: @convention(c) (CUdevice) -> CUresult
    let cuDevicePrimaryCtxReset: @convention(c) (CUdevice) -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>?, UnsafeMutablePointer<Int>?) -> CUresult
    let cuCtxPushCurrent: @convention(c) (OpaquePointer?) -> CUresult
    let cuCtxPopCurrent: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    package let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int) -> CUresult
    package let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, OpaquePointer?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, OpaquePointer?) -> CUresult
    package let cuMemsetD32: @convention(c) (CUdeviceptr, UInt32, Int) -> CUresult
    let cuMemsetD32Async: @convention(c) (CUdeviceptr, UInt32, Int, OpaquePointer?) -> CUresult
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int, UInt32) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    let cuMemHostRegister: @convention(c) (UnsafeMutableRawPointer?, Int, UInt32) -> CUresult
    let cuMemHostUnregister: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    let cuMemHostGetDevicePointer: @convention(c) (UnsafeMutablePointer<CUdeviceptr>?, UnsafeMutableRawPointer?, UInt32) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UnsafeRawPointer?) -> CUresult
    let cuModuleUnload: @convention(c) (OpaquePointer?) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, OpaquePointer?, UnsafePointer<CChar>?) -> CUresult
    let cuFuncGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>?, Int32, OpaquePointer?) -> CUresult
    let cuFuncSetAttribute: @convention(c) (OpaquePointer?, Int32, Int32) -> CUresult
    let cuOccupancyMaxActiveBlocksPerMultiprocessor: @convention(c) (UnsafeMutablePointer<Int32>?, OpaquePointer?, Int32, Int) -> CUresult
    package let cuLaunchKernel: @convention(c) (
        OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32) -> CUresult
    let cuStreamDestroy: @convention(c) (OpaquePointer?) -> CUresult
    let cuStreamQuery: @convention(c) (OpaquePointer?) -> CUresult
    package let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>?, UInt32) -> CUresult
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    let cuEventQuery: @convention(c) (OpaquePointer?) -> CUresult
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuEventDestroy: @convention(c) (OpaquePointer?) -> CUresult

    /// The process-wide driver, loaded and initialized (cuInit) on first use.
    package static let shared: Result<CUDADriver, PipelineError> = Result { () throws(PipelineError) -> CUDADriver in
        try CUDADriver(library: "libcuda.so.1")
    }

    private init(library: String) throws(PipelineError) {
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            throw .backendUnavailable(
                backend: "cuda", reason: "cannot load \(library) (\(dynamicLoaderError())); no NVIDIA driver is installed here")
        }
        self.library = library
        self.handle = handle
        func symbol<T>(_ name: String) throws(PipelineError) -> T {
            guard let address = dlsym(handle, name) else {
                throw .backendUnavailable(
                    backend: "cuda", reason: "\(library) has no \(name); the NVIDIA driver is too old for Sluice")
            }
            return unsafeBitCast(address, to: T.self)
        }
        cuInit = try symbol("cuInit")
        cuDriverGetVersion = try symbol("cuDriverGetVersion")
        cuGetErrorName = try symbol("cuGetErrorName")
        cuGetErrorString = try symbol("cuGetErrorString")
        cuDeviceGetCount = try symbol("cuDeviceGetCount")
        cuDeviceGet = try symbol("cuDeviceGet")
        cuDeviceGetName = try symbol("cuDeviceGetName")
        cuDeviceGetAttribute = try symbol("cuDeviceGetAttribute")
        cuDeviceTotalMem = try symbol("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try symbol("cuDevicePrimaryCtxRetain")
        cuDevicePrimaryCtxRelease = try symbol("cuDevicePrimaryCtxRelease_v2")
        cuDevicePrimaryCtxReset = try symbol("cuDevicePrimaryCtxReset_v2")
        cuMemGetInfo = try symbol("cuMemGetInfo_v2")
        cuCtxPushCurrent = try symbol("cuCtxPushCurrent_v2")
        cuCtxPopCurrent = try symbol("cuCtxPopCurrent_v2")
        cuMemAlloc = try symbol("cuMemAlloc_v2")
        cuMemFree = try symbol("cuMemFree_v2")
        cuMemcpyHtoD = try symbol("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try symbol("cuMemcpyDtoH_v2")
        cuMemcpyHtoDAsync = try symbol("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try symbol("cuMemcpyDtoHAsync_v2")
        cuMemsetD32 = try symbol("cuMemsetD32_v2")
        cuMemsetD32Async = try symbol("cuMemsetD32Async")
        cuMemHostAlloc = try symbol("cuMemHostAlloc")
        cuMemFreeHost = try symbol("cuMemFreeHost")
        cuMemHostRegister = try symbol("cuMemHostRegister_v2")
        cuMemHostUnregister = try symbol("cuMemHostUnregister")
        cuMemHostGetDevicePointer = try symbol("cuMemHostGetDevicePointer_v2")
        cuModuleLoadData = try symbol("cuModuleLoadData")
        cuModuleUnload = try symbol("cuModuleUnload")
        cuModuleGetFunction = try symbol("cuModuleGetFunction")
        cuFuncGetAttribute = try symbol("cuFuncGetAttribute")
        cuFuncSetAttribute = try symbol("cuFuncSetAttribute")
        cuOccupancyMaxActiveBlocksPerMultiprocessor = try symbol("cuOccupancyMaxActiveBlocksPerMultiprocessor")
        cuLaunchKernel = try symbol("cuLaunchKernel")
        cuStreamCreate = try symbol("cuStreamCreate")
        cuStreamDestroy = try symbol("cuStreamDestroy_v2")
        cuStreamQuery = try symbol("cuStreamQuery")
        cuStreamSynchronize = try symbol("cuStreamSynchronize")
        cuEventCreate = try symbol("cuEventCreate")
        cuEventRecord = try symbol("cuEventRecord")
        cuEventQuery = try symbol("cuEventQuery")
        cuEventSynchronize = try symbol("cuEventSynchronize")
        cuEventDestroy = try symbol("cuEventDestroy_v2")
        try check(cuInit(0), "cuInit")
    }

    /// "CUDA_ERROR_NAME: description" for a driver result.
    func describe(_ result: CUresult) -> String {
        var name: UnsafePointer<CChar>? = nil
        var text: UnsafePointer<CChar>? = nil
        let nameText = cuGetErrorName(result, &name) == CUDADriver.success && name != nil
            ? String(cString: name!) : "CUresult \(result)"
        let detail = cuGetErrorString(result, &text) == CUDADriver.success && text != nil
            ? String(cString: text!) : "unknown error"
        return "\(nameText): \(detail)"
    }

    /// Turns a non-success result into `PipelineError.gpu` naming the call.
    @inline(__always)
    /// A query's answer (`cuStreamQuery`, `cuEventQuery`): false while the
    /// work runs (CUDA_ERROR_NOT_READY), true once it finished; any other
    /// result is the error it ended with.
    func finished(_ result: CUresult, _ call: String) throws(PipelineError) -> Bool {
        if result == CUDADriver.errorNotReady { return false }
        try check(result, call)
        return true
    }

    package func check(_ result: CUresult, _ call: String) throws(PipelineError) {
        if result != CUDADriver.success {
            throw .gpu(call: call, code: result, message: describe(result))
        }
    }

    // MARK: queries that need no context

    func driverVersion() throws(PipelineError) -> Int {
        var version: Int32 = 0
        try check(cuDriverGetVersion(&version), "cuDriverGetVersion")
        return Int(version)
    }

    func deviceCount() throws(PipelineError) -> Int {
        var count: Int32 = 0
        try check(cuDeviceGetCount(&count), "cuDeviceGetCount")
        return Int(count)
    }

    func device(ordinal: Int) throws(PipelineError) -> CUdevice {
        let count = try deviceCount()
        guard ordinal >= 0, ordinal < count else {
            throw .backendUnavailable(
                backend: "cuda", reason: count == 0 ? "no CUDA device is visible" : "CUDA device \(ordinal) does not exist (\(count) visible)")
        }
        var device: CUdevice = 0
        try check(cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet")
        return device
    }

    func attribute(_ attribute: DeviceAttribute, of device: CUdevice) throws(PipelineError) -> Int {
        var value: Int32 = 0
        try check(cuDeviceGetAttribute(&value, attribute.rawValue, device), "cuDeviceGetAttribute")
        return Int(value)
    }

    func name(of device: CUdevice) throws(PipelineError) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let result = buffer.withUnsafeMutableBufferPointer { cuDeviceGetName($0.baseAddress, Int32($0.count - 1), device) }
        try check(result, "cuDeviceGetName")
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func totalMemory(of device: CUdevice) throws(PipelineError) -> Int {
        var bytes = 0
        try check(cuDeviceTotalMem(&bytes, device), "cuDeviceTotalMem_v2")
        return bytes
    }
}

/// The text of the last dynamic-loader error.
func dynamicLoaderError() -> String {
    guard let text = dlerror() else { return "no reason given" }
    return String(cString: text)
}
