#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Sluice
import SluiceDiagnostics

/// `sluice selftest`: proves a backend right against a reference on fresh random inputs.
struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check a backend against a reference on fresh random inputs (how GPU correctness is shown).",
        discussion: """
            Runs every opcode through the chosen backend and through a reference (the CPU backend \
            for CUDA; the opcodes run on the host for the CPU backend) and compares the results: \
            count on chunks of many sizes and byte patterns, crc32c on chunks of 0 B to several MiB \
            at unaligned offsets, scan with seven pattern sets (overlapping literals, -i, 1 to \
            10,000 literals, long literals, dense matches that overflow the result area, count-only; \
            found counts and record sets compared); then a full ring reused many rounds, bad slots \
            that must fault with the right code, cancel requests, tenant regions (a hostile tenant's \
            slots must fault with tenantViolation while the others finish), reordered read \
            completions through the pump, and a publish/cancel/reclaim stress whose counters must \
            equal what was published. Prints one line per check and `N passed, N failed`. Exit status: 0 when \
            every check passed, 1 when one failed, 2 when the backend could not be started.
            """)

    @Option(help: "The backend to check: auto (CUDA where a usable GPU is found, else CPU), cpu or cuda.")
    var backend: BackendChoice = .auto

    @Option(help: "Seed of every random input (default: from the clock; printed, so a failure can be replayed).")
    var seed: UInt64?

    @Flag(help: "Smaller sizes, fewer rounds and stress cycles.")
    var quick = false

    @Flag(help: "Also the fault checks: test-only opcodes, a lost backend (on the GPU a real lost CUDA context) recreated (with packed small files, and with --ingest gds where cuFile runs), one lost on every attempt, a hung slot caught by a 2 s watchdog, and user operations whose CUDA source traps or spins (each in a child process).")
    var faults = false

    /// Set by `--faults` for the child process that runs one user-operation fault check alone.
    @Option(name: .customLong("fault-child"), help: .hidden)
    var faultChild: String?

    @Option(name: .customLong("stress-cycles"), help: "Publish/cancel/reclaim cycles of the stress check (default 100000, 20000 with --quick).")
    var stressCycles: Int?

    func validate() throws {
        if let stressCycles, stressCycles < 1 || stressCycles > 100_000_000 {
            throw ValidationError("--stress-cycles must be between 1 and 100000000")
        }
    }

    func run() throws {
        let seed = self.seed ?? Selftest.clockSeed()
        if let faultChild {
            let passed = SelfTest.runFaultChild(faultChild, backend: backend, seed: seed) { line in
                var out = StandardOutput()
                out.line(line)
                out.flush()
            }
            throw ExitCode(passed ? 0 : 1)
        }
        var options = SelfTestOptions(
            backend: backend, seed: seed, quick: quick, stressCycles: stressCycles, faults: faults)
        options.faultChild = { check, seed, backend in
            ["selftest", "--backend", backend.rawValue, "--seed", "\(seed)", "--fault-child", check]
        }
        let report = try SelfTest.run(options) { line in
            var out = StandardOutput()
            out.line(line)
            out.flush()
        }
        if report.failed > 0 { throw ExitCode(1) }
    }

    static func clockSeed() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_007 &+ UInt64(ts.tv_nsec)
    }
}
