#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem
import SystemPackage

/// Where the data lives, as GPUDirect Storage sees it.
public struct GDSFilesystem: Sendable, Hashable {
    /// The path that was looked at.
    public var path: String
    /// "ext4", "xfs", "overlayfs", ... or "fs 0x1234" for one this build does not name.
    public var name: String
    /// The block device under a local filesystem ("vda", "nvme0n1"), when found.
    public var blockDevice: String?
    /// Whether cuFile can read this filesystem by DMA: ext4 or xfs on an
    /// NVMe device, or a distributed filesystem with a GDS client.
    public var supportsDirect: Bool

    /// A filesystem with each field given.
    public init(path: String, name: String, blockDevice: String?, supportsDirect: Bool) {
        self.path = path
        self.name = name
        self.blockDevice = blockDevice
        self.supportsDirect = supportsDirect
    }
}

/// What GPUDirect Storage can do here: the facts, found without opening the
/// driver, and what they mean (`mode`).
///
/// A direct read (storage DMA straight into GPU memory) needs cuFile, a
/// kernel path for peer DMA (the nvidia-fs module, or the kernel's PCI P2PDMA
/// with cuFile's `use_pci_p2pdma`), an NVMe device and a filesystem GDS can
/// read directly. Without them cuFile still works in its compatibility mode
/// (POSIX reads into a host bounce buffer, then a copy to the GPU) unless
/// its configuration forbids that (`allow_compat_mode: false`).
public struct CuFileCapability: Sendable {
    /// Whether `libcufile.so.0` loads.
    public var libraryLoads: Bool
    /// The loader's message when it does not.
    public var loadError: String?
    /// Whether the `nvidia-fs` kernel module is loaded (the classic GDS path).
    public var nvidiaFSLoaded: Bool
    /// Whether the running kernel was built with PCI P2PDMA (`CONFIG_PCI_P2PDMA=y`).
    public var kernelP2PDMA: Bool
    /// NVMe controllers (`/sys/class/nvme`); nil when not looked at.
    public var nvmeDevices: Int?
    /// Whether udev's database (`/run/udev/data`) exists: cuFile reads a
    /// block device's udev properties (ID_FS_USAGE) to register any file, and
    /// refuses every file without them, compatibility mode included (the
    /// H100 VM has no udev: benchmarks/RESULTS.md, runs 11-13).
    public var udevDatabase = true
    /// Whether this cuFile has `cuFileSetParameterBool`, with which Sluice
    /// allows compatibility mode for its own process before the driver opens.
    public var canAllowCompatMode = false
    /// cuFile's `properties.allow_compat_mode`; nil when it cannot be read
    /// (cuFile's default is true).
    public var allowCompatMode: Bool?
    /// cuFile's `force_compat_mode`: true makes every read a compatibility-mode read.
    public var forceCompatMode: Bool?
    /// cuFile's `use_pci_p2pdma`: whether it uses the kernel's P2PDMA instead of nvidia-fs.
    public var usePCIP2PDMA: Bool?
    /// The data's filesystem, when a path was given.
    public var filesystem: GDSFilesystem?
    /// "1.15.0", when the library says.
    public var version: String?

    /// Facts as given (tests describe machines with this); the probe reads the real ones.
    public init(
        libraryLoads: Bool, loadError: String?, nvidiaFSLoaded: Bool, kernelP2PDMA: Bool = false,
        nvmeDevices: Int? = nil, allowCompatMode: Bool? = nil, forceCompatMode: Bool? = nil,
        usePCIP2PDMA: Bool? = nil, filesystem: GDSFilesystem? = nil, version: String? = nil
    ) {
        self.libraryLoads = libraryLoads
        self.loadError = loadError
        self.nvidiaFSLoaded = nvidiaFSLoaded
        self.kernelP2PDMA = kernelP2PDMA
        self.nvmeDevices = nvmeDevices
        self.allowCompatMode = allowCompatMode
        self.forceCompatMode = forceCompatMode
        self.usePCIP2PDMA = usePCIP2PDMA
        self.filesystem = filesystem
        self.version = version
    }

    /// How cuFile would read here.
    public enum Mode: Sendable, Equatable {
        /// cuFile does not load.
        case unavailable(String)
        /// cuFile loads but nothing would be direct, and compatibility mode is off.
        case unusable(String)
        /// cuFile would run in compatibility mode; the text says why it is not direct.
        case compatibility(String)
        /// Storage DMA into GPU memory; the text says through what.
        case direct(String)
    }

