#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// What GPUDirect Storage can do here, found without opening the driver.
public struct CuFileCapability: Sendable {
    /// Whether `libcufile.so.0` loads.
    public var libraryLoads: Bool
    /// The loader's message when it does not.
    public var loadError: String?
    /// Whether the `nvidia-fs` kernel module is loaded (the classic GDS path).
    public var nvidiaFSLoaded: Bool

    public init(libraryLoads: Bool, loadError: String?, nvidiaFSLoaded: Bool) {
        self.libraryLoads = libraryLoads
        self.loadError = loadError
        self.nvidiaFSLoaded = nvidiaFSLoaded
    }
    /// True GPUDirect (storage DMA straight into GPU memory) needs the library
    /// and a kernel path for peer DMA; without them cuFile still works, in
    /// compatibility mode, through POSIX reads and a bounce buffer.
    public var isDirect: Bool { libraryLoads && nvidiaFSLoaded }

    public var summary: String {
        guard libraryLoads else { return "cuFile not available (\(loadError ?? "libcufile.so.0 not found"))" }
        if isDirect { return "cuFile loaded, nvidia-fs loaded: GPUDirect can be direct" }
        return "cuFile loaded, nvidia-fs not loaded: compatibility mode only (POSIX reads through a bounce buffer, not direct)"
    }

    /// What would enable the direct path, or nil when it is enabled.
    public var toEnable: String? {
        if !libraryLoads { return "install the CUDA toolkit's cuFile (libcufile.so.0) for --ingest gds" }
        if !nvidiaFSLoaded { return "load the nvidia-fs module (GPUDirect Storage) and put the data on a GDS-capable NVMe filesystem" }
        return nil
    }
}

/// Probes cuFile and the nvidia-fs module.
public enum CuFileProbe {
    public static func capability() -> CuFileCapability {
        var loads = false
        var error: String?
        if let handle = dlopen("libcufile.so.0", RTLD_NOW | RTLD_LOCAL) {
            loads = true
            dlclose(handle)
        } else {
            error = dlerror().map { String(cString: $0) }
        }
        let modules = readWholeSmallFile("/proc/modules") ?? ""
        let fs = modules.split(separator: "\n").contains { $0.hasPrefix("nvidia_fs ") }
            || access("/proc/driver/nvidia-fs/stats", F_OK) == 0
        return CuFileCapability(libraryLoads: loads, loadError: error, nvidiaFSLoaded: fs)
    }
}

/// A whole small text file (procfs), or nil.
func readWholeSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 14)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buffer[0..<n]
        if out.count > 1 << 22 { break }
    }
    return String(decoding: out, as: UTF8.self)
}
