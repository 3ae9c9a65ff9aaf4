#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Sluice
import SluiceDiagnostics

/// `sluice doctor`: what this machine offers and what Sluice will use.
struct Doctor: ParsableCommand {
    // Named here, not derived from the type's name at every start (a reflection every command pays).
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Show what this machine offers (io_uring, O_DIRECT, GPUs, NVRTC, GPUDirect) and what Sluice will use.",
        discussion: """
            Exits 0 even without a GPU: a CPU-only machine is a valid configuration. Also says whether \
            a `sluice serve` answers at the socket clients use (--server, else SLUICE_SERVER when it is a \
            path, else $XDG_RUNTIME_DIR/sluice.sock or /tmp/sluice-UID.sock) and what it runs; a stale \
            socket, something else at the path or another user's server is reported as such.
            """)

    @Flag(help: "One JSON object, for scripts.")
    var json = false

    @Option(name: .customLong("server"), help: ArgumentHelp("The server socket to report on (default: the one `--server auto` clients try).", valueName: "PATH"))
    var server: String?

    @Argument(help: "Where the data lives (checked for O_DIRECT).")
    var path: String = "."

    func run() throws {
        let report = MachineReport.gather(path: path)
        let input = ExecutionPlan.Input.typicalScan
        // `sluice scan`'s defaults, packing small files included.
        var scan = EngineConfiguration()
        scan.deferIngestSetup = true
        let machine = MachineFacts.probe(.everything, dataPath: path)
        let plan = Result { () throws -> ExecutionPlan in
            try ExecutionPlan.make(configuration: scan, devices: .all, input: input, machine: machine)
        }
        let served = ServerProbe.probe(serverSocket)
        var out = StandardOutput()
        if json {
            let items = report.items.map(itemJSON).joined(separator: ",")
            let gpus = report.gpus.enumerated().map { gpuJSON($0, $1) }.joined(separator: ",")
            out.line(
                "{\"items\":[\(items)],\"plan\":\(planJSON(plan, input: input)),"
                    + "\"cost_model\":\(costModelJSON(hyperscanLoads: machine.hyperscanLoads)),"
                    + "\"server\":\(serverJSON(served)),\"gpus\":[\(gpus)]}")
        } else {
            let width = (report.items.map(\.name.count).max() ?? 0) + 2
            printMachine(report, served: served, width: width, into: &out)
            out.line("")
            out.line("Plan for \(input), with `sluice scan`'s default options (an input assumed for this report):")
            switch plan {
            case .success(let plan):
                for line in plan.lines {
                    out.line("   " + line.name + String(repeating: " ", count: max(1, width - line.name.count)) + line.text)
                }
            case .failure(let error):
                out.line("   \(error)")
            }
            costModelText(into: &out, width: width, hyperscanLoads: machine.hyperscanLoads)
            let hints = report.items.compactMap(\.enable)
            if !hints.isEmpty {
                out.line("")
                out.line("To enable more:")
                for h in hints { out.line("  - " + h) }
            }
        }
        out.flush()
    }

    /// One report item as a JSON object.
    private func itemJSON(_ item: MachineReport.Item) -> String {
        var f = "{\"name\":\(jsonString(Array(item.name.utf8))),\"value\":\(jsonString(Array(item.value.utf8))),"
            + "\"status\":\"\(item.status)\""
        if let e = item.enable { f += ",\"enable\":\(jsonString(Array(e.utf8)))" }
        return f + "}"
    }

    /// GPU `ordinal` as a JSON object: what was read of it, or why nothing was.
    private func gpuJSON(_ ordinal: Int, _ g: CUDAInventoryEntry) -> String {
        var f = "{\"ordinal\":\(ordinal)"
        if let info = g.info {
            f += ",\"name\":\(jsonString(Array(info.name.utf8))),\"memory_bytes\":\(info.memoryBytes)"
                + ",\"compute_capability\":\"\(info.computeCapability)\",\"multiprocessors\":\(info.multiprocessors)"
        }
        if let p = g.problem { f += ",\"problem\":\(jsonString(Array(p.utf8)))" }
        if let a = g.pciAddress { f += ",\"pci\":\"\(a)\"" }
        if let s = g.linkSpeed { f += ",\"link_speed\":\(jsonString(Array(s.utf8)))" }
        if let w = g.linkWidth { f += ",\"link_width\":\(jsonString(Array(w.utf8)))" }
        if let n = g.numaNode { f += ",\"numa_node\":\(n)" }
        if let n = g.numa { f += ",\"numa\":\(jsonString(Array(n.utf8)))" }
        return f + "}"
    }

    /// The report's items, the GPUs and the server, one line each (names padded to `width`).
    private func printMachine(_ report: MachineReport, served: ServerProbe, width: Int, into out: inout StandardOutput) {
        for item in report.items {
            let mark = item.status == "ok" ? "ok " : item.status == "missing" ? "-- " : "   "
            out.line(mark + item.name + String(repeating: " ", count: width - item.name.count) + item.value)
        }
        if report.gpus.isEmpty {
            out.line("   gpus" + String(repeating: " ", count: width - 4) + "none found")
        }
        for (i, g) in report.gpus.enumerated() {
            var line = "   gpu \(i)" + String(repeating: " ", count: max(1, width - 5 - String(i).count))
            if let info = g.info {
                let gib = Double(info.memoryBytes) / Double(1 << 30)
                line += "\(info.name), \(Int(gib.rounded())) GiB, \(info.computeCapability), \(info.multiprocessors) SMs"
            } else {
                line += g.problem ?? "unreadable"
            }
            if let s = g.linkSpeed, let w = g.linkWidth { line += ", PCIe \(s) x\(w)" }
            if let a = g.pciAddress { line += " at \(a)" }
            out.line(line)
            if let n = g.numa { out.line("   gpu \(i) numa" + String(repeating: " ", count: max(1, width - 10 - String(i).count)) + n) }
        }
        out.line((served.status == "ok" ? "ok " : "-- ") + "server" + String(repeating: " ", count: max(1, width - 6)) + serverText(served))
    }

    /// The socket to probe: `--server`, else `SLUICE_SERVER` when it names a path, else the default.
    private var serverSocket: FilePath {
        if let server { return FilePath(server) }
        if let value = getenv("SLUICE_SERVER"), value.pointee != 0,
           case .path(let path) = ServerOptions.parse(String(cString: value)) {
            return FilePath(path)
        }
        return RemoteEngine.defaultSocketPath
    }

    /// The server line's text: what answers at the socket, or what is wrong there.
    private func serverText(_ p: ServerProbe) -> String {
        let at = "\(p.socket)"
        let listener = "pid \(p.listenerPID.map(String.init) ?? "?"), uid \(p.listenerUID.map(String.init) ?? "?")"
        switch p.state {
        case .answers(let welcome):
            return "\(at): \(welcome.server) (protocol \(welcome.protocolVersion))"
        case .none:
            return "none at \(at) (scan, count and hash run locally; `sluice serve` starts one)"
        case .stale:
            return "\(at) is a stale socket: nothing listens on it (a server that died; the next `sluice serve` replaces it)"
        case .notASocket(let kind):
            return "\(at) is \(kind), not a socket (`sluice serve` leaves it alone and does not start there)"
        case .unreachable(let reason):
            return "\(at) cannot be reached: \(reason)"
        case .otherUser:
            return "\(at) is served by another user (listener \(listener)), not by this user or root: clients send it nothing"
        case .noHandshake(let reason):
            return "\(at) accepts connections (listener \(listener)) but did not complete the handshake: \(reason)"
        }
    }

    /// The probe as one JSON object: socket, status, and what the server said or what is wrong.
    private func serverJSON(_ p: ServerProbe) -> String {
        func text(_ s: String) -> String { jsonString(Array(s.utf8)) }
        var f = "{\"socket\":\(jsonPathValue(p.socket.withPlatformString { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) })),\"status\":\"\(p.status)\""
        if let pid = p.listenerPID { f += ",\"listener_pid\":\(pid)" }
        if let uid = p.listenerUID { f += ",\"listener_uid\":\(uid)" }
        switch p.state {
        case .answers(let welcome):
            f += ",\"protocol\":\(welcome.protocolVersion),\"server\":\(text(welcome.server))"
        case .notASocket(let kind):
            f += ",\"found\":\(text(kind))"
        case .unreachable(let reason), .noHandshake(let reason):
            f += ",\"reason\":\(text(reason))"
        case .none, .stale, .otherUser:
            break
        }
        return f + "}"
    }

    /// The cost model `auto` decides by, where it comes from, and each cost.
    private func costModelText(into out: inout StandardOutput, width itemWidth: Int, hyperscanLoads: Bool) {
        let path = CostModel.calibrationPath
        let (model, calibrated, note) = CostModel.load(path: path)
        let names = model.rows.map { "\($0.backend) \($0.work)" + ($0.literals.map { " \($0)" } ?? "") }
        let width = max(itemWidth, (names.map(\.count).max() ?? 0) + 2)
        func line(_ name: String, _ text: String) {
            out.line("   " + name + String(repeating: " ", count: max(1, width - name.count)) + text)
        }
        out.line("")
        out.line("Cost model (whole commands, warm page cache; `auto` runs the backend estimated to finish first):")
        line("source", model.source + ", measured with \(model.cores) cores")
        let file = path.map { calibrated ? $0 : "none taken at \($0) (`sluice bench calibrate` writes it)" } ?? "none (SLUICE_COST_MODEL=defaults, or no cache directory)"
        line("calibration", file + (note.map { "; \($0)" } ?? ""))
        line("cpu scans", hyperscanLoads
            ? "Hyperscan loads here: `auto` weighs the cpu scan rows (the cpu builtin-scan rows with --cpu-engine builtin)"
            : "Hyperscan does not load here: `auto` weighs the cpu builtin-scan rows")
        for (row, name) in zip(model.rows, names) {
            line(name, "start \(row.cost.startSeconds) s, then \(row.cost.bytesPerSecond / 1e9) GB/s")
        }
        for (backend, seconds) in model.matchRows {
            line("\(backend) per match", "\(seconds * 1e9) ns")
        }
        line("cuda ingest copy", copyPathText(model.cudaCopyEngineFaster))
    }

    /// What the model says of the copy path `--ingest-copy auto` takes.
    private func copyPathText(_ engineFaster: Bool?) -> String {
        switch engineFaster {
        case true?: "engine (measured faster than mapped)"
        case false?: "mapped (measured faster than the copy engine)"
        case nil: "not measured (auto reads mapped host memory)"
        }
    }

    /// The cost model as one JSON object: its source, the calibration file, and each cost.
    private func costModelJSON(hyperscanLoads: Bool) -> String {
        func text(_ s: String) -> String { jsonString(Array(s.utf8)) }
        let path = CostModel.calibrationPath
        let (model, calibrated, note) = CostModel.load(path: path)
        let rows = model.rows.map { row in
            "{\"backend\":\(text(row.backend)),\"work\":\(text(row.work)),\"literals\":\(row.literals.map(String.init) ?? "null"),"
                + "\"start_seconds\":\(row.cost.startSeconds),\"bytes_per_second\":\(row.cost.bytesPerSecond)}"
        }.joined(separator: ",")
        let matches = model.matchRows.map { "{\"backend\":\(text($0.backend)),\"seconds\":\($0.seconds)}" }.joined(separator: ",")
        return "{\"source\":\(text(model.source)),\"cores\":\(model.cores),\"calibrated\":\(calibrated),"
            + "\"hyperscan_loads\":\(hyperscanLoads),"
            + "\"path\":\(path.map(text) ?? "null"),\"note\":\(note.map(text) ?? "null"),\"costs\":[\(rows)],"
            + "\"seconds_per_match\":[\(matches)],"
            + "\"cuda_ingest_copy\":\(model.cudaCopyEngineFaster.map { text($0 ? "engine" : "mapped") } ?? "null")}"
    }

    /// The plan as one JSON object: the input it assumes, then each choice's value and reason.
    private func planJSON(_ plan: Result<ExecutionPlan, any Error>, input: ExecutionPlan.Input) -> String {
        func text(_ s: String) -> String { jsonString(Array(s.utf8)) }
        guard case .success(let p) = plan else {
            if case .failure(let error) = plan { return "{\"error\":\(text("\(error)"))}" }
            return "{}"
        }
        func choice(_ name: String, _ value: String, _ reason: String) -> String {
            "\"\(name)\":{\"value\":\(value),\"reason\":\(text(reason))}"
        }
        return "{\"input\":\(text(input.description)),"
            + [
                choice("backend", text(p.backend.value.rawValue), p.backend.reason),
                choice("ingest", text(p.ingest.value.gds?.useGDS == true ? "gds" : p.ingest.value.choice.rawValue), p.ingest.reason),
                choice("chunk_bytes", "\(p.chunkBytes.value)", p.chunkBytes.reason),
                choice("slots", "\(p.slots.value)", p.slots.reason),
                choice("prefetch_bytes", "\(p.prefetch.value)", p.prefetch.reason),
                choice("warm_up_devices", "[" + p.warmUp.value.map(String.init).joined(separator: ",") + "]", p.warmUp.reason),
            ].joined(separator: ",") + "}"
    }
}
