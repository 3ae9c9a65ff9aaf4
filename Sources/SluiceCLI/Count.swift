import ArgumentParser
import Sluice

/// `sluice count`: bytes and lines of files, like `wc -c -l`.
struct Count: ParsableCommand {
    // Named here, not derived from the type's name at every start (a reflection the client's latency pays).
    static let configuration = CommandConfiguration(
        commandName: "count",
        abstract: "Count lines and bytes of files and directory trees, like `wc -c -l`.",
        discussion: """
            Prints `LINES BYTES PATH` per file and a total when there is more than one file. \
            Directories are walked recursively in byte order; symbolic links inside them are \
            not followed and special files are skipped with a note. Standard input (- or no \
            path with a pipe) is counted as <stdin>; a FIFO or character device named is read \
            to its end, as are procfs and sysfs files. Exit status: 0 on success, \
            2 if any path could not be counted (each is named on stderr).
            """)

    @OptionGroup var engineOptions: EngineOptions

    @OptionGroup var serverOptions: ServerOptions

    @Argument(help: "Files and directories to count; - (or none, with a pipe) reads standard input.")
    var paths: [String] = []

    func validate() throws {
        _ = try inputPaths(paths, what: "count")
        try serverOptions.checkLocalOptions(engineOptions.localOnly)
    }

    func run() throws {
        let walk = FileWalker().expand(try inputPaths(paths, what: "count"))
        defer { walk.closeStreamCopies() }
        var failed = !walk.errors.isEmpty
        var rows: [(lines: UInt64, bytes: UInt64, path: RawPath)] = []
        var total = CountResult()
        var interruption: PipelineError?
        let progress = ProgressLine(enabled: !engineOptions.quiet)
        func add(_ file: FileCount) {
            if file.errors.isEmpty {
                rows.append((file.result.newlines, file.result.bytes, file.path))
                total.add(file.result)
            } else {
                failed = true
                progress.finish()
                printFileErrors(file.errors, path: file.path.description, all: engineOptions.verbose)
            }
        }
        if let server = try serverOptions.connect(localOnly: engineOptions.localOnly, verbose: engineOptions.verbose) {
            for note in walk.notes where !engineOptions.quiet { printError("sluice: \(note)") }
            for error in walk.errors { printError("sluice: \(error.message)") }
            let files = try engineOptions.selectShare(walk.files)
            var answered = 0
            var resumes = false
            do throws(SluiceError) {
                let results = server.count(files: .opening(files))
                resumes = try drainServerResults(results, server: serverOptions, verbose: engineOptions.verbose) { file in
                    answered += 1
                    add(file)
                } != nil
            } catch {
                // Print the files that were finished, then report the interrupt.
                guard let underlying = error.underlying, case .interrupted = underlying else { throw error }
                interruption = underlying
            }
            if resumes { interruption = try countHere(walk: walk, files: Array(files[answered...]), add) }
        } else {
            interruption = try countHere(walk: walk, files: nil, add)
        }

        // Like GNU wc: one width, that of the largest number printed.
        let width = max(1, String(max(total.bytes, total.newlines)).count)
        func pad(_ n: UInt64) -> String {
            let s = String(n)
            return String(repeating: " ", count: max(0, width - s.count)) + s
        }
        var out = StandardOutput()
        // The path's raw bytes, as wc prints them.
        for row in rows { out.line(bytes: Array("\(pad(row.lines)) \(pad(row.bytes)) ".utf8) + row.path.bytes) }
        if rows.count > 1 { out.line("\(pad(total.newlines)) \(pad(total.bytes)) total") }
        out.flush()
        if let interruption { throw interruption }
        if failed { throw ExitCode(2) }
    }

    /// Counts here: the walk's files (printing its notes and errors), or
    /// `files`, those a server did not answer. Returns the interrupt that
    /// stopped it, if one did (the rows finished are printed first).
    private func countHere(walk: FileWalker.Result, files given: [RawPath]?, _ add: (FileCount) -> Void) throws -> PipelineError? {
        // After the walk, which decides whether a GPU runs at all (it is quick next to the GPU's start).
        let plan = try engineOptions.plan(.count, walk: walk)
        plan.startWarmUp()
        if given == nil {
            for note in walk.notes where !engineOptions.quiet { printError("sluice: \(note)") }
            for error in walk.errors { printError("sluice: \(error.message)") }
        }
        let files = try given ?? engineOptions.selectShare(walk.files)
        let pool = try engineOptions.makePool(plan, resultWordsPerSlot: CountOp.resultWords, files: files)
        defer { try? pool.close() }
        let progress = ProgressLine(enabled: !engineOptions.quiet)
        var interruption: PipelineError?
        do throws(PipelineError) {
            try pool.count(
                files,
                onFile: { (file: FileCount) in
                    if !file.errors.isEmpty { progress.finish() }
                    add(file)
                },
                onProgress: { p in progress.update(bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, filesDone: p.filesDone) })
        } catch {
            guard case .interrupted = error else { throw error }
            interruption = error
        }
        progress.finish()
        engineOptions.printStats(pool)
        return interruption
    }
}
