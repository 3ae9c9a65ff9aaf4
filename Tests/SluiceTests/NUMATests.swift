#if canImport(Glibc)
import Glibc
#endif
import SluiceNUMA
import SluiceThreads
import Synchronization
import Testing

/// NUMA placement: sysfs parsing (on an injected tree), the decision, and
/// mbind and thread affinity on this machine's node 0.
@Suite struct NUMATests {
    @Test func kernelListsParse() {
        #expect(NUMATopology.parseList("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11])
        #expect(NUMATopology.parseList("5") == [5])
        #expect(NUMATopology.parseList("") == [])
        #expect(NUMATopology.parseList("\n") == [])
        for bad in ["a", "3-1", "1,,2", "-1", "1-", "0-3,x", "1-2-3"] {
            #expect(NUMATopology.parseList(bad) == nil, "\(bad)")
        }
        #expect(ThreadAffinity.format([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11")
        #expect(ThreadAffinity.format([]) == "")
    }

    /// A fake sysfs: GPU a on node 1 (CPUs 8-15), GPU b with no node (-1),
    /// GPU c on node 2, which has no memory.
    func fakeSysfs(_ dir: ScratchDirectory, nodesWithMemory: String = "0-1") -> NUMATopology {
        dir.write("sys/bus/pci/devices/0000:3b:00.0/numa_node", Array("1\n".utf8))
        dir.write("sys/bus/pci/devices/0000:5e:00.0/numa_node", Array("-1\n".utf8))
        dir.write("sys/bus/pci/devices/0000:af:00.0/numa_node", Array("2\n".utf8))
        dir.write("sys/devices/system/node/has_memory", Array("\(nodesWithMemory)\n".utf8))
        dir.write("sys/devices/system/node/node0/cpulist", Array("0-7\n".utf8))
        dir.write("sys/devices/system/node/node1/cpulist", Array("8-15\n".utf8))
        dir.write("sys/devices/system/node/node2/cpulist", Array("16-17\n".utf8))
        return NUMATopology(root: dir.path)
    }

    @Test func theDecisionPlacesOnlyWhereItHelps() {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let t = fakeSysfs(dir)
        #expect(t.node(ofPCIDevice: "0000:3b:00.0") == 1)
        #expect(t.node(ofPCIDevice: "0000:5e:00.0") == -1)
        #expect(t.node(ofPCIDevice: "0000:00:00.0") == nil)
        #expect(t.nodesWithMemory() == [0, 1])
        #expect(t.cpus(ofNode: 1) == Array(8...15))

        let placed = NUMAPlan.decide(pciAddress: "0000:3b:00.0", topology: t, disabled: false)
        #expect(placed.node == 1 && placed.cpus == Array(8...15))
        #expect(placed.reason.contains("node 1"))
        func skipped(_ plan: NUMAPlan, _ why: String) {
            #expect(plan.node == nil && plan.cpus.isEmpty, "\(plan)")
            #expect(plan.reason.contains(why), "\(plan.reason)")
        }
        skipped(NUMAPlan.decide(pciAddress: "0000:3b:00.0", topology: t, disabled: true), "SLUICE_NUMA=off")
        skipped(NUMAPlan.decide(pciAddress: nil, topology: t, disabled: false), "no PCI address")
        skipped(NUMAPlan.decide(pciAddress: "0000:00:00.0", topology: t, disabled: false), "sysfs has no NUMA node")
        skipped(NUMAPlan.decide(pciAddress: "0000:5e:00.0", topology: t, disabled: false), "no NUMA node")
        skipped(NUMAPlan.decide(pciAddress: "0000:af:00.0", topology: t, disabled: false), "no memory of its own")

        let single = ScratchDirectory()
        defer { single.remove() }
        skipped(NUMAPlan.decide(pciAddress: "0000:3b:00.0", topology: fakeSysfs(single, nodesWithMemory: "0"), disabled: false),
                "one NUMA node")
        // No sysfs at all (a container without /sys): nothing placed, and why.
        skipped(NUMAPlan.decide(pciAddress: "0000:3b:00.0", topology: NUMATopology(root: dir.path + "/nowhere"), disabled: false),
                "sysfs has no NUMA node")
    }

    /// This machine's own sysfs reads, and on it node 0 exists.
    @Test func theRealSysfsHasNodeZero() throws {
        let t = NUMATopology()
        guard let nodes = t.nodesWithMemory() else {
            Issue.record("no /sys/devices/system/node/has_memory here")
            return
        }
        #expect(nodes.contains(0))
        #expect(t.cpus(ofNode: 0).map { !$0.isEmpty } == true)
    }

    /// mbind of a fresh mapping to node 0 before its pages are touched: the
    /// kernel records the policy (numa_maps says "prefer:0") and the touched
    /// pages are on node 0 (get_mempolicy says so).
    @Test func mbindPlacesAFreshMappingOnNodeZero() throws {
        let page = Int(getpagesize())
        let length = 64 * page
        let base = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(base != MAP_FAILED)
        defer { munmap(base, length) }
        if let refusal = NUMAMemory.prefer(node: 0, base: base, length: length) {
            // Containers may block mbind (seccomp: EPERM); that must be a clean refusal.
            #expect(refusal == EPERM || refusal == ENOSYS, "mbind failed with errno \(refusal)")
            #expect(NUMAMemory.describe(node: 0, refusal: refusal, base: base, length: length).contains("refused"))
            return
        }
        memset(base, 7, length)
        let maps = String(decoding: readBytes("/proc/self/numa_maps"), as: UTF8.self)
        let hex = String(UInt(bitPattern: base), radix: 16)
        let line = maps.split(separator: "\n").first { $0.hasPrefix(hex + " ") }
        #expect(line?.contains("prefer:0") == true, "numa_maps: \(line.map(String.init) ?? "no line for \(hex)")")
        #expect(NUMAMemory.node(ofPageAt: base) == 0)
        #expect(NUMAMemory.node(ofPageAt: base + length - page) == 0)
        let (on, sampled) = NUMAMemory.pagesOn(node: 0, base: base, length: length)
        #expect(sampled == 16 && on == 16)
        #expect(NUMAMemory.describe(node: 0, refusal: nil, base: base, length: length) == "16 of 16 sampled pages on node 0 (mbind preferred)")
        // A node that does not exist is refused, not crashed on.
        #expect(NUMAMemory.prefer(node: 4000, base: base, length: length) != nil)
        #expect(NUMAMemory.prefer(node: -1, base: base, length: length) == EINVAL)
        #expect(NUMAMemory.trial(node: 0).hasPrefix("mbind works"))
    }

    /// Confining a thread to a CPU applies to the threads it starts, and the
    /// old affinity comes back afterwards.
    @Test func threadsStartedWhileConfinedInheritTheCPUs() throws {
        let before = try #require(ThreadAffinity.current())
        #expect(!before.isEmpty)
        let target = [before.last!]
        let (inherited, used) = ThreadAffinity.running(on: target) { () -> [Int]? in
            #expect(ThreadAffinity.current() == target)
            let seen = Mutex<[Int]?>(nil)
            let thread = try? PosixThread(name: "affinity test") { seen.withLock { $0 = ThreadAffinity.current() } }
            thread?.join()
            return seen.withLock { $0 }
        }
        #expect(used == target)
        #expect(inherited == target)
        #expect(ThreadAffinity.current() == before)
        // CPUs this process may not use are dropped; none left: the body runs unconfined.
        let (_, none) = ThreadAffinity.running(on: [100_000]) { () -> Int in 0 }
        #expect(none.isEmpty && ThreadAffinity.current() == before)
    }
}
