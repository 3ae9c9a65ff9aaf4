import ArgumentParser
import Sluice
import SluiceDiagnostics

/// `sluice bench`: dispatch latency, slots per second, count throughput.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure dispatch latency, slots per second and count throughput against their ceilings.",
        discussion: """
            Each mode prints a table (with --json, a JSON object on stdout and the table on stderr). \
            The ceilings it compares with (mapped-memory round trip, empty kernel launch + sync, \
            the raw io_uring read rate, a plain memcpy-and-launch loop) are measured in the same \
            process. docs/benchmarks.md describes the method.
            """,
        subcommands: [Dispatch.self, Slots.self, CountFile.self, ScanFile.self, Resident.self, Calibrate.self])

    struct Output: ParsableArguments {
        @Flag(help: "Print the result as JSON on stdout (the table goes to stderr).")
        var json = false

        @Flag(name: .shortAndLong, help: "No progress lines on stderr.")
        var quiet = false

        func emit(_ report: BenchReport) {
            if json {
                printError(report.table)
                var out = StandardOutput()
                out.line(report.json)
                out.flush()
            } else {
                var out = StandardOutput()
                out.line(report.table)
                out.flush()
            }
        }

        var log: (String) -> Void {
            let quiet = self.quiet
            return { line in if !quiet { printError("bench: \(line)") } }
        }
    }

    struct Dispatch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dispatch",
            abstract: "Publish one small slot (a nop, a 64-byte count), busy-poll until DONE; side by side with the mapped round trip and launch + sync.")

        @Option(help: "Slots timed per variant, and samples per ceiling.")
        var iterations: Int = 100_000

        @Option(help: "Untimed slots before each variant.")
        var warmup: Int = 2_000

        @Option(name: .customLong("idle-sleep"), parsing: .upToNextOption,
                help: "Idle-sleep caps (ns) of the megakernel's polling warps to measure; the first is the default.")
        var idleSleep: [Int] = []

        @OptionGroup var output: Output

        func validate() throws {
            guard iterations >= 1, iterations <= 100_000_000 else { throw ValidationError("--iterations must be between 1 and 100000000") }
            guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
            guard idleSleep.allSatisfy({ $0 >= 0 && $0 <= 1 << 24 }) else { throw ValidationError("--idle-sleep values must be between 0 and 16777216") }
        }

        func run() throws {
            var options = SluiceDiagnostics.Bench.DispatchOptions(iterations: iterations, warmup: warmup)
            if !idleSleep.isEmpty { options.sleepCaps = idleSleep }
            output.emit(try SluiceDiagnostics.Bench.dispatch(options, log: output.log))
        }
    }

    struct Slots: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "slots",
            abstract: "Slots per second with the whole ring in flight (count on small chunks), CUDA and CPU.")

        @Option(help: "Seconds per configuration.")
        var seconds: Double = 2

        @OptionGroup var output: Output

        func validate() throws {
            guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be between 0 and 600") }
        }

        func run() throws {
            output.emit(try SluiceDiagnostics.Bench.slots(.init(seconds: seconds), log: output.log))
        }
    }

    struct ScanFile: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "scan",
            abstract: "Scan (count-only) and hash throughput from a warm file, in the process, CUDA and CPU, beside the raw read.")

        @Argument(help: "The file to scan and hash (read warm from the page cache).")
        var path: String

        @Option(name: [.customShort("f"), .customLong("file")], help: "A pattern file (one literal per line); repeat for several sets.")
        var literalFiles: [String] = []

        @Option(name: .customLong("chunk-size"), help: "Bytes per chunk (suffixes K, M, G).")
        var chunkSize: ByteCount = ByteCount(4 << 20)

        @Option(help: "Timed runs of each method.")
        var repeats: Int = 2

        @Flag(name: .customLong("no-cpu"), help: "Skip the CPU backend.")
        var noCPU = false

        @Flag(name: .customLong("no-hash"), help: "Skip the hash rows.")
        var noHash = false

        @Option(
            name: .customLong("ingest-copy"),
            help: "The CUDA scans' copy path: auto, engine or mapped; repeat to time several in turn (an A/B in one run).")
        var copyPaths: [IngestCopyChoice] = []

        @OptionGroup var output: Output

        func validate() throws { try validateChunkAndRepeats(chunkSize, repeats) }

        func run() throws {
            var options = SluiceDiagnostics.Bench.ScanOptions(
                path: path, literalFiles: literalFiles, chunkBytes: chunkSize.value, repeats: repeats, cpu: !noCPU, hash: !noHash)
            if !copyPaths.isEmpty { options.copyPaths = copyPaths }
            output.emit(try SluiceDiagnostics.Bench.scan(options, log: output.log))
        }
    }

    struct Resident: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resident",
            abstract: "The scan kernel alone on chunks loaded once into the memory its workers read (GPU memory on CUDA): no reads, no PCIe for chunk bytes.",
            discussion: """
                Loads the first slots x chunk bytes of FILE once (on CUDA into the device ingest region), \
                then publishes scan slots over those chunks for --seconds, the ring kept full. Prints \
                GB/s, the slots run and the matches per pass, which must equal the host ScanOp's count \
                over the same bytes (exit 2 when they differ). Each chunk reads the longest literal \
                less one past its end, so a match across a chunk boundary is counted once.
                """)

        @Argument(help: "The file whose first slots x chunk bytes stay resident.")
        var path: String

        @Option(name: [.customShort("e"), .customLong("regexp")], help: "A literal to match (repeatable; \\xHH escapes).")
        var literals: [String] = []

        @Option(name: [.customShort("f"), .customLong("file")], help: "A file of literals, one per line (repeatable).")
        var patternFiles: [String] = []

        @Flag(name: .customLong("count-only"), help: "Scan slots that count matches and store no records.")
        var countOnly = false

        @Option(help: "auto, cpu or cuda.")
        var backend: BackendChoice = .auto

        @Option(name: .customLong("chunk-size"), help: "Bytes per chunk (suffixes K, M, G).")
        var chunkSize: ByteCount = ByteCount(4 << 20)

        @Option(help: "Ring slots (0: the backend's default).")
        var slots: Int = 0

        @Option(help: "Seconds timed (after a tenth of it untimed).")
        var seconds: Double = 2

        @OptionGroup var output: Output

        func validate() throws {
            guard !literals.isEmpty || !patternFiles.isEmpty else {
                throw ValidationError("give at least one literal with -e or a pattern file with -f")
            }
            try validateChunkAndRepeats(chunkSize, 1)
            guard chunkSize.value <= 1 << 30 else { throw ValidationError("--chunk-size must be at most 1G") }
            guard slots >= 0, slots <= 65_536 else { throw ValidationError("--slots must be between 0 and 65536") }
            guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be between 0 and 600") }
        }

        func run() throws {
            let decoded = try literals.map { try PatternSet.decodeEscapes(bytes: CommandLineBytes.intake.bytes(of: $0)) }
            let options = SluiceDiagnostics.Bench.ResidentOptions(
                path: path, patterns: try SluiceDiagnostics.Bench.residentPatterns(literals: decoded, files: patternFiles),
                countOnly: countOnly, backend: backend, chunkBytes: chunkSize.value, seconds: seconds, slots: slots)
            output.emit(try SluiceDiagnostics.Bench.resident(options, log: output.log))
        }
    }

    struct CountFile: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "count",
            abstract: "Count throughput from a file: sluice's path vs a memcpy-and-launch loop vs the raw read.")

        @Argument(help: "The file to count (read warm from the page cache).")
        var path: String

        @Option(name: .customLong("chunk-size"), help: "Bytes per chunk (suffixes K, M, G).")
        var chunkSize: ByteCount = ByteCount(4 << 20)

        @Option(help: "Timed runs of each method.")
        var repeats: Int = 3

        @Flag(name: .customLong("no-cpu"), help: "Skip the CPU backend.")
        var noCPU = false

        @Flag(help: "Add one run of each method with the page cache dropped first (root only).")
        var cold = false

        @OptionGroup var output: Output

        func validate() throws { try validateChunkAndRepeats(chunkSize, repeats) }

        func run() throws {
            let options = SluiceDiagnostics.Bench.CountOptions(
                path: path, chunkBytes: chunkSize.value, repeats: repeats, cpu: !noCPU, cold: cold)
            output.emit(try SluiceDiagnostics.Bench.count(options, log: output.log))
        }
    }
}

