#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys
import SluiceCore
import SluiceSystem

/// The machine's NUMA layout as sysfs describes it. `root` is the directory
/// that holds `sys/` ("/" on a real machine; a scratch tree in tests).
public struct NUMATopology: Sendable {
    /// Directory holding `sys/`, ending in "/".
    public var root: String

    /// The layout under `root` ("/" on a real machine; a scratch tree in tests).
    public init(root: String = "/") {
        self.root = root.hasSuffix("/") ? root : root + "/"
    }

    /// Parses a kernel list such as "0-3,8,10-11" (cpulist, has_memory);
    /// nil when the text is not one. Empty text is the empty list.
    public static func parseList(_ text: String) -> [Int]? {
        let trimmed = text.filter { !$0.isWhitespace }
        guard !trimmed.isEmpty else { return [] }
        var out: [Int] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count == 1 || ends.count == 2, let low = Int(ends[0]), low >= 0 else { return nil }
            let high = ends.count == 2 ? Int(ends[1]) : low
            guard let high, high >= low, high - low < 1 << 20 else { return nil }
            out += Array(low...high)
        }
        return out
    }

    /// The first line of a small sysfs file under `root`, or nil.
    func read(_ relative: String) -> String? {
        readFirstLine(root + relative)
    }

    /// The NUMA node of a PCI device ("0000:3b:00.0"): -1 when the platform
    /// assigns none, nil when sysfs does not say.
    public func node(ofPCIDevice address: String) -> Int? {
        read("sys/bus/pci/devices/\(address)/numa_node").flatMap { Int($0.filter { !$0.isWhitespace }) }
    }

    /// The nodes that have memory, or nil when sysfs has no node directory.
    public func nodesWithMemory() -> [Int]? {
        read("sys/devices/system/node/has_memory").flatMap(NUMATopology.parseList)
    }

    /// The CPUs of node `n`, or nil when unreadable.
    public func cpus(ofNode n: Int) -> [Int]? {
        read("sys/devices/system/node/node\(n)/cpulist").flatMap(NUMATopology.parseList)
    }
}

/// Where one GPU's host memory and host threads should live, and why.
public struct NUMAPlan: Sendable, Equatable {
    /// The node to place memory and threads on; nil: leave both to the kernel.
    public var node: Int?
    /// That node's CPUs (empty when unknown or when `node` is nil).
    public var cpus: [Int]
    /// Why: which node and where that came from, or why nothing is placed.
    public var reason: String

    /// A plan with each field given.
    public init(node: Int?, cpus: [Int], reason: String) {
        self.node = node
        self.cpus = cpus
        self.reason = reason
    }

    /// `SLUICE_NUMA=off` turns placement off (to compare with and without).
    public static var disabledByEnvironment: Bool {
        guard let v = getenv("SLUICE_NUMA") else { return false }
        return String(cString: v) == "off"
    }

    /// The plan for the GPU at `pciAddress`. Placement is only worth doing,
    /// and only done, when the GPU has a node and the machine has more than
    /// one node with memory: on one node every page is local already.
    public static func decide(
        pciAddress: String?, topology: NUMATopology = NUMATopology(), disabled: Bool = disabledByEnvironment
    ) -> NUMAPlan {
        func skip(_ why: String) -> NUMAPlan { NUMAPlan(node: nil, cpus: [], reason: why) }
        if disabled { return skip("placement turned off with SLUICE_NUMA=off") }
        guard let pciAddress else { return skip("the driver gave no PCI address for the GPU") }
        guard let node = topology.node(ofPCIDevice: pciAddress) else {
            return skip("sysfs has no NUMA node for the GPU at \(pciAddress)")
        }
        guard node >= 0 else {
            return skip("the platform gives the GPU at \(pciAddress) no NUMA node (one node, or no ACPI SRAT)")
        }
        guard let withMemory = topology.nodesWithMemory() else {
            return skip("sysfs does not list the NUMA nodes with memory")
        }
        guard withMemory.count > 1 else { return skip("one NUMA node with memory: every page is local already") }
        guard withMemory.contains(node) else {
            return skip("the GPU's node \(node) has no memory of its own")
        }
        let cpus = topology.cpus(ofNode: node) ?? []
        return NUMAPlan(node: node, cpus: cpus, reason: "the GPU at \(pciAddress) is on node \(node)")
    }
}

/// NUMA memory policy of mappings (`mbind`, `get_mempolicy`).
public enum NUMAMemory {
    /// Asks the kernel to take the pages of `[base, base + length)` from
    /// `node` (MPOL_PREFERRED) when they are first touched; `base` must be
    /// page-aligned and nothing in the range touched yet. Returns nil, or
    /// the errno of a refusal (EPERM where a container's seccomp profile
    /// blocks it, EINVAL for a node outside the cpuset's mems).
    ///
    /// Preferred, not bound: a node short of free memory then gives pages
    /// from another one instead of failing the pinning, and the sampled
    /// placement (`pagesOn`) says how it went.
    public static func prefer(node: Int, base: UnsafeMutableRawPointer, length: Int) -> Int32? {
        guard node >= 0, node < 4096 else { return EINVAL }
        let bitsPerWord = UInt.bitWidth
        var mask = [UInt](repeating: 0, count: node / bitsPerWord + 1)
        mask[node / bitsPerWord] |= 1 << UInt(node % bitsPerWord)
        // maxnode is one more than the bits in the mask (the kernel drops one).
        let rc = sluice_mbind(
            base, UInt(length), Int32(SLUICE_MPOL_PREFERRED), mask, UInt(mask.count * bitsPerWord + 1), 0)
        return rc == 0 ? nil : errno
    }

