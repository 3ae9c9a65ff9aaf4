import ArgumentParser
import Sluice
import SluiceDiagnostics

/// `sluice soak`: a long run with random files, tenants and injected faults.
struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Scan random files over and over with random tenants and injected faults; check every result.",
        discussion: """
            Each scan writes 1 to 8 random files (sizes on and around chunk edges, planted \
            literals), runs 1 to 4 tenants over one engine (count, crc32c or scan each, tenant \
            checks on), and injects faults: about 4% of slots turn hostile (unknown opcode, a \
            length past the data region, another tenant's identity) and must fault with exactly \
            that code while everything else finishes; one scan in three publishes a test-only \
            opcode that kills the backend (an illegal address on the GPU), which the scanner must \
            survive by recreating the backend and rerunning the unfinished chunks. Every result is \
            compared with a reference computed on the host from the whole file. Pinned memory, \
            CPU regions, open file descriptors and GPU memory in use are measured after a warm-up \
            engine and at the end and must match. Ends with one summary line. Exit status: 0 when \
            it passed, 1 on any mismatch, unobserved fault or leak, 2 when it could not run.
            """)

    @Option(help: "Seconds to keep scanning.")
    var duration: Int = 60

    @Option(help: "The backend: auto (CUDA where a usable GPU is found, else CPU), cpu or cuda.")
    var backend: BackendChoice = .auto

    @Option(help: "Seed of every random choice (default: from the clock; printed, so a failure can be replayed).")
    var seed: UInt64?

    @Option(help: "Stop after this many scans, even before --duration.")
    var scans: Int?

    /// When context kills run in child processes.
    enum ChildKillMode: String, ExpressibleByArgument, CaseIterable {
        case auto, on, off
    }

    @Option(help: ArgumentHelp(
        "Context kills in child processes: auto (on with CUDA), on or off.",
        discussion: "Each child runs this executable on the same backend for one scan whose first chunk kills it, "
            + "and must finish that scan right (on CUDA: on the CPU, since the process that caused an illegal "
            + "address cannot start CUDA again); this process's engine stays up meanwhile."))
    var childKills: ChildKillMode = .auto

    @Option(help: "Seconds between two child kills (each 0.5x to 1.5x of it, at random).")
    var childKillInterval: Int = 20

    @Flag(help: .hidden)
    var killOnce = false

    func validate() throws {
        guard duration >= 1, duration <= 7 * 86_400 else { throw ValidationError("--duration must be 1 to 604800 seconds") }
        if let scans, scans < 1 { throw ValidationError("--scans must be at least 1") }
        guard childKillInterval >= 1 else { throw ValidationError("--child-kill-interval must be at least 1 second") }
    }

    func run() throws {
        var options = SoakOptions(
            backend: backend, duration: .seconds(duration), seed: seed ?? Selftest.clockSeed(), maxScans: scans)
        options.killOnce = killOnce
        let useChildren = childKills == .on || (childKills == .auto && backend != .cpu)
        if useChildren, !killOnce {
            // `auto` asks for children on every backend but the CPU one; the
            // soak uses them only when its backend turned out to be CUDA.
            let always = childKills == .on
            options.childKills = ChildKills(interval: .seconds(childKillInterval)) { seed, backend in
                ["soak", "--backend", backend, "--kill-once", "--seed", "\(seed)", "--child-kills", "off"]
            }
            options.childKillsOnlyOnCUDA = !always
        }
        let report = try SluiceDiagnostics.Soak.run(options) { line in
            var out = StandardOutput()
            out.line(line)
            out.flush()
        }
        if !report.passed { throw ExitCode(1) }
    }
}
