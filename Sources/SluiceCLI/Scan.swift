import ArgumentParser
import Sluice

/// `sluice scan`: every occurrence of a set of literals in files and trees.
struct Scan: ParsableCommand {
    // Named here, not derived from the type's name at every start (a reflection the client's latency pays).
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Find every occurrence of a set of literal byte strings in files and trees.",
        discussion: """
            Prints `PATH:OFFSET:LITERAL` per match, sorted by path (byte order), then offset \
            (0-based byte offset in the file), then pattern number. Every occurrence is reported, \
            overlapping ones included (`aa` in `aaa` matches twice). Literals are bytes: \
            `-e` takes `\\xHH` escapes (and `\\\\` for a backslash); `-f FILE` reads one literal \
            per line like `grep -F -f` (the line ending is not part of it; empty lines are ignored). \
            Exact duplicate literals are reported once, under the first one's number. \
            Exit status: 0 if anything matched, 1 if nothing did, 2 if any error happened.
            """)

    @Option(name: [.customShort("e"), .customLong("regexp")], help: "A literal to find (repeatable).")
    var literals: [String] = []

    @Option(name: [.customShort("f"), .customLong("file")], help: "A file of literals, one per line.")
    var patternFiles: [String] = []

    @Flag(name: [.customShort("i"), .customLong("ignore-case")], help: "ASCII case-insensitive matching.")
    var ignoreCase = false

    @Flag(name: [.customShort("c"), .customLong("count")], help: "Print `PATH:N` for each file with matches.")
    var count = false

    @Flag(help: "One JSON object per match: path, offset, pattern (0-based index), literal.")
    var json = false

    @Flag(name: [.customShort("l"), .customLong("files-with-matches")], help: "Print only the paths of files with matches.")
    var filesWithMatches = false

    @Flag(
        name: [.customShort("n"), .customLong("line-number")],
        help: "Print `PATH:LINE:OFFSET:LITERAL`, LINE 1-based, like `grep -H -n -b -o`.")
    var lineNumber = false

    @Flag(
        name: [.customShort("Z"), .customLong("null")],
        help: "End each path with a NUL byte instead of `:` (with -l, instead of the newline), like grep -Z.")
    var null = false

    @Option(help: "Match records each slot holds before the host rescans its chunk (default: one per 512 bytes of chunk, at least 4096).")
    var recordsPerSlot: Int?

    // On by default since one pool task loads a whole pack (2026-12-06): for
    // 40,000 files of 16 KiB, 106 vs 417 ms unpacked on the 16-core H100
    // machine (benchmarks/RESULTS.md, run 22) and 270 vs 854 ms on 2 cores.
    // The old loader, two hand-offs per file, was slower than unpacked there
    // (runs 11-17).
    @Flag(
        inversion: .prefixedNo,
        help: "Pack small files several to a chunk, each pack loaded by one task on a pool of threads (the output is the same).")
    var pack = true

    @Option(
        name: .customLong("cpu-engine"),
        help: """
            The CPU backend's matcher: auto (Hyperscan or Vectorscan when libhs.so.5 loads and the set has \
            fewer than \(AutoScanEngine.builtinFromLiterals) literals, else built-in; -v says which and why), \
            hyperscan (fail if it does not load) or builtin. Both report the same matches.
            """)
    var cpuEngine: ScanEngineChoice = .auto

    @OptionGroup var engineOptions: EngineOptions

    @OptionGroup var serverOptions: ServerOptions

    @Argument(help: "Files and directories to scan; - (or none, with a pipe) reads standard input.")
    var paths: [String] = []

    func validate() throws {
        if [count, json, filesWithMatches].filter({ $0 }).count > 1 {
            throw ValidationError("--count, --json and --files-with-matches exclude each other")
        }
        if literals.isEmpty && patternFiles.isEmpty {
            throw ValidationError("give at least one literal with -e or a pattern file with -f")
        }
        if paths.isEmpty || paths.contains("-"), patternFiles.contains("-") {
            throw ValidationError("standard input holds the literals (-f -); name the files to scan")
        }
        _ = try inputPaths(paths, what: "scan")
        if let recordsPerSlot, recordsPerSlot < 1 || recordsPerSlot > 1 << 20 {
            throw ValidationError("--records-per-slot must be between 1 and 1048576")
        }
        try serverOptions.checkLocalOptions(localOnly)
    }

    /// The options only a local engine honours (`EngineOptions.localOnly` and scan's own).
    var localOnly: [String] {
        var given = engineOptions.localOnly
        if recordsPerSlot != nil { given.append("--records-per-slot") }
        if !pack { given.append("--no-pack") }
        if cpuEngine != .auto { given.append("--cpu-engine") }
        return given
    }

    func loadPatterns() throws -> PatternSet {
        // The command line's raw bytes where they are this command's values
        // (not when parsed from other words, as tests do).
        let raw = CommandLineBytes.intake
        let literalBytes = raw.literals.map { String(decoding: $0, as: UTF8.self) } == literals
            ? raw.literals : literals.map { Array($0.utf8) }
        let fileBytes = raw.patternFiles.map { String(decoding: $0, as: UTF8.self) } == patternFiles
            ? raw.patternFiles : patternFiles.map { Array($0.utf8) }
        var all: [[UInt8]] = try literalBytes.map { try PatternSet.decodeEscapes(bytes: $0) }
        for file in fileBytes {
            all += PatternSet.parseLines(try readWholeFile(rawPath: file, what: "pattern file"))
        }
        return try PatternSet(literals: all, caseInsensitive: ignoreCase)
    }

    func run() throws {
        // The walk first: it decides whether a GPU runs at all (a tree of
        // small files runs on the CPU), and is quick next to the GPU's
        // start, which then overlaps the pattern compile.
        let walk = FileWalker().expand(try inputPaths(paths, what: "scan"))
        defer { walk.closeStreamCopies() }
        PhaseTrace.mark("scan: walked \(walk.files.count) files")
        // The literals are read first (a quick parse): the longest may raise
        // the chunk size. The table compile then overlaps the warm-up.
        let patterns = try loadPatterns()
        let printer = ScanPrinter(
            format: json ? .json : filesWithMatches ? .paths : count ? .counts : .matches,
            lineNumbers: lineNumber, nullAfterPath: null, literals: patterns.literals)
        // Whatever happens (an interrupt, an error), what was found is printed.
        defer { printer.flush() }
        var failed = !walk.errors.isEmpty
        if let server = try serverOptions.connect(localOnly: localOnly, verbose: engineOptions.verbose) {
            for note in walk.notes where !engineOptions.quiet { printError("sluice: \(note)") }
            for error in walk.errors { printError("sluice: \(error.message)") }
            let files = try engineOptions.selectShare(PathOrder.sortedUnique(walk.files))
            if let resume = try scanOnServer(server, files: files, patterns: patterns, printer: printer, failed: &failed) {
                try scanHere(
                    walk: walk, patterns: patterns, printer: printer, failed: &failed,
                    resuming: (Array(files[resume.file...]), resume.printed))
            }
        } else {
            try scanHere(walk: walk, patterns: patterns, printer: printer, failed: &failed, resuming: nil)
        }
        printer.flush()
        if failed { throw ExitCode(2) }
        if !printer.matched { throw ExitCode(1) }
    }

    /// Scans on `server`, printing as the results come; nil when it
    /// finished, else where to resume here (`ServerOptions`): the first
    /// file not answered in full and the matches of it printed already.
    private func scanOnServer(
        _ server: RemoteEngine, files: [RawPath], patterns: PatternSet, printer: ScanPrinter, failed: inout Bool
    ) throws -> (file: Int, printed: UInt64)? {
        let mode: ScanMode = (count || filesWithMatches) ? .count : .matches
        let options = ScanOptions(caseInsensitive: ignoreCase, mode: mode, lineNumbers: lineNumber || json, packing: pack)
        let results = server.scan(
            files: .opening(files), literals: patterns.literals, options: options, filesWithMatches: filesWithMatches)
        var done = 0
        var printed: UInt64 = 0
        var anyFailed = false
        let stopped = try drainServerResults(results, server: serverOptions, verbose: engineOptions.verbose) { piece in
            if !piece.errors.isEmpty {
                anyFailed = true
                printFileErrors(piece.errors, path: piece.path.description, all: engineOptions.verbose)
            }
            printer.add(piece)
            printer.flushIfDue()
            if piece.isComplete {
                done += 1
                printed = 0
            } else {
                printed += piece.count
            }
        }
        if anyFailed { failed = true }
        return stopped == nil ? nil : (done, printed)
    }

    /// The plan and the compiled table. Where the cost model sends the scan
    /// to the CPU, a sample of the input's matches is taken first: a dense
    /// set costs the CPU far more per match than the GPU, so the density
    /// may send it to CUDA after all (it never moves a scan the other way).
    /// `remaining`: the files left to scan here when a server fell back, of which the estimate counts its share.
    private func planScan(walk: FileWalker.Result, patterns: PatternSet, remaining: [RawPath]?) throws -> (ExecutionPlan, ScanTable) {
        let share = remaining.map { Double($0.count) / Double(max(1, walk.files.count)) }
        let machine = MachineFacts.probe(.beforeWarmUp).probingHyperscan()
        // Only a set Hyperscan will run is looked up in its cache (hashing a large set costs time).
        let curve = CostModel.CPUScanCurve.of(
            engine: cpuEngine, hyperscanLoads: machine.hyperscanLoads, literals: patterns.literals.count)
        let cached = curve == .hyperscan ? patterns.hyperscanDatabaseCached : true
        func plan(_ density: Double) throws -> ExecutionPlan {
            try engineOptions.plan(
                .scan, walk: walk, overlapBytes: ScanJob.overlap(for: patterns), literals: patterns.literals.count,
                matchesPerByte: density, cpuScanEngine: cpuEngine, hyperscanCached: cached, shareOfWalk: share,
                deferIngestSetup: pack, machine: machine)
        }
        var chosen = try plan(0)
        guard chosen.backend.value == .cpu, chosen.estimate?.cpuIsCheaper == true, engineOptions.backend == .auto else {
            chosen.startWarmUp()
            return (chosen, ScanTable(patterns))
        }
        let table = ScanTable(patterns)
        if let density = MatchDensity.sample(walk.files, table: table), density > 0 {
            chosen = try plan(density)
            chosen.startWarmUp()
        }
        return (chosen, table)
    }

    /// Scans here: everything the walk found, or (`resuming`) the files a
    /// server did not finish, leaving out the first file's matches printed
    /// already. Walk notes and errors are printed here unless resuming.
    private func scanHere(
        walk: FileWalker.Result, patterns: PatternSet, printer: ScanPrinter, failed: inout Bool,
        resuming: (files: [RawPath], printed: UInt64)?
    ) throws {
        let (plan, table) = try planScan(walk: walk, patterns: patterns, remaining: resuming?.files)
        PhaseTrace.mark("scan: \(patterns.literals.count) literals compiled")
        if resuming == nil {
            for note in walk.notes where !engineOptions.quiet { printError("sluice: \(note)") }
            for error in walk.errors { printError("sluice: \(error.message)") }
        }
        // Output is sorted by path bytes; scanning in that order keeps memory flat.
        let files = try resuming?.files ?? engineOptions.selectShare(PathOrder.sortedUnique(walk.files))
        PhaseTrace.mark("scan: paths sorted")
        var skip = resuming?.printed ?? 0

        let mode: ScanMode = (count || filesWithMatches) ? .count : .matches
        // Count mode stores records too: packed small files need them to split a chunk's matches per file.
        let records = recordsPerSlot ?? ScanJob.defaultRecords(chunkBytes: plan.chunkBytes.value)
        let pool = try engineOptions.makePool(
            plan, resultWordsPerSlot: ScanJob.resultWords(records: records), cpuScanEngine: cpuEngine, files: files)
        defer { try? pool.close() }
        for engine in pool.engines {
            let line = try engine.installScan(table: table, patterns: patterns)
            if engineOptions.verbose {
                printError("sluice: device \(engine.device): scan engine \(line)")
            } else if let fallback = engine.scanEngineFallback {
                // Not an error (the output is the same), but slower than asked for.
                printError("sluice: device \(engine.device): \(fallback)")
            }
        }
        PhaseTrace.mark("scan: scan table installed")
        let progress = ProgressLine(enabled: !engineOptions.quiet)
        let output = ScanJob.Output(mode: mode, lineNumbers: mode == .matches && (lineNumber || json))

        try pool.scan(
            files, patterns: patterns, table: table, output: output, packing: pack,
            onMatches: { (found: FileMatches) in
                var piece = found
                if skip > 0 {
                    // Matches a server printed before it went away (the first file's, in order).
                    let dropped = min(skip, piece.count)
                    piece.matches.removeFirst(min(Int(dropped), piece.matches.count))
                    piece.count -= dropped
                    skip -= dropped
                }
                if !piece.errors.isEmpty {
                    failed = true
                    progress.finish()
                    printFileErrors(piece.errors, path: piece.path.description, all: engineOptions.verbose)
                }
                printer.add(piece)
            },
            onProgress: { p in
                printer.flushIfDue()
                progress.update(bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, filesDone: p.filesDone)
            },
            onIdle: { printer.flushIfDue() })
        PhaseTrace.mark("scan: every file scanned")
        progress.finish()
        engineOptions.printDeferredIngest(pool)
        engineOptions.printStats(pool)
    }
}