extension Bench {
    /// `sluice bench calibrate`: this machine's cost model, which `--backend auto` decides by.
    struct Calibrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "calibrate",
            abstract: "Measure what whole commands cost on each backend here, and save it for --backend auto.",
            discussion: """
                Runs `count` and `scan --count` (1,000, 10,000 and 100,000 literals) on the CPU backend \
                and, where a GPU is usable, on CUDA, each over a word text read warm and over its \
                first sixteenth (the line through the two gives the start and the rate), and writes \
                the fitted model where every command reads it (`sluice doctor` shows it). With \
                --text, --sparse and --dense it measures data like yours instead of its own word \
                text and literal sets. Takes about a minute with a GPU.
                """)

        @Option(help: "Size of the larger file, in MiB (the smaller is a sixteenth of it).")
        var mib: Int = 1024

        @Option(help: ArgumentHelp("A text like yours: its first --mib MiB (all of it, if shorter; at least 64 MiB) replace the generated word text.", valueName: "FILE"))
        var text: String?

        @Option(help: ArgumentHelp("A pattern file for the sparse scans (one literal per line); repeat for several counts. Replaces the generated 1,000 / 10,000 / 100,000.", valueName: "FILE"))
        var sparse: [String] = []

        @Option(help: ArgumentHelp("The pattern file of the dense scan (many matches), which gives the cost per match.", valueName: "FILE"))
        var dense: String?

        @Option(help: "Runs of each command; the fastest counts.")
        var repeats: Int = 2

        @Option(help: "Where the scratch files go (removed at the end).")
        var directory: String = "/var/tmp"

        @Option(help: ArgumentHelp("Where to write the model (default: the file every command reads).", valueName: "PATH"))
        var output: String?

        @Flag(name: .customLong("dry-run"), help: "Measure and print the model, but write nothing.")
        var dryRun = false

        func validate() throws {
            // The text is built in memory (a sixteenth more for the smaller file).
            guard mib >= 64, mib <= 8192 else { throw ValidationError("--mib must be between 64 and 8192") }
            guard repeats >= 1, repeats <= 100 else { throw ValidationError("--repeats must be between 1 and 100") }
        }

        func run() throws {
            var options = Calibration.Options(megabytes: mib, repeats: repeats, directory: directory)
            options.text = text
            options.sparse = sparse
            options.dense = dense
            let outcome = try Calibration.run(options, log: { printError("calibrate: \($0)") })
            for note in outcome.notes { printError("calibrate: \(note)") }
            var out = StandardOutput()
            out.bytes(Array(outcome.model.fileText.utf8))
            out.flush()
            guard !dryRun else { return }
            guard let path = output ?? CostModel.calibrationPath else {
                throw ValidationError("no cache directory ($XDG_CACHE_HOME or $HOME) to write the model to; give --output PATH")
            }
            try outcome.model.save(to: path)
            printError("calibrate: written to \(path)")
        }
    }
}

/// The checks the file benchmarks share.
private func validateChunkAndRepeats(_ chunkSize: ByteCount, _ repeats: Int) throws {
    guard chunkSize.value >= 4096, chunkSize.value % 4096 == 0 else {
        throw ValidationError("--chunk-size must be a multiple of 4096 bytes (4K), got \(chunkSize.value)")
    }
    guard repeats >= 1, repeats <= 100 else { throw ValidationError("--repeats must be between 1 and 100") }
}
