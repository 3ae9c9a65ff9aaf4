import SluiceCore
import SluiceSocket
import SluiceWire
import SystemPackage

/// Why a session could not connect to a server, with the reason alone for
/// `sluice --verbose` ("server: none at PATH (no such file)").
package struct RemoteConnectFailure: Error, Sendable {
    /// The socket the session tried.
    package var socket: FilePath
    /// The reason in a few words ("no such file", "protocol version mismatch: ...").
    package var reason: String
    /// The errno behind it, where a system call failed.
    package var errno: Errno?

    /// The error a `Session` throws for it (`serverUnavailable`, naming the socket).
    package var sluiceError: SluiceError {
        var error = SluiceError(code: .serverUnavailable, message: "cannot use the sluice server at \(socket): \(reason)")
        error.path = socket
        error.errno = errno
        return error
    }

    /// A failed connect(2) (or a path that cannot be a socket address).
    static func connecting(_ socket: FilePath, _ error: SocketError) -> RemoteConnectFailure {
        switch error.errno {
        case .noSuchFileOrDirectory?: return RemoteConnectFailure(socket: socket, reason: "no such file", errno: error.errno)
        case .connectionRefused?:
            return RemoteConnectFailure(socket: socket, reason: "nothing listens there (connection refused)", errno: error.errno)
        case let errno?: return RemoteConnectFailure(socket: socket, reason: errno.description.lowercased(), errno: errno)
        case nil: return RemoteConnectFailure(socket: socket, reason: error.message, errno: nil)
        }
    }
}

/// The errors a session connected to `sluice serve` reports: its own
/// (no server, a server that went away, replies that break the protocol)
/// and the server's, rebuilt as the `PipelineError` values a local run
/// would have made, so that they print the same words and the CLI finds
/// the same hint for them.
enum RemoteErrors {
    /// The connection ended before the request did.
    static func lost(_ socket: FilePath, answered: Int, of files: Int, errno: Errno? = nil) -> SluiceError {
        let how = errno.map { "the connection failed (\($0.description.lowercased()))" } ?? "it closed the connection"
        var error = SluiceError(
            code: .serverLost,
            message: "the sluice server at \(socket) went away mid-request: \(how) after \(answered) of \(files) files were answered")
        error.path = socket
        error.errno = errno
        return error
    }

    /// The server's bytes or messages break the protocol.
    static func violation(_ socket: FilePath, _ detail: String) -> SluiceError {
        var error = SluiceError(code: .malformed, message: "the sluice server at \(socket) broke the protocol: \(detail)")
        error.path = socket
        return error
    }

    /// A `request-failed` reply as the error the request throws.
    static func requestFailed(_ failure: RequestFailure) -> SluiceError {
        error(code: failure.code, errno: failure.errno, path: "", message: failure.message)
    }

    /// A `file-error` reply as the file's error.
    static func fileError(_ reply: FileErrorReply) -> PipelineError {
        let path = reply.path.description
        let error = rebuild(code: reply.code, errno: reply.errno, path: path, message: reply.message)
        return error ?? approximate(code: reply.code, errno: reply.errno, path: path, message: reply.message)
    }

    /// The `SluiceError` for a failure the server reported: its code, its
    /// message word for word, and the underlying `PipelineError` rebuilt.
    static func error(code: WireErrorCode, errno: Int32, path: String, message: String) -> SluiceError {
        guard let own = SluiceError.Code(rawValue: code.name), own != .sessionClosed, own != .serverLost,
              own != .serverUnavailable else {
            var error = SluiceError(code: SluiceError.Code(rawValue: code.name) ?? .malformed, message: message)
            error.errno = errno == 0 ? nil : Errno(rawValue: errno)
            return error
        }
        var error = SluiceError(
            rebuild(code: code, errno: errno, path: path, message: message)
                ?? approximate(code: code, errno: errno, path: path, message: message))
        error.message = message
        return error
    }

    /// The `PipelineError` whose message is `message` word for word, of the
    /// kind `code` names, or nil when the message is not in a form this
    /// build makes for that kind.
    static func rebuild(code: WireErrorCode, errno: Int32, path: String, message m: String) -> PipelineError? {
        candidates(code: code, errno: errno, path: path, message: m).first { $0.message == m }
    }

