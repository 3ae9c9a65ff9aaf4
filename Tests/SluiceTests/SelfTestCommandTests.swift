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
            // The Swift references neither trap nor spin: on the CPU these show the plumbing, run in child processes.
            "user operation that traps: cpu backend", "user operation that spins: cpu backend",
        ] {
            #expect(r.stdout.contains("ok    faults: \(check)"), "\(check)")
        }
        let userLines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("ok    faults: user operation that ") }
        #expect(userLines.count == 2)
        for line in userLines {
            #expect(line.contains("all 6 files equal their direct byte sums"), "\(line)")
            #expect(line.contains("then the same session served"), "\(line)")
            #expect(line.contains("(in a child process"), "\(line)")
        }
        #expect(r.stdout.contains("0 failed with the fault checks"))
    }

    /// The child's entry point alone: a known check passes with its line; an unknown name is a failure naming the known ones.
    @Test func faultChildRunsOneCheck() {
        let r = run([sluiceExecutable, "selftest", "--backend", "cpu", "--seed", "5", "--fault-child", "user-spin"])
        #expect(r.status == 0, "\(r.stdout.suffix(2000))\(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("ok    faults: user operation that spins: cpu backend"))
        #expect(!r.stdout.contains("passed"))   // nothing but the one check ran
        let bad = run([sluiceExecutable, "selftest", "--backend", "cpu", "--seed", "5", "--fault-child", "no-such-check"])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("FAIL  no-such-check: no such fault check (user-trap, user-spin)"))
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
