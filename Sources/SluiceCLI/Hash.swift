#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Sluice

extension CRC32CText.Encoding: ExpressibleByArgument {}

/// `sluice hash`: CRC-32C checksums of files, like `sha256sum`, and `--check`.
struct Hash: ParsableCommand {
    // Named here, not derived from the type's name at every start (a reflection the client's latency pays).
    static let configuration = CommandConfiguration(
        commandName: "hash",
        abstract: "CRC-32C (Castagnoli) checksums of files and trees, or verify a list of them.",
        discussion: """
            Prints `CHECKSUM  PATH` per file (two spaces, like sha256sum): the CRC-32C of the whole \
            file as crc32c libraries compute it (polynomial 0x1EDC6F41, reflected, initial and final \
            XOR 0xFFFFFFFF). --format hex (the default) prints the 8 lowercase hex digits of the \
            value; --format base64 the base64 of its 4 big-endian bytes, the form cloud object \
            stores publish ("123456789" is e3069283, or 4waSgw==). A path containing a backslash, \
            newline or carriage return is written escaped (\\\\, \\n, \\r) on a line that starts with \
            a backslash, as sha256sum does. Directories are walked recursively in byte order; \
            symbolic links inside them are not followed and special files are skipped with a note. \
            Standard input (- or no path with a pipe) is checksummed as <stdin>; a FIFO or character \
            device named is read to its end, as are procfs and sysfs files. \
            Exit status: 0 on success, 2 if any path could not be checksummed (each is named on stderr).

            --check FILE reads lines in that format (either encoding, per line; - reads standard \
            input), checksums each file listed and prints `PATH: OK` or `PATH: FAILED`; a file that \
            cannot be read is FAILED with the reason on stderr. Exit status: 0 if every file \
            matches, 1 if any differs, 2 if any line is malformed (named with its line number) or \
            any listed file could not be read.
            """)

    @Option(help: "How checksums are written: hex (the default) or base64.")
    var format: CRC32CText.Encoding?

    @Flag(help: "One JSON object per file: path, crc32c (a string, in --format), bytes.")
    var json = false

    @Option(
        name: [.customShort("c"), .customLong("check")],
        help: ArgumentHelp("Verify the checksums listed in FILE (- for standard input).", valueName: "FILE"))
    var check: String?

    @OptionGroup var engineOptions: EngineOptions

    @OptionGroup var serverOptions: ServerOptions

    @Argument(help: "Files and directories to checksum; - (or none, with a pipe) reads standard input.")
    var paths: [String] = []

    func validate() throws {
        if check != nil {
            if !paths.isEmpty { throw ValidationError("--check takes the files to verify from its list, not from PATH arguments") }
            if json { throw ValidationError("--json does not apply to --check") }
            if format != nil { throw ValidationError("--format does not apply to --check (each line's encoding is detected)") }
            if engineOptions.shard != nil { throw ValidationError("--shard does not apply to --check") }
        } else {
            _ = try inputPaths(paths, what: "checksum")
        }
        try serverOptions.checkLocalOptions(engineOptions.localOnly)
    }

    func run() throws {
        if let check {
            let server = try serverOptions.connect(
            localOnly: engineOptions.localOnly, verbose: engineOptions.verbose,
            localIsFaster: ChecksumBackends.cpuReason(ingest: .auto))
            let plan = server == nil ? try engineOptions.plan(.hash, walk: nil) : nil
            plan?.startWarmUp()
            try verify(listPath: check, server: server, plan: { try plan ?? engineOptions.plan(.hash, walk: nil) })
        } else {
            try checksum()
        }
    }

    // MARK: Checksumming

    private func checksum() throws {
        let encoding = format ?? .hex
        let walk = FileWalker().expand(try inputPaths(paths, what: "checksum"))
        defer { walk.closeStreamCopies() }
        let server = try serverOptions.connect(
            localOnly: engineOptions.localOnly, verbose: engineOptions.verbose,
            localIsFaster: ChecksumBackends.cpuReason(ingest: .auto))
        // After the walk, which decides whether a GPU runs at all (it is quick next to the GPU's start).
        let plan = server == nil ? try engineOptions.plan(.hash, walk: walk) : nil
        plan?.startWarmUp()
        for note in walk.notes where !engineOptions.quiet { printError("sluice: \(note)") }
        var failed = !walk.errors.isEmpty
        for error in walk.errors { printError("sluice: \(error.message)") }
        let files = try engineOptions.selectShare(walk.files)
        var out = StandardOutput()
        // Whatever happens (an interrupt, an error), the checksums finished are printed.
        defer { out.flush() }
        if !files.isEmpty {
            let progress = ProgressLine(enabled: !engineOptions.quiet)
            try hashFiles(files, server: server, plan: { try plan ?? engineOptions.plan(.hash, walk: walk) }, progress: progress) { file in
                guard file.errors.isEmpty else {
                    failed = true
                    printFileErrors(file.errors, path: file.path.description, all: engineOptions.verbose)
                    return
                }
                let text = CRC32CText.format(file.crc32c, as: encoding)
                if json {
                    out.line("{\"path\":\(jsonPathValue(file.path.bytes)),\"crc32c\":\"\(text)\",\"bytes\":\(file.bytes)}")
                } else {
                    out.line(bytes: ChecksumLine.format(checksum: text, path: file.path))
                }
            }
        }
        out.flush()
        if failed { throw ExitCode(2) }
    }

