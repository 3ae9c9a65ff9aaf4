import ArgumentParser
import Sluice
import SluiceServer

/// `sluice serve`: one warm engine for every `sluice` process on the host.
struct Serve: ParsableCommand {
    // Named here, not derived from the type's name at every start (a reflection every command pays).
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Keep one engine warm and serve scan, count and hash to clients over a Unix socket.",
        discussion: """
            Holds one session (the backend, its ring and compiled kernel) and serves requests \
            from `sluice scan`, `count` and `hash` (and programs using `Session(connectingTo:)`) \
            over a Unix socket created with mode 0600; docs/serve-protocol.md is the protocol. \
            Clients open their files themselves and pass the descriptors, so the server reads \
            only what the client could read. Only the server's own uid is served unless \
            --allow-uid names others. One line per request goes to stderr: client pid and uid, \
            command, files, bytes, result and time. SIGTERM or SIGINT stops accepting and removes \
            the socket at once, lets the requests in flight finish, and exits 0; a second signal \
            ends the process at once.

            Started by systemd socket activation (LISTEN_PID is this process, LISTEN_FDS=1), it \
            serves the listening socket passed as descriptor 3 and leaves its file to systemd at \
            exit, so that with --idle-exit the next connection starts it again; deploy/systemd/ \
            has the units. A passed descriptor that is not one listening Unix stream socket is \
            an error (exit 2).
            """)

    @Option(help: "The socket's path (default: $XDG_RUNTIME_DIR/sluice.sock, else /tmp/sluice-UID.sock). Started by systemd socket activation, the server serves the socket systemd passed instead; --socket naming another path is then an error.")
    var socket: String?

    @Option(name: .customLong("idle-exit"), help: "Exit cleanly after this many seconds with no connection open.")
    var idleExit: Int?

    @Option(name: .customLong("allow-uid"), help: "Also serve this uid (repeatable); the server's own uid is always served. With it the socket is mode 0666 and each peer's uid (SO_PEERCRED) is checked; without it the socket is 0600.")
    var allowUID: [UInt32] = []

    @Option(help: "Match records each slot holds before the host rescans its chunk (default: one per 512 bytes of chunk, at least 4096).")
    var recordsPerSlot: Int?

    @Option(name: .customLong("request-slots"), help: "Slots one request holds at once when it starts, doubling every few ms (default: a quarter of the ring, at least 8; 0: no cap). While several requests have work, each holds at most its share of the ring.")
    var requestSlots: Int?

    @Option(name: .customLong("cpu-engine"), help: "The CPU backend's matcher for scans: auto, hyperscan or builtin.")
    var cpuEngine: ScanEngineChoice = .auto

    @OptionGroup var engineOptions: EngineOptions

    func validate() throws {
        if let requestSlots, requestSlots < 0 { throw ValidationError("--request-slots must be 0 (no limit) or more") }
        if let idleExit, idleExit < 1 { throw ValidationError("--idle-exit must be at least 1 second") }
        if let recordsPerSlot, recordsPerSlot < 1 || recordsPerSlot > 1 << 20 {
            throw ValidationError("--records-per-slot must be between 1 and 1048576")
        }
        // What serves one process's input, not a server's many clients.
        if engineOptions.shard != nil { throw ValidationError("--shard does not apply to serve: each client shards its own input") }
        if engineOptions.rangeSize != "auto" { throw ValidationError("--range-size does not apply to serve") }
        if engineOptions.stats { throw ValidationError("--stats does not apply to serve") }
    }

    func run() throws {
        var configuration = try serverConfiguration()
        do {
            // First: it reads and unsets the environment before any thread starts.
            try configuration.adoptActivatedSocket(named: socket.map { FilePath($0) })
        } catch .activatedElsewhere(let named, let passed) {
            printError("sluice: --socket \(named) is not the socket systemd passed, \(passed); drop --socket or make them agree")
            throw ExitCode(2)
        } catch {
            printError("sluice: \(error.message)")
            throw ExitCode(2)
        }
        // A request holds one descriptor per file until the session reaches it.
        _ = try? Server.raiseDescriptorLimit()
        let server: Server
        do {
            server = try Server.startWaiting(configuration)
        } catch {
            throw report(error)
        }
        if engineOptions.verbose {
            for reason in server.session.reasons { printError("sluice: \(reason)") }
        }
        do {
            try server.run()
        } catch {
            server.closeWaiting()
            throw report(error)
        }
        server.closeWaiting()
        // A signal that stopped the server asked for a clean exit (0), not an interrupted run's 128 + N.
        Interrupt.reset()
    }

    /// The server's configuration from the command line.
    func serverConfiguration() throws -> Server.Configuration {
        let o = engineOptions
        var session = Session.Configuration()
        session.backend = o.backend
        session.devices = try DeviceSelection(parsing: o.devices)
        session.ingest = o.ingest
        session.ingestCopy = o.ingestCopy
        session.chunkBytes = o.chunkSize.value
        session.slotsPerRequest = requestSlots
        session.slots = o.slots
        session.workers = o.workers
        session.direct = o.direct
        session.watchdog = .seconds(o.watchdog)
        session.cpuScanEngine = cpuEngine
        session.recordsPerSlot = recordsPerSlot
        session.onNote = { printError("sluice: \($0)") }
        var c = Server.Configuration(socketPath: socket.map { FilePath($0) } ?? Server.defaultSocketPath, session: session)
        c.allowedUIDs = allowUID
        c.idleExit = idleExit.map { .seconds($0) }
        c.shouldStop = { Interrupt.isRequested }
        // The hints a local run prints, so that a client prints the same.
        c.hint = { $0.underlying?.hint ?? "" }
        return c
    }

    /// Prints why the server could not start or went on no longer; the exit status is 2.
    private func report(_ error: ServerError) -> ExitCode {
        printError("sluice: \(error.message)")
        if case .session(let failure) = error, let hint = failure.underlying?.hint { printError("hint: \(hint)") }
        return ExitCode(2)
    }
}
