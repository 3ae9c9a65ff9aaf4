import Testing

/// The self-test that proves GPU correctness on the GPU machine also runs here
/// against the CPU backend, so a broken check is caught before it ships.
@Suite struct SelfTestCommandTests {
    @Test(arguments: [1, 20_261_124])
    func cpuSelfTestPasses(seed: Int) {
        let r = run([sluiceExecutable, "selftest", "--backend", "cpu", "--quick", "--seed", "\(seed)"])
        #expect(r.status == 0, "\(r.stdout.suffix(2000))\(r.stderr.suffix(2000))")
        #expect(r.stdout.contains(" passed, 0 failed"))
    }

    @Test func cpuFaultChecksPass() {
        let r = run([sluiceExecutable, "selftest", "--backend", "cpu", "--quick", "--faults", "--seed", "7"])
        #expect(r.status == 0, "\(r.stdout.suffix(3000))\(r.stderr.suffix(2000))")
        for check in [
            "test opcodes need fault injection", "lost context recovered", "lost context with packed small files",
            "lost context with cuFile ingest: skipped", "lost on every attempt", "hung kernel",
        ] {
            #expect(r.stdout.contains("ok    faults: \(check)"), "\(check)")
        }
        #expect(r.stdout.contains("0 failed with the fault checks"))
    }

    @Test func cudaWithoutAGPUIsExitTwoWithAReason() {
        let r = run([sluiceExecutable, "selftest", "--backend", "cuda", "--quick"])
        // On a machine with a GPU this runs the real check; without one it must say why.
        if r.status != 0 {
            #expect(r.status == 2)
            #expect(r.stderr.contains("cuda"))
        }
    }
}