    /// Runs the hash job over `files` on `server`, or on every selected
    /// device as `plan` says, outcomes in the order of `files`. (Every
    /// backend runs the crc32c opcode; `HashJob` refuses one that does not,
    /// before reading.) Under `--server auto`, the files a server did not
    /// answer run here.
    private func hashFiles(
        _ files: [RawPath], server: RemoteEngine?, plan: () throws -> ExecutionPlan, progress: ProgressLine,
        onFile: (FileHash) -> Void
    ) throws {
        var files = files
        if let server {
            var answered = 0
            let results = server.crc32c(files: .opening(files))
            let stopped = try drainServerResults(results, server: serverOptions, verbose: engineOptions.verbose) { file in
                answered += 1
                onFile(file)
            }
            guard stopped != nil else { return }
            files.removeFirst(answered)
        }
        let options = engineOptions
        let pool = try options.makePool(try plan(), resultWordsPerSlot: HashJob.resultWords, files: files)
        defer { try? pool.close() }
        try pool.crc32c(
            files,
            onFile: { (file: FileHash) in
                if !file.errors.isEmpty { progress.finish() }
                onFile(file)
            },
            onProgress: { p in progress.update(bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, filesDone: p.filesDone) })
        progress.finish()
        options.printStats(pool)
    }

    // MARK: Verifying

    /// `--check`: hashes every listed regular file and prints PATH: OK or
    /// PATH: FAILED per line of the list, in its order; the exit status says
    /// whether every file matched (0), one did not (1), or a line or file was bad (2).
    private func verify(listPath: String, server: RemoteEngine?, plan: () throws -> ExecutionPlan) throws {
        let list = try ChecksumList(reading: listPath)
        if list.entries.isEmpty && list.malformed == 0 {
            printError("sluice: \(list.name): no checksum lines found")
            throw ExitCode(2)
        }
        var report = VerifyReport(entries: list.entries, problems: regularFileProblem)
        defer { report.flush() }
        let hashed = report.entriesToHash
        if !hashed.isEmpty {
            let progress = ProgressLine(enabled: !engineOptions.quiet)
            var k = 0
            try hashFiles(hashed.map { list.entries[$0].path }, server: server, plan: plan, progress: progress) { file in
                report.record(hashed[k], file.errors.isEmpty ? .success(file.crc32c) : .failure(file.errors[0]))
                for e in file.errors.dropFirst() { printError("sluice: \(e.message)") }
                k += 1
            }
        }
        report.recordUpTo(list.entries.count)
        report.flush()
        try report.finish(malformed: list.malformed)
    }

    /// Why `path` cannot be checksummed (missing, unreadable, not a regular file), or nil.
    private func regularFileProblem(_ path: RawPath) -> PipelineError? {
        let st: Stat
        do { st = try path.stat() } catch { return .io(IOFailure(operation: "stat", path: path.description, errno: error.rawValue)) }
        guard st.type == .regular else {
            return .io(IOFailure(operation: "open", path: path.description, errno: 0, reason: "not a regular file"))
        }
        return nil
    }
}

/// A `--check` list: its entries in order, and how many lines were not
/// checksum lines (each named on standard error as it is read).
struct ChecksumList {
    /// "standard input" or the list's path, for messages.
    let name: String
    /// Each checksum line's path and expected CRC-32C, in the list's order.
    private(set) var entries: [(path: RawPath, expected: UInt32)] = []
    /// Lines that are neither blank nor `CHECKSUM  PATH`.
    private(set) var malformed = 0

    /// Reads the list at `path` (raw command-line bytes; - is standard input).
    init(reading path: String) throws(PipelineError) {
        let bytes = CommandLineBytes.intake.bytes(of: path)
        name = path == "-" ? "standard input" : RawPath(bytes: bytes).description
        let text = try readWholeFile(rawPath: bytes, what: "checksum list")
        var lines = text.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for (number, line) in lines.enumerated() {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard let entry = ChecksumLine.parse(line) else {
                malformed += 1
                printError("sluice: \(name):\(number + 1): malformed checksum line: expected `CHECKSUM  PATH` with an 8-digit hex or base64 CRC-32C")
                continue
            }
            entries.append(entry)
        }
    }
}

/// `--check`'s output: one verdict line per entry, printed in the list's
/// order as verdicts come (an entry that could not be hashed at all waits
/// for the hashed entries before it), and the tallies for the summary.
struct VerifyReport {
    private let entries: [(path: RawPath, expected: UInt32)]
    /// Entries that are not regular files, and why: they fail unread.
    private var problems: [Int: PipelineError] = [:]
    private var out = StandardOutput()
    private var printed = 0
    private var mismatched = 0
    private var unreadable = 0

