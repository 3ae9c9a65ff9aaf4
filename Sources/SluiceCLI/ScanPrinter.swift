import Sluice

/// Writes a streaming scan's pieces as `sluice scan` prints them, as they
/// come: one line per match, per file (`-c`) or path (`-l`). What is
/// buffered goes out at the latest `flushInterval` after it was added (the
/// scan's progress callback calls `flushIfDue`), so lines show up within a
/// chunk's time even when piped, and a tree of small files still gets one
/// write per 64 KiB.
final class ScanPrinter {
    enum Format {
        /// `PATH:OFFSET:LITERAL` (`PATH:LINE:OFFSET:LITERAL` with line numbers).
        case matches
        /// One JSON object per match.
        case json
        /// `PATH:N` per file with matches.
        case counts
        /// `PATH` per file with matches.
        case paths
    }

    let format: Format
    let lineNumbers: Bool
    /// `-Z`: a NUL after each path instead of `:` (instead of the newline with `-l`).
    let nullAfterPath: Bool
    let literals: [[UInt8]]
    private let literalJSON: [String]
    private var out = StandardOutput()
    /// When the buffer last went from empty to holding something.
    private var pendingSince: ContinuousClock.Instant?
    private let flushInterval = Duration.milliseconds(100)
    /// The current file's matches so far (for `-c`, `-l`).
    private var fileCount: UInt64 = 0
    /// Whether any file matched.
    private(set) var matched = false

    init(format: Format, lineNumbers: Bool, nullAfterPath: Bool, literals: [[UInt8]]) {
        self.format = format
        self.lineNumbers = lineNumbers
        self.nullAfterPath = nullAfterPath
        self.literals = literals
        literalJSON = format == .json ? literals.map(jsonLiteralField) : []
    }

    /// Prints one piece (errors are the caller's to report).
    func add(_ piece: FileMatches) {
        let before = fileCount
        fileCount += piece.count
        if piece.count > 0 { matched = true }
        switch format {
        case .matches: printMatches(piece)
        case .json: printJSON(piece)
        case .counts:
            if piece.isComplete, fileCount > 0 { out.line(bytes: pathBytes(piece.path) + Array("\(fileCount)".utf8)) }
        case .paths:
            if before == 0, fileCount > 0 { printPath(piece.path) }
        }
        if piece.isComplete { fileCount = 0 }
        if out.isEmpty {
            pendingSince = nil
        } else if pendingSince == nil {
            pendingSince = .now
        }
        flushIfDue()
    }

    /// Writes what is buffered once it has waited `flushInterval`.
    func flushIfDue() {
        if let since = pendingSince, ContinuousClock.now - since >= flushInterval { flush() }
    }

    func flush() {
        out.flush()
        pendingSince = nil
    }

    /// The path's raw bytes (as grep prints them) and what follows: `:` or, with `-Z`, NUL.
    private func pathBytes(_ path: RawPath) -> [UInt8] {
        path.bytes + [nullAfterPath ? 0 : UInt8(ascii: ":")]
    }

    private func printPath(_ path: RawPath) {
        if nullAfterPath {
            out.bytes(path.bytes + [0])
        } else {
            out.line(bytes: path.bytes)
        }
    }

    private func printMatches(_ piece: FileMatches) {
        guard !piece.matches.isEmpty else { return }
        let prefix = pathBytes(piece.path)
        for m in piece.matches {
            out.bytes(prefix)
            if lineNumbers {
                if let line = m.line { out.decimal(line) } else { out.bytes(CollectionOfOne(UInt8(ascii: "?"))) }
                out.bytes(CollectionOfOne(UInt8(ascii: ":")))
            }
            out.decimal(m.offset)
            out.bytes(CollectionOfOne(UInt8(ascii: ":")))
            out.bytes(literals[m.pattern])
            out.newline()
        }
    }

    private func printJSON(_ piece: FileMatches) {
        guard !piece.matches.isEmpty else { return }
        let path = jsonPathValue(piece.path.bytes)
        for m in piece.matches {
            let line = m.line.map(String.init) ?? "null"
            out.line("{\"path\":\(path),\"line\":\(line),\"offset\":\(m.offset),\"pattern\":\(m.pattern),\(literalJSON[m.pattern])}")
        }
    }
}