    /// How cuFile would read here (unavailable, unusable, compatibility mode or direct), with the reason.
    public var mode: Mode {
        guard libraryLoads else { return .unavailable(loadError ?? "libcufile.so.0 not found") }
        guard udevDatabase else {
            return .unusable("there is no udev database (/run/udev/data), and cuFile needs a block device's udev properties (ID_FS_USAGE) to register any file, even in compatibility mode")
        }
        if let why = notDirectReason {
            if allowCompatMode == false, !canAllowCompatMode {
                return .unusable("\(why), and cuFile's allow_compat_mode is false, so cuFile cannot read at all")
            }
            if allowCompatMode == false {
                return .compatibility("\(why) (cuFile's allow_compat_mode is false; Sluice turns it on for its own process when it reads with cuFile)")
            }
            return .compatibility(why)
        }
        let path = nvidiaFSLoaded ? "the nvidia-fs module" : "the kernel's PCI P2PDMA"
        var what = "storage DMA into GPU memory through \(path)"
        if let fs = filesystem { what += ", \(fs.path) on \(fs.name)" + (fs.blockDevice.map { " (\($0))" } ?? "") }
        return .direct(what)
    }

    /// Why a read would not be direct, or nil when it would be (the library loads).
    var notDirectReason: String? {
        if forceCompatMode == true { return "cuFile's force_compat_mode is true" }
        let p2p = kernelP2PDMA && usePCIP2PDMA == true
        if !nvidiaFSLoaded && !p2p {
            var why = "the nvidia-fs module is not loaded"
            why += kernelP2PDMA ? " and cuFile's use_pci_p2pdma is not on" : " and the kernel has no PCI P2PDMA"
            return why
        }
        if let fs = filesystem {
            if !fs.supportsDirect {
                return "\(fs.path) is on \(fs.name)" + (fs.blockDevice.map { " (\($0))" } ?? "")
                    + ", which GPUDirect Storage cannot read by DMA"
            }
        } else if nvmeDevices == 0 {
            return "there is no NVMe device"
        }
        return nil
    }

    /// True GPUDirect: storage DMA straight into GPU memory.
    public var isDirect: Bool {
        if case .direct = mode { return true }
        return false
    }

    /// One line for `doctor`: cuFile's version, mode and why.
    public var summary: String {
        let lib = "cuFile" + (version.map { " \($0)" } ?? "")
        switch mode {
        case .unavailable(let why): return "cuFile not available (\(why))"
        case .unusable(let why): return "\(lib) loaded, unusable: \(why)"
        case .compatibility(let why):
            return "\(lib) loaded, compatibility mode only (POSIX reads through a bounce buffer, not direct): \(why)"
        case .direct(let how): return "\(lib) loaded, GPUDirect can be direct: \(how)"
        }
    }

    /// What would enable the direct path, or nil when it is enabled.
    public var toEnable: String? {
        switch mode {
        case .unavailable: return "install the CUDA toolkit's cuFile (libcufile.so.0) to read with GPUDirect Storage"
        case .direct: return nil
        case .unusable, .compatibility:
            if !udevDatabase { return "run udev (systemd-udevd) so that /run/udev/data describes the block devices; cuFile registers no file without it" }
            if forceCompatMode == true { return "set force_compat_mode to false in cufile.json for direct GPUDirect reads" }
            if !nvidiaFSLoaded && !(kernelP2PDMA && usePCIP2PDMA == true) {
                return "load the nvidia-fs module (GPUDirect Storage) and put the data on a GDS-capable NVMe filesystem"
            }
            return "put the data on ext4 or xfs on an NVMe device (or a filesystem with a GDS client) for direct GPUDirect reads"
        }
    }
}

/// Probes cuFile, the kernel and the data's filesystem.
public enum CuFileProbe {
    /// Probes everything without opening the cuFile driver; `path` (when
    /// given) is where the data lives.
    public static func capability(path: String? = nil) -> CuFileCapability {
        var c = CuFileCapability(libraryLoads: false, loadError: nil, nvidiaFSLoaded: nvidiaFSLoaded())
        switch CuFileLibrary.shared {
        case .success(let library):
            c.libraryLoads = true
            c.version = library.version
            // Before cuFileDriverOpen these are the staged values: the
            // library's defaults (allow_compat_mode is false in cuFile 1.15
            // on the H100 machine), which the configuration file overrides.
            c.canAllowCompatMode = library.cuFileSetParameterBool != nil
            c.allowCompatMode = library.parameter(CuFileLibrary.parameterAllowCompatMode)
            c.forceCompatMode = library.parameter(CuFileLibrary.parameterForceCompatMode)
            c.usePCIP2PDMA = library.parameter(CuFileLibrary.parameterUsePCIP2PDMA)
        case .failure(let error):
            if case .backendUnavailable(_, let reason) = error { c.loadError = reason } else { c.loadError = error.message }
        }
        if c.libraryLoads {
            // cuFile's configuration file (the environment can point
            // elsewhere, as cuFile itself honours) overrides the staged
            // values; where neither says, the documented defaults.
            let json = getenv("CUFILE_ENV_PATH_JSON").map { String(cString: $0) } ?? "/etc/cufile.json"
            let text = readSmallTextFile(json) ?? ""
            c.allowCompatMode = jsonBool(text, key: "allow_compat_mode") ?? c.allowCompatMode ?? true
            c.forceCompatMode = jsonBool(text, key: "force_compat_mode") ?? c.forceCompatMode ?? false
            c.usePCIP2PDMA = jsonBool(text, key: "use_pci_p2pdma") ?? c.usePCIP2PDMA ?? false
        }
        if let force = getenv("CUFILE_FORCE_COMPAT_MODE").map({ String(cString: $0) }) {
            c.forceCompatMode = force.lowercased() == "true" || force == "1"
        }
        c.kernelP2PDMA = kernelHasP2PDMA()
        c.udevDatabase = access("/run/udev/data", F_OK) == 0
        c.nvmeDevices = directoryEntries("/sys/class/nvme").count
        if let path { c.filesystem = filesystem(of: path) }
        return c
    }

