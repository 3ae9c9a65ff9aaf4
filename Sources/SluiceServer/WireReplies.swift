import Sluice
import SluiceWire

/// What a request's replies added up to: the `done` summary and the log line.
struct RequestTally: Sendable {
    /// The position of the next file to report (replies number files from 0).
    var nextFile: UInt32 = 0
    /// Files reported.
    var files: UInt64 = 0
    /// Files with at least one error.
    var failedFiles: UInt64 = 0
    /// Bytes read (scans: the passed files' sizes, counted as each is reported).
    var bytes: UInt64 = 0
    /// Matches found.
    var matches: UInt64 = 0

    /// Counts one file done: its errors, its bytes.
    mutating func fileDone(failed: Bool, bytes: UInt64) {
        files += 1
        nextFile &+= 1
        if failed { failedFiles += 1 }
        self.bytes &+= bytes
    }
}

/// The session's outcomes as wire messages, so that a client prints what a
/// local run prints: per-file errors carry the error's code, errno and its
/// message (which names the client's display path, since that is the name
/// the session was given), before the file's result.
enum WireReplies {
    /// The replies for one scan piece of file `tally.nextFile`. A piece
    /// with more matches than a frame holds goes in several; only the last
    /// of a complete piece is marked complete and carries the newlines.
    static func scan(
        _ piece: FileMatches, request: UInt32, fileSize: UInt64, limits: WireLimits, tally: inout RequestTally
    ) -> [WireMessage] {
        let file = tally.nextFile
        var replies = piece.isComplete ? fileErrors(piece.errors, request: request, file: file, path: piece.path, limits: limits) : []
        let perPiece = max(1, limits.maxMatchesPerPiece)
        var start = 0
        var counted: UInt64 = 0
        repeat {
            let end = min(piece.matches.count, start + perPiece)
            let last = end == piece.matches.count
            let matches = piece.matches[start..<end].map {
                WireMatch(offset: $0.offset, pattern: UInt32(clamping: $0.pattern), line: $0.line)
            }
            // The last wire piece stands for what the earlier ones did not list (count mode lists none).
            let rest = piece.count > counted ? piece.count - counted : 0
            let count = last ? max(rest, UInt64(matches.count)) : UInt64(matches.count)
            counted &+= count
            replies.append(.matches(MatchPiece(
                request: request, file: file, isComplete: last && piece.isComplete, count: count,
                newlines: last && piece.isComplete ? piece.newlines : nil, matches: matches)))
            start = end
        } while start < piece.matches.count
        tally.matches &+= piece.count
        if piece.isComplete { tally.fileDone(failed: !piece.errors.isEmpty, bytes: fileSize) }
        return replies
    }

    /// The replies for one counted file.
    static func count(_ file: FileCount, request: UInt32, limits: WireLimits, tally: inout RequestTally) -> [WireMessage] {
        let index = tally.nextFile
        tally.fileDone(failed: !file.errors.isEmpty, bytes: file.result.bytes)
        return fileErrors(file.errors, request: request, file: index, path: file.path, limits: limits)
            + [.fileCount(FileCountReply(request: request, file: index, bytes: file.result.bytes, lines: file.result.newlines))]
    }

    /// The replies for one checksummed file.
    static func hash(_ file: FileHash, request: UInt32, limits: WireLimits, tally: inout RequestTally) -> [WireMessage] {
        let index = tally.nextFile
        tally.fileDone(failed: !file.errors.isEmpty, bytes: file.bytes)
        return fileErrors(file.errors, request: request, file: index, path: file.path, limits: limits)
            + [.fileHash(FileHashReply(request: request, file: index, crc32c: file.crc32c, bytes: file.bytes))]
    }

    /// One `file-error` per error, in order.
    static func fileErrors(
        _ errors: [PipelineError], request: UInt32, file: UInt32, path: RawPath, limits: WireLimits
    ) -> [WireMessage] {
        errors.map { error in
            .fileError(FileErrorReply(
                request: request, file: file, code: WireErrorCode(error), errno: SluiceError(error).errno?.rawValue ?? 0,
                path: path, message: clip(error.message, limits: limits)))
        }
    }

    /// The `request-failed` of a request the session failed as a whole.
    static func failure(_ error: SluiceError, request: UInt32, hint: String, limits: WireLimits) -> WireMessage {
        .requestFailed(RequestFailure(
            request: request, code: WireErrorCode(error.code), errno: error.errno?.rawValue ?? 0,
            message: clip(error.message, limits: limits), hint: clip(hint, limits: limits)))
    }

    /// The `request-failed` of a request the server refused or stopped itself.
    static func failure(_ code: WireErrorCode, request: UInt32, message: String, limits: WireLimits) -> WireMessage {
        .requestFailed(RequestFailure(request: request, code: code, message: clip(message, limits: limits)))
    }

    /// The code a malformed or out-of-sequence message is refused with.
    static func code(for error: WireError) -> WireErrorCode {
        switch error {
        case .badMagic, .unknownType, .oversizedPayload, .truncated, .malformed, .endOfStreamInFrame: return .malformed
        case .limitExceeded, .requestSequence, .unexpectedMessage, .versionMismatch, .refused: return .invalidRequest
        }
    }

    /// `text` cut, at a character boundary, to the longest text field the limits allow.
    static func clip(_ text: String, limits: WireLimits) -> String {
        guard text.utf8.count > limits.maxTextBytes else { return text }
        var cut = ""
        for character in text {
            guard cut.utf8.count + character.utf8.count <= limits.maxTextBytes else { break }
            cut.append(character)
        }
        return cut
    }
}

extension WireErrorCode {
    /// The wire code of a library error code (the same name).
    init(_ code: SluiceError.Code) {
        self = WireErrorCode.allCases.first { $0.name == code.rawValue } ?? .invalidRequest
    }
}
