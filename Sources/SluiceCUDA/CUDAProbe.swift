import SluiceCore

/// What `CUDAProbe` found: one CUDA device. (NVRTC is not part of it: it is
/// loaded only where a kernel must be compiled, `KernelBuild`.)
public struct CUDADeviceInfo: Hashable, Sendable, CustomStringConvertible {
    /// The device's CUDA ordinal.
    public var ordinal: Int
    /// The device's name, as the driver gives it ("NVIDIA H100 80GB HBM3").
    public var name: String
    /// The device's compute capability (`sm_90` for an H100).
    public var computeCapability: ComputeCapability
    /// Streaming multiprocessors on the device.
    public var multiprocessors: Int
    /// Device memory in bytes.
    public var memoryBytes: Int
    /// The driver's CUDA version as 1000 × major + 10 × minor (13000 for 13.0).
    public var driverVersion: Int
    /// Whether the device can map host memory, where the ring and the data region live.
    public var canMapHostMemory: Bool
    /// Whether the host link supports native atomics (false over PCIe, where
    /// GPU atomics on mapped host memory were seen to be neither atomic nor
    /// reliable; the megakernel issues none there).
    public var hostNativeAtomics: Bool
    /// A display watchdog limits kernel run time; a persistent kernel cannot run there.
    public var hasKernelTimeout: Bool

    /// A CUDA compute capability: major and minor version.
    public struct ComputeCapability: Hashable, Sendable, CustomStringConvertible {
        /// Major version (9 for sm_90).
        public var major: Int
        /// Minor version (0 for sm_90).
        public var minor: Int
        /// The capability `major`.`minor`.
        public init(major: Int, minor: Int) {
            self.major = major
            self.minor = minor
        }
        /// "sm_XY", as NVRTC's `--gpu-architecture` takes it.
        public var description: String { "sm_\(major)\(minor)" }
    }

    /// The driver's CUDA version as "major.minor" ("13.0").
    public var driverVersionText: String { "\(driverVersion / 1000).\(driverVersion % 1000 / 10)" }

    /// One line: ordinal, name, capability, multiprocessors, memory in GiB, driver version.
    public var description: String {
        let gib = Double(memoryBytes) / Double(1 << 30)
        let rounded = (gib * 10).rounded() / 10
        return "CUDA device \(ordinal): \(name) (\(computeCapability), \(multiprocessors) SMs, \(rounded) GiB), "
            + "driver CUDA \(driverVersionText)"
    }

    /// Why a persistent megakernel cannot run on this device, or nil when it can.
    public var unsuitability: String? {
        if !canMapHostMemory { return "\(name) cannot map host memory, which the ring and the data region live in" }
        if hasKernelTimeout {
            return "\(name) has a kernel run-time limit (a display watchdog), which would kill the persistent kernel"
        }
        if computeCapability.major < 7 {
            return "\(name) is \(computeCapability); the megakernel needs sm_70 or newer (__nanosleep, acquire/release fences)"
        }
        return nil
    }
}

/// Says cheaply whether the CUDA backend can run here: the driver library
/// loads, a device exists and is suitable, and the megakernel is in the
/// CUBIN cache for it or NVRTC loads to compile it. Creates no context,
/// allocates nothing, and leaves NVRTC unloaded where the kernel is cached
/// (30 MiB of a process's memory); on a machine without libcuda it returns
/// `.backendUnavailable` (never crashes). Used by `--backend auto`. (A
/// kernel with user operations may still need NVRTC; the backend that
/// cannot compile it fails before it allocates its ring.)
public enum CUDAProbe {
    /// The device `ordinal`, or `backendUnavailable` saying why the CUDA backend cannot run there.
    public static func probe(device ordinal: Int = 0) -> Result<CUDADeviceInfo, PipelineError> {
        Result { () throws(PipelineError) -> CUDADeviceInfo in
            let driver = try CUDADriver.shared.get()
            let info = try deviceInfo(driver: driver, ordinal: ordinal)
            if let reason = info.unsuitability {
                throw .backendUnavailable(backend: "cuda", reason: reason)
            }
            // Without a cached megakernel the backend compiles it: NVRTC must load.
            let build = KernelBuild(
                computeCapability: (info.computeCapability.major, info.computeCapability.minor), driverVersion: info.driverVersion)
            if !build.cubinCached { _ = try NVRTC.shared.get() }
            return info
        }
    }

    package static func deviceInfo(driver: CUDADriver, ordinal: Int) throws(PipelineError) -> CUDADeviceInfo {
        let device = try driver.device(ordinal: ordinal)
        return CUDADeviceInfo(
            ordinal: ordinal,
            name: try driver.name(of: device),
            computeCapability: .init(
                major: try driver.attribute(.computeCapabilityMajor, of: device),
                minor: try driver.attribute(.computeCapabilityMinor, of: device)),
            multiprocessors: try driver.attribute(.multiprocessorCount, of: device),
            memoryBytes: try driver.totalMemory(of: device),
            driverVersion: try driver.driverVersion(),
            canMapHostMemory: try driver.attribute(.canMapHostMemory, of: device) != 0,
            hostNativeAtomics: try driver.attribute(.hostNativeAtomicSupported, of: device) != 0,
            hasKernelTimeout: try driver.attribute(.kernelExecTimeout, of: device) != 0)
    }
}