    static func nvidiaFSLoaded() -> Bool {
        let modules = readSmallTextFile("/proc/modules") ?? ""
        return modules.split(separator: "\n").contains { $0.hasPrefix("nvidia_fs ") }
            || access("/proc/driver/nvidia-fs/stats", F_OK) == 0
    }

    /// `CONFIG_PCI_P2PDMA=y` in the running kernel's build configuration.
    static func kernelHasP2PDMA() -> Bool {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard let config = readSmallTextFile("/boot/config-\(release)") else { return false }
        return config.split(separator: "\n").contains { $0 == "CONFIG_PCI_P2PDMA=y" }
    }

    /// The filesystem `path` is on (from the mount table entry with the
    /// path's device number), and whether GDS can read it by DMA.
    public static func filesystem(of path: String) -> GDSFilesystem? {
        guard let device = try? RawPath(path).stat().deviceID.rawValue else { return nil }
        let (major, minor) = (major(device), minor(device))
        let mounts = readSmallTextFile("/proc/self/mountinfo") ?? ""
        var type = "unknown"
        for line in mounts.split(separator: "\n") {
            // id parent major:minor root mountpoint options [tags...] - fstype source superoptions
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[2] == "\(major):\(minor)", let dash = fields.firstIndex(of: "-"),
                  dash + 1 < fields.count else { continue }
            type = String(fields[dash + 1])
            break
        }
        return classify(path: path, type: type, blockDevice: blockDevice(major: major, minor: minor))
    }

    /// Says whether GDS reads a filesystem (by its mount type) by DMA: local
    /// ext4 and xfs only on NVMe; Lustre, GPFS, BeeGFS, WekaFS and NFS through
    /// their GDS clients; nothing else (overlay, tmpfs, virtiofs, ...).
    public static func classify(path: String, type: String, blockDevice: String?) -> GDSFilesystem {
        if type == "ext4" || type == "xfs" {
            let nvme = blockDevice?.hasPrefix("nvme") == true
            return GDSFilesystem(path: path, name: type, blockDevice: blockDevice, supportsDirect: nvme)
        }
        let distributed = ["lustre", "gpfs", "beegfs", "wekafs", "nfs", "nfs4"]
        return GDSFilesystem(
            path: path, name: type, blockDevice: distributed.contains(type) ? nil : blockDevice,
            supportsDirect: distributed.contains(type))
    }

    /// The block device `major:minor` belongs to ("nvme0n1" for a partition
    /// of it), from sysfs.
    static func blockDevice(major: UInt32, minor: UInt32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/sys/dev/block/\(major):\(minor)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let parts = target.split(separator: "/")
        // .../block/nvme0n1/nvme0n1p1 for a partition, .../block/vda for a disk.
        if let i = parts.firstIndex(of: "block"), i + 1 < parts.count { return String(parts[i + 1]) }
        return parts.last.map(String.init)
    }

    private static func major(_ dev: dev_t) -> UInt32 { UInt32((dev >> 8) & 0xFFF) | UInt32((dev >> 32) & ~0xFFF) }
    private static func minor(_ dev: dev_t) -> UInt32 { UInt32(dev & 0xFF) | UInt32((dev >> 12) & ~0xFF) }

    private static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// The value of `"key": true|false` in cuFile's JSON configuration (which
/// allows // comments), or nil when absent. Not a JSON parser: cufile.json
/// names each key once, and only booleans are looked for.
func jsonBool(_ text: String, key: String) -> Bool? {
    for line in text.split(separator: "\n") {
        let code = line.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard let range = code.firstRange(of: "\"\(key)\"") else { continue }
        let rest = code[range.upperBound...].drop { $0 == " " || $0 == "\t" || $0 == ":" }
        if rest.hasPrefix("true") { return true }
        if rest.hasPrefix("false") { return false }
    }
    return nil
}