    /// Readings of `m` as a `PipelineError` of kind `code` (checked by the caller).
    private static func candidates(code: WireErrorCode, errno: Int32, path: String, message m: String) -> [PipelineError] {
        switch code {
        case .invalidConfiguration:
            return after(m, "invalid configuration: ").map { [.invalidConfiguration($0)] } ?? []
        case .malformed:
            guard let rest = after(m, "malformed "), let (what, detail) = split(rest, ": ") else { return [] }
            return [.malformed(what: what, detail: detail)]
        case .invalidRequest:
            return invalidRequest(m)
        case .io:
            return io(m, errno: errno, path: path)
        case .slotFaulted:
            return slotFaulted(m, path: path)
        case .backendUnavailable:
            return split(m, " backend unavailable: ").map { [.backendUnavailable(backend: $0.0, reason: $0.1)] } ?? []
        case .gpu:
            guard let (call, rest) = split(m, " failed with "), let (number, text) = split(rest, ": "),
                  let result = Int32(number) else { return [] }
            return [.gpu(call: call, code: result, message: text)]
        case .readsStuck:
            guard let (file, rest) = pathPrefix(m, path, ": reads of chunks "),
                  let (list, tail) = split(rest, " did not complete within "), tail.hasSuffix(" s"),
                  let seconds = Double(tail.dropLast(2)), let chunks = numbers(list) else { return [] }
            return [.readsStuck(path: file, chunks: chunks, seconds: seconds)]
        case .fileChanged:
            guard let (file, rest) = pathPrefix(m, path, ": file changed while it was read ("), rest.hasSuffix(")") else { return [] }
            return [.fileChanged(path: file, detail: String(rest.dropLast()))]
        case .unaccounted:
            guard let (file, rest) = pathPrefix(m, path, ": chunks "), rest.hasSuffix(" were never completed"),
                  let chunks = numbers(String(rest.dropLast(" were never completed".count))) else { return [] }
            return [.unaccounted(path: file, chunks: chunks)]
        case .interrupted:
            guard let rest = after(m, "interrupted: "), let (finished, tail) = split(rest, " chunks finished, "),
                  tail.hasSuffix(" not processed"), let f = Int(finished),
                  let p = Int(tail.dropLast(" not processed".count)) else { return [] }
            return [.interrupted(finishedChunks: f, pendingChunks: p)]
        case .cancelled:
            guard let (file, rest) = pathPrefix(m, path, ": not processed, its job was cancelled"), rest.isEmpty else { return [] }
            return [.cancelled(path: file)]
        case .contextLost:
            guard let rest = after(m, "the "), let (backend, reason) = split(rest, " backend lost its context: ") else { return [] }
            return [.contextLost(backend: backend, reason: reason)]
        case .illegalTransition, .stuck, .recoveryFailed, .insufficientMemory, .sessionClosed, .serverUnavailable, .serverLost,
            .operationDidNotCompile:
            return []
        }
    }

    /// An error of kind `code` that carries `message` as its reason, for a
    /// message this build does not make (a server of another build): its
    /// words are close to the server's, its code and errno the same.
    static func approximate(code: WireErrorCode, errno: Int32, path: String, message: String) -> PipelineError {
        switch code {
        case .invalidConfiguration: return .invalidConfiguration(message)
        case .malformed: return .malformed(what: "reply", detail: message)
        case .invalidRequest: return .invalidRequest(chunk: nil, slot: nil, reason: message)
        case .io: return .io(IOFailure(operation: "read", path: path, errno: errno, reason: message))
        case .slotFaulted: return .slotFaulted(slot: 0, chunk: 0, path: path.isEmpty ? nil : path, code: .badArguments)
        case .backendUnavailable: return .backendUnavailable(backend: "server", reason: message)
        case .gpu: return .gpu(call: "the server", code: 0, message: message)
        case .readsStuck: return .readsStuck(path: path, chunks: [], seconds: 0)
        case .fileChanged: return .fileChanged(path: path, detail: message)
        case .unaccounted: return .unaccounted(path: path, chunks: [])
        case .interrupted: return .interrupted(finishedChunks: 0, pendingChunks: 0)
        case .contextLost: return .contextLost(backend: "server's", reason: message)
        case .recoveryFailed: return .recoveryFailed(attempts: 0, cause: message, unfinished: [])
        case .stuck: return .stuck(slots: [], seconds: 0, runner: .gpu)
        case .illegalTransition: return .malformed(what: "slot transition", detail: message)
        case .insufficientMemory: return .invalidConfiguration(message)
        case .cancelled, .sessionClosed, .serverUnavailable, .serverLost: return .cancelled(path: path)
        case .operationDidNotCompile: return .operationDidNotCompile(operation: "", line: nil, log: message)
        }
    }

