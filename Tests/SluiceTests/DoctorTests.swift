#if canImport(Glibc)
import Glibc
#endif
import SluiceCUDA
import Testing

@Suite struct DoctorTests {
    @Test func capabilityLogic() {
        let none = CuFileCapability(libraryLoads: false, loadError: "not found", nvidiaFSLoaded: false)
        #expect(!none.isDirect && none.toEnable?.contains("libcufile") == true && none.summary.contains("not available"))
        let compat = CuFileCapability(libraryLoads: true, loadError: nil, nvidiaFSLoaded: false)
        #expect(!compat.isDirect && compat.summary.contains("compatibility") && compat.toEnable?.contains("nvidia-fs") == true)
        let direct = CuFileCapability(libraryLoads: true, loadError: nil, nvidiaFSLoaded: true)
        #expect(direct.isDirect && direct.toEnable == nil)
    }

    /// On this machine (no GPU) the doctor still exits 0 and says why CUDA is not used.
    @Test func runsWithoutAGPU() throws {
        let probe = CUDAProbe.probe()
        let r = run([sluiceExecutable, "doctor", "/var/tmp"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ingest (auto)"))
        #expect(r.stdout.contains("O_DIRECT at /var/tmp"))
        if case .failure = probe {
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.contains { $0.hasPrefix("ok backend (auto)") && $0.contains(" cpu (") })
            #expect(lines.contains { $0.contains(" gpus ") && $0.hasSuffix("none found") })
            #expect(r.stdout.contains("To enable more:"))
        }
        let j = run([sluiceExecutable, "doctor", "--json"])
        #expect(j.status == 0)
        #expect(j.stdout.hasPrefix("{\"items\":[{\"name\":\"kernel\"") && j.stdout.hasSuffix("]}\n"))
    }
}