    /// The report for `entries`, each asked first whether it can be hashed at all (`problems`).
    init(entries: [(path: RawPath, expected: UInt32)], problems problem: (RawPath) -> PipelineError?) {
        self.entries = entries
        for (i, entry) in entries.enumerated() {
            if let p = problem(entry.path) { problems[i] = p }
        }
    }

    /// The indices of the entries to hash, in order.
    var entriesToHash: [Int] { entries.indices.filter { problems[$0] == nil } }

    /// Entry `i`'s verdict: its CRC-32C, or why it could not be read.
    mutating func record(_ i: Int, _ verdict: Result<UInt32, PipelineError>) {
        recordUpTo(i)
        printVerdict(i, verdict)
        printed = i + 1
    }

    /// Prints the unhashable entries before `end` not printed yet.
    mutating func recordUpTo(_ end: Int) {
        while printed < end {
            if let p = problems[printed] { printVerdict(printed, .failure(p)) }
            printed += 1
        }
    }

    /// Writes what is buffered to standard output.
    mutating func flush() { out.flush() }

    /// The summary on standard error, and the exit status it implies.
    func finish(malformed: Int) throws {
        func plural(_ n: Int, _ one: String, _ many: String) -> String { "\(n) \(n == 1 ? one : many)" }
        if malformed > 0 { printError("sluice: WARNING: \(plural(malformed, "line is", "lines are")) improperly formatted") }
        if unreadable > 0 { printError("sluice: WARNING: \(plural(unreadable, "listed file", "listed files")) could not be read") }
        if mismatched > 0 { printError("sluice: WARNING: \(plural(mismatched, "computed checksum", "computed checksums")) did NOT match") }
        if malformed > 0 || unreadable > 0 { throw ExitCode(2) }
        if mismatched > 0 { throw ExitCode(1) }
    }

    private mutating func printVerdict(_ i: Int, _ verdict: Result<UInt32, PipelineError>) {
        let name = ChecksumLine.escapedPath(entries[i].path)
        switch verdict {
        case .success(let crc) where crc == entries[i].expected:
            out.line(bytes: name + Array(": OK".utf8))
        case .success:
            mismatched += 1
            out.line(bytes: name + Array(": FAILED".utf8))
        case .failure(let error):
            unreadable += 1
            out.line(bytes: name + Array(": FAILED".utf8))
            out.flush()
            printError("sluice: \(error.message)")
        }
    }
}

/// The `CHECKSUM  PATH` line format, with sha256sum's escaping: a path that
/// holds a backslash, newline or carriage return is written with `\\`, `\n`,
/// `\r` on a line that starts with a backslash. Paths are raw bytes: any
/// other byte (one that is not UTF-8 included) is written as it is.
enum ChecksumLine {
    static func needsEscape(_ path: RawPath) -> Bool {
        path.bytes.contains { $0 == 0x5C || $0 == 0x0A || $0 == 0x0D }
    }

    static func escape(_ path: RawPath) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(path.bytes.count)
        for b in path.bytes {
            switch b {
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            default: out.append(b)
            }
        }
        return out
    }

    /// One line's bytes, without the newline.
    static func format(checksum: String, path: RawPath) -> [UInt8] {
        needsEscape(path)
            ? [0x5C] + Array(checksum.utf8) + [0x20, 0x20] + escape(path)
            : Array(checksum.utf8) + [0x20, 0x20] + path.bytes
    }

    /// A path as `--check` prints it: escaped, with a leading backslash, when needed.
    static func escapedPath(_ path: RawPath) -> [UInt8] {
        needsEscape(path) ? [0x5C] + escape(path) : path.bytes
    }

    /// `CHECKSUM  PATH` (or `CHECKSUM *PATH`, sha256sum's binary marker), or nil.
    /// The path is the raw bytes up to the end of the line (a NUL in them is malformed).
    static func parse(_ raw: ArraySlice<UInt8>) -> (path: RawPath, expected: UInt32)? {
        var line = raw
        if line.last == 0x0D { line = line.dropLast() }  // a list saved with CRLF endings
        var escaped = false
        if line.first == 0x5C {
            escaped = true
            line = line.dropFirst()
        }
        guard let space = line.firstIndex(of: 0x20) else { return nil }
        let token = line[line.startIndex..<space]
        let rest = line[(space + 1)...]
        guard let marker = rest.first, marker == 0x20 || marker == 0x2A else { return nil }
        let pathBytes = rest.dropFirst()
        guard !pathBytes.isEmpty, !pathBytes.contains(0),
              let (crc, _) = CRC32CText.parse(String(decoding: token, as: UTF8.self)) else { return nil }
        guard escaped else { return (RawPath(bytes: pathBytes), crc) }
        var path: [UInt8] = []
        var i = pathBytes.startIndex
        while i < pathBytes.endIndex {
            let b = pathBytes[i]
            i += 1
            guard b == 0x5C else {
                path.append(b)
                continue
            }
            guard i < pathBytes.endIndex else { return nil }
            switch pathBytes[i] {
            case 0x5C: path.append(0x5C)
            case UInt8(ascii: "n"): path.append(0x0A)
            case UInt8(ascii: "r"): path.append(0x0D)
            default: return nil
            }
            i += 1
        }
        return (RawPath(bytes: path), crc)
    }
}