    /// `[PATH: ]OPERATION failed[ (chunk C, offset O, L bytes)]: REASON[ (errno E)]`.
    private static func io(_ m: String, errno: Int32, path: String) -> [PipelineError] {
        var body = Substring(m)
        if errno != 0 {
            let suffix = " (errno \(errno))"
            guard body.hasSuffix(suffix) else { return [] }
            body = body.dropLast(suffix.count)
        }
        var found: [PipelineError] = []
        for failed in body.ranges(of: " failed") {
            let head = String(body[..<failed.lowerBound])
            var tail = body[failed.upperBound...]
            var chunk: Int?
            var offset: UInt64 = 0
            var length = 0
            if let place = tail.firstRange(of: " (chunk "), place.lowerBound == tail.startIndex,
               let close = tail.firstRange(of: "): ") {
                let fields = tail[place.upperBound..<close.lowerBound].split(separator: ", ")
                guard fields.count == 3, fields[1].hasPrefix("offset "), fields[2].hasSuffix(" bytes"),
                      let c = Int(fields[0]), let o = UInt64(fields[1].dropFirst(7)), let l = Int(fields[2].dropLast(6))
                else { continue }
                (chunk, offset, length) = (c, o, l)
                tail = tail[tail.index(close.lowerBound, offsetBy: 1)...]
            }
            guard tail.hasPrefix(": ") else { continue }
            let reason = String(tail.dropFirst(2))
            for (file, operation) in pathReadings(head, path) {
                found.append(.io(IOFailure(
                    operation: operation, path: file, fileOffset: offset, length: length, chunk: chunk, errno: errno,
                    reason: reason)))
            }
        }
        return found
    }

    /// `[chunk C, slot S: ]request rejected: REASON` (either place may be missing).
    private static func invalidRequest(_ m: String) -> [PipelineError] {
        guard let marker = m.firstRange(of: "request rejected: ") else { return [] }
        let reason = String(m[marker.upperBound...])
        let place = m[..<marker.lowerBound]
        if place.isEmpty { return [.invalidRequest(chunk: nil, slot: nil, reason: reason)] }
        guard place.hasSuffix(": ") else { return [] }
        var chunk: Int?
        var slot: Int?
        for part in place.dropLast(2).split(separator: ", ") {
            if part.hasPrefix("chunk "), let n = Int(part.dropFirst(6)) { chunk = n }
            else if part.hasPrefix("slot "), let n = Int(part.dropFirst(5)) { slot = n }
            else { return [] }
        }
        return [.invalidRequest(chunk: chunk, slot: slot, reason: reason)]
    }

    /// `[PATH: ]chunk C in slot S faulted: FAULT`.
    private static func slotFaulted(_ m: String, path: String) -> [PipelineError] {
        guard let marker = m.firstRange(of: "chunk ") else { return [] }
        let head = m[..<marker.lowerBound]
        let file: String?
        if head.isEmpty { file = nil } else if head.hasSuffix(": ") { file = String(head.dropLast(2)) } else { return [] }
        let rest = m[marker.upperBound...]
        guard let (c, tail) = split(String(rest), " in slot "), let (s, fault) = split(tail, " faulted: "),
              let chunk = Int(c), let slot = Int(s), let code = FaultCode.allCases.first(where: { $0.description == fault })
        else { return [] }
        return [.slotFaulted(slot: slot, chunk: chunk, path: file, code: code)]
    }

    /// The ways `head` reads as `PATH: OPERATION`: the known path first,
    /// then (a request's error names no path) a path up to each `: `, the
    /// last first (a path may hold `: `, an operation seldom does), then none.
    private static func pathReadings(_ head: String, _ path: String) -> [(String, String)] {
        var readings: [(String, String)] = []
        if !path.isEmpty, let rest = after(head, path + ": ") { readings.append((path, rest)) }
        for colon in head.ranges(of: ": ").reversed() {
            readings.append((String(head[..<colon.lowerBound]), String(head[colon.upperBound...])))
        }
        readings.append(("", head))
        return readings
    }

    /// `PATH` and what follows `marker` in `PATH` + `marker` + rest: the known path, else the first marker.
    private static func pathPrefix(_ m: String, _ path: String, _ marker: String) -> (String, String)? {
        if !path.isEmpty, let rest = after(m, path + marker) { return (path, rest) }
        return split(m, marker)
    }

    /// What follows `prefix` in `s`, or nil when `s` does not start with it.
    private static func after(_ s: String, _ prefix: String) -> String? {
        s.hasPrefix(prefix) ? String(s.dropFirst(prefix.count)) : nil
    }

    /// `s` split at the first `separator`.
    private static func split(_ s: String, _ separator: String) -> (String, String)? {
        guard let r = s.firstRange(of: separator) else { return nil }
        return (String(s[..<r.lowerBound]), String(s[r.upperBound...]))
    }

    /// `1, 2, 3` as numbers.
    private static func numbers(_ list: String) -> [Int]? {
        let parts = list.split(separator: ", ", omittingEmptySubsequences: false).map { Int($0) }
        return parts.contains(nil) ? nil : parts.map { $0! }
    }
}
