#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceNUMA
import SluiceSystem

/// One GPU as `sluice doctor` shows it, including where it sits on PCIe.
public struct CUDAInventoryEntry: Sendable {
    /// What the probe found; nil when the device could not be read (`problem` says why).
    public var info: CUDADeviceInfo?
    /// Why this device cannot run the megakernel, or why it could not be read.
    public var problem: String?
    /// "0000:3b:00.0", or nil when the driver did not say.
    public var pciAddress: String?
    /// From sysfs, e.g. "32.0 GT/s PCIe" and "16"; nil when unreadable.
    public var linkSpeed: String?
    /// The PCIe link width from sysfs, "16"; nil when unreadable.
    public var linkWidth: String?
    /// The GPU's NUMA node (-1: the platform gives none), nil when unknown.
    public var numaNode: Int?
    /// What placement on that node does here: the plan's reason, and
    /// whether a trial `mbind` of a scratch page to the node worked.
    public var numa: String?
}

/// Lists every CUDA device without creating a context.
public enum CUDAInventory {
    // CUdevice_attribute values for the device's PCI location (cuda.h).
    private static let pciBusID: Int32 = 33
    private static let pciDeviceID: Int32 = 34
    private static let pciDomainID: Int32 = 50

    /// The driver's CUDA version text ("13.0"), or the reason there is none.
    public static func driverVersion() -> Result<String, PipelineError> {
        Result { () throws(PipelineError) -> String in
            let v = try CUDADriver.shared.get().driverVersion()
            return "\(v / 1000).\(v % 1000 / 10)"
        }
    }

    /// Every CUDA device, probed and located on PCIe, without creating a context; the error when the driver does not load.
    public static func devices() -> Result<[CUDAInventoryEntry], PipelineError> {
        Result { () throws(PipelineError) -> [CUDAInventoryEntry] in
            let driver = try CUDADriver.shared.get()
            let count = try driver.deviceCount()
            return (0..<count).map { ordinal in
                var entry = CUDAInventoryEntry()
                switch CUDAProbe.probe(device: ordinal) {
                case .success(let info): entry.info = info
                case .failure(let error): entry.problem = error.message
                }
                if let device = try? driver.device(ordinal: ordinal) {
                    if let address = pciAddress(driver: driver, device: device) {
                        entry.pciAddress = address
                        entry.linkSpeed = readSysfs("/sys/bus/pci/devices/\(address)/current_link_speed")
                        entry.linkWidth = readSysfs("/sys/bus/pci/devices/\(address)/current_link_width")
                        entry.numaNode = NUMATopology().node(ofPCIDevice: address)
                    }
                    let plan = NUMAPlan.decide(pciAddress: entry.pciAddress)
                    if let node = plan.node {
                        let cpus = plan.cpus.isEmpty ? "no CPUs listed" : "CPUs \(ThreadAffinity.format(plan.cpus))"
                        entry.numa = "node \(node) (\(cpus)); " + NUMAMemory.trial(node: node)
                    } else {
                        entry.numa = "no placement: \(plan.reason)"
                    }
                }
                return entry
            }
        }
    }

    /// The PCI address ("0000:3b:00.0") of CUDA device `ordinal`, without a
    /// context; nil when the driver does not load or does not say.
    public static func pciAddress(ordinal: Int) -> String? {
        guard let driver = try? CUDADriver.shared.get(), let device = try? driver.device(ordinal: ordinal) else { return nil }
        return pciAddress(driver: driver, device: device)
    }

    static func pciAddress(driver: CUDADriver, device: CUdevice) -> String? {
        func raw(_ a: Int32) -> Int32? {
            var v: Int32 = 0
            return driver.cuDeviceGetAttribute(&v, a, device) == CUDADriver.success ? v : nil
        }
        guard let bus = raw(pciBusID), let dev = raw(pciDeviceID), let domain = raw(pciDomainID) else { return nil }
        return hex(domain, 4) + ":" + hex(bus, 2) + ":" + hex(dev, 2) + ".0"
    }

    private static func hex(_ v: Int32, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

/// The first line of a small sysfs or procfs file, or nil.
func readSysfs(_ path: String) -> String? { readFirstLine(path) }