    /// The node the page at `address` is on (the page is touched if it was
    /// not yet), or nil when the kernel does not say.
    public static func node(ofPageAt address: UnsafeMutableRawPointer) -> Int? {
        var node: Int32 = -1
        let rc = sluice_get_mempolicy(&node, nil, 0, address, UInt(SLUICE_MPOL_F_NODE | SLUICE_MPOL_F_ADDR))
        return rc == 0 ? Int(node) : nil
    }

    /// Of up to `samples` pages spread evenly over the range, how many are on
    /// `node`, and how many could be asked about.
    public static func pagesOn(
        node: Int, base: UnsafeMutableRawPointer, length: Int, samples: Int = 16
    ) -> (onNode: Int, sampled: Int) {
        let page = AnonymousMapping.pageSize
        let pages = max(1, length / page)
        let n = min(samples, pages)
        var on = 0, sampled = 0
        for i in 0..<n {
            let p = (pages - 1) * i / max(1, n - 1)
            guard let found = self.node(ofPageAt: base + p * page) else { continue }
            sampled += 1
            if found == node { on += 1 }
        }
        return (on, sampled)
    }

    /// A description of a placement: what `prefer` returned and where the
    /// sampled pages are, e.g. "16 of 16 sampled pages on node 1 (mbind
    /// preferred)". Sample after the pages were touched (registered).
    public static func describe(node: Int, refusal: Int32?, base: UnsafeMutableRawPointer, length: Int) -> String {
        let (on, sampled) = pagesOn(node: node, base: base, length: length)
        let where_ = sampled == 0 ? "page placement unknown" : "\(on) of \(sampled) sampled pages on node \(node)"
        if let refusal {
            return "\(where_); mbind to node \(node) refused (\(SystemErrors.name(refusal)): \(SystemErrors.text(refusal)))"
                + ", pages placed by first touch"
        }
        return where_ + " (mbind preferred)"
    }

    /// Whether pages can be placed on `node` here: maps 4 pages, prefers
    /// the node, touches them and says where they landed (for `doctor`).
    public static func trial(node: Int) -> String {
        let page = AnonymousMapping.pageSize
        let length = 4 * page
        guard let mapping = try? AnonymousMapping(byteCount: length, purpose: "NUMA trial"),
              let base = mapping.bytes.baseAddress
        else { return "mbind not tried: mmap failed" }
        let refusal = prefer(node: node, base: base, length: length)
        memset(base, 1, length)
        let (on, sampled) = pagesOn(node: node, base: base, length: length, samples: 4)
        if let refusal {
            return "mbind refused (\(SystemErrors.name(refusal))): pinned memory goes where the registering thread runs"
        }
        return sampled == 0 ? "mbind works; placement unreadable" : "mbind works (\(on) of \(sampled) test pages on node \(node))"
    }
}

/// The calling thread's CPU affinity.
public enum ThreadAffinity {
    /// The CPUs the calling thread may run on, or nil when unreadable.
    public static func current() -> [Int]? {
        var cpus = [Int32](repeating: 0, count: 1024)
        var n = sluice_get_thread_affinity(&cpus, Int32(cpus.count))
        if n > cpus.count {
            cpus = [Int32](repeating: 0, count: Int(n))
            n = sluice_get_thread_affinity(&cpus, Int32(cpus.count))
        }
        guard n >= 0 else { return nil }
        return cpus.prefix(Int(min(n, Int32(cpus.count)))).map(Int.init)
    }

    /// Restricts the calling thread to `cpus`; nil, or the errno of a refusal.
    @discardableResult
    public static func set(_ cpus: [Int]) -> Int32? {
        let list = cpus.map(Int32.init)
        let rc = list.withUnsafeBufferPointer { sluice_set_thread_affinity($0.baseAddress, Int32($0.count)) }
        return rc == 0 ? nil : rc
    }

    /// The CPUs of `wanted` this thread is allowed now (a container's cpuset
    /// may allow fewer than the node has).
    public static func allowed(of wanted: [Int]) -> [Int] {
        guard let now = current() else { return [] }
        let allowed = Set(now)
        return wanted.filter { allowed.contains($0) }
    }

    /// Runs `body` on the calling thread restricted to `cpus` (those of them
    /// it may use), then restores the old affinity. Threads `body` starts
    /// inherit the restriction (Linux copies the mask to new threads).
    /// Returns the body's result and the CPUs actually used (empty: none
    /// allowed or refused; `body` then ran unrestricted).
    public static func running<R, E: Error>(
        on cpus: [Int], _ body: () throws(E) -> R
    ) throws(E) -> (R, [Int]) {
        let old = current()
        let use = allowed(of: cpus)
        guard let old, !use.isEmpty, set(use) == nil else { return (try body(), []) }
        defer { set(old) }
        return (try body(), use)
    }

    /// "0-3,8" for a sorted CPU list, for messages.
    public static func format(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let s = cpus.sorted()
        while i < s.count {
            var j = i
            while j + 1 < s.count, s[j + 1] == s[j] + 1 { j += 1 }
            parts.append(i == j ? "\(s[i])" : "\(s[i])-\(s[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }
}
