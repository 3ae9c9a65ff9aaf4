#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceHyperscan
import SluiceIngest
import SluiceOps
import SluiceSystem
import SluiceThreads

/// What this machine offers Sluice and what Sluice will use: the facts behind
/// `sluice doctor`. Every probe is cheap and none needs a GPU; where something
/// is missing, `enable` says what it would take.
public struct MachineReport: Sendable {
    /// One line of the report.
    public struct Item: Sendable {
        /// What the line is about ("io_uring", "GPU 0", ...).
        public var name: String
        /// What was found.
        public var value: String
        /// "ok", "missing" or "info".
        public var status: String
        /// What it would take to enable what is missing; nil when nothing is.
        public var enable: String?
    }

    /// The report's lines, in printing order.
    public var items: [Item] = []
    /// Every CUDA device found, with its PCIe and NUMA placement.
    public var gpus: [CUDAInventoryEntry] = []

    /// Probes everything; `path` is where data will be read from (for O_DIRECT).
    public static func gather(path: String) -> MachineReport {
        var r = MachineReport()
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        r.items.append(Item(name: "kernel", value: release, status: "info"))
        r.items.append(Item(name: "cpu cores", value: "\(ProcessorCount.online)", status: "info"))
        r.items.append(ioUring())
        r.items.append(directIO(path: path))

        switch CUDAInventory.driverVersion() {
        case .success(let v):
            r.items.append(Item(name: "cuda driver", value: "CUDA \(v)", status: "ok"))
        case .failure(let e):
            r.items.append(Item(
                name: "cuda driver", value: e.message, status: "missing",
                enable: "install an NVIDIA driver (libcuda.so.1) to use --backend cuda"))
        }
        if case .success(let gpus) = CUDAInventory.devices() { r.gpus = gpus }
        let probe = CUDAProbe.probe()
        switch probe {
        case .success:
            r.items.append(nvrtc())
        case .failure:
            let driverMissing = r.items.last?.status == "missing"
            r.items.append(Item(
                name: "nvrtc", value: driverMissing ? "not checked (no CUDA driver)" : "not checked (no usable CUDA device)",
                status: "info"))
        }
        let gds = CuFileProbe.capability(path: path)
        r.items.append(Item(
            name: "gpudirect storage", value: gds.summary, status: gds.isDirect ? "ok" : "missing", enable: gds.toEnable))

        let backend: Item
        switch probe {
        case .success(let info):
            // The exceptions `auto` makes to the GPU (ChecksumBackends, SmallFileTrees).
            let checksums = ChecksumBackends.cpuReason(ingest: .auto) != nil
                ? "; hash runs on the CPU (its \(CRC32C.implementation) CRC-32C instructions keep up)" : ""
            backend = Item(
                name: "backend (auto)",
                value: "cuda on \(info.name)\(checksums); a tree of \(SmallFileTrees.minimumFiles)+ files of "
                    + "\(SmallFileTrees.largestMeanFileBytes >> 10) KiB or less on average runs on the CPU",
                status: "ok")
        case .failure(let e):
            backend = Item(name: "backend (auto)", value: "cpu (\(e.message))", status: "ok")
        }
        r.items.append(backend)
        r.items.append(cpuScanEngine())
        return r
    }

    /// Whether NVRTC loads, which the CUDA backend needs only to compile a
    /// kernel its cache lacks (commands load it then, not at every start).
    static func nvrtc() -> Item {
        switch NVRTC.shared {
        case .success(let nvrtc):
            return Item(
                name: "nvrtc",
                value: "NVRTC \(nvrtc.version.major).\(nvrtc.version.minor) (\(nvrtc.library)), loaded only to compile a kernel the cache lacks",
                status: "ok")
        case .failure(let e):
            return Item(
                name: "nvrtc", value: e.message, status: "missing",
                enable: "install NVRTC (libnvrtc.so.13) from the CUDA toolkit: the CUDA backend compiles its kernel with it where the cache has none")
        }
    }

    /// Which matcher `sluice scan --cpu-engine auto` runs on the CPU backend.
    static func cpuScanEngine() -> Item {
        switch HyperscanLibrary.shared {
        case .success(let library):
            return Item(name: "cpu scan engine", value: library.description, status: "ok")
        case .failure:
            return Item(
                name: "cpu scan engine",
                value: "built-in (\(HyperscanLibrary.unavailableReason ?? "Hyperscan unavailable"))", status: "missing",
                enable: "\(HyperscanLibrary.installHint) to scan with Hyperscan on the CPU backend")
        }
    }

    static func ioUring() -> Item {
        let disabled = readFirstLine("/proc/sys/kernel/io_uring_disabled") ?? "absent"
        let region = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * 4096, alignment: 4096)
        defer { region.deallocate() }
        do {
            let selection = try IngestSelection.makeStream(.auto, region: region, chunkBytes: 4096, chunkCount: 2)
            let ok = selection.stream.kind == "io_uring"
            return Item(
                name: "ingest (auto)", value: "\(selection.reason); kernel.io_uring_disabled = \(disabled)",
                status: ok ? "ok" : "missing",
                enable: ok ? nil : "allow io_uring (sysctl kernel.io_uring_disabled=0, seccomp policy, ulimit -l)")
        } catch {
            return Item(name: "ingest (auto)", value: error.message, status: "missing")
        }
    }

    static func directIO(path: String) -> Item {
        let name = "O_DIRECT at \(path)"
        let st: Stat
        do { st = try RawPath(path).stat() } catch {
            return Item(name: name, value: "cannot stat \(path): \(SystemErrors.text(error.rawValue))", status: "missing")
        }
        var target = path
        var created = false
        if st.type == .directory {
            target = (path.hasSuffix("/") ? path : path + "/") + ".sluice-doctor-\(getpid())"
            let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                return Item(name: name, value: "cannot create a probe file (\(SystemErrors.text(errno)))", status: "info")
            }
            let page = [UInt8](repeating: 0x5A, count: 4096)
            _ = page.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            created = true
        }
        defer { if created { unlink(target) } }
        do {
            let fd = try openForIngest(path: RawPath(target), direct: true)
            defer { try? fd.close() }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
            defer { buffer.deallocate() }
            let n = pread(fd.rawValue, buffer.baseAddress, 4096, 0)
            if n < 0 {
                return Item(
                    name: name, value: "refused: \(SystemErrors.text(errno))", status: "missing",
                    enable: "put the data on a filesystem that supports O_DIRECT (ext4, xfs) to use --direct")
            }
            return Item(name: name, value: "supported", status: "ok")
        } catch {
            return Item(
                name: name, value: "refused: \(error.message)", status: "missing",
                enable: "put the data on a filesystem that supports O_DIRECT (ext4, xfs) to use --direct")
        }
    }
}

private func readFirstLine(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n].prefix { $0 != 0x0A }, as: UTF8.self)
}
