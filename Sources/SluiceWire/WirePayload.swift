import SluiceCore

// Each message's payload layout; docs/serve-protocol.md draws them.
extension WireCodec {
    static func writePayload(_ message: WireMessage, into w: inout WireWriter) {
        switch message {
        case .hello(let h):
            w.u32(h.protocolVersion)
            w.text(h.client)
        case .welcome(let m):
            w.u32(m.protocolVersion)
            w.text(m.server)
        case .refused(let r):
            w.u16(r.reason.rawValue)
            w.u16(0)
            w.u32(r.serverProtocolVersion)
            w.text(r.message)
        case .request(let r):
            w.u32(r.id)
            w.u32(r.fileCount)
            if case .scan(let p) = r.operation { writeScan(p, into: &w) }
        case .files(let b):
            w.u32(b.request)
            w.u32(b.descriptorCount)
            w.u32(UInt32(truncatingIfNeeded: b.files.count))
            for f in b.files {
                w.u32(f.descriptor)
                w.counted(f.path.bytes)
            }
        case .cancel(let id):
            w.u32(id)
        case .matches(let m):
            w.u32(m.request)
            w.u32(m.file)
            w.u8((m.isComplete ? 1 : 0) | (m.newlines != nil ? 2 : 0))
            for _ in 0..<3 { w.u8(0) }
            w.u64(m.count)
            w.u64(m.newlines ?? 0)
            w.u32(UInt32(truncatingIfNeeded: m.matches.count))
            for match in m.matches {
                w.u64(match.offset)
                w.u32(match.pattern)
                w.u64(match.line ?? 0)
            }
        case .fileCount(let c):
            w.u32(c.request)
            w.u32(c.file)
            w.u64(c.bytes)
            w.u64(c.lines)
        case .fileHash(let h):
            w.u32(h.request)
            w.u32(h.file)
            w.u32(h.crc32c)
            w.u64(h.bytes)
        case .fileError(let e):
            w.u32(e.request)
            w.u32(e.file)
            w.u16(e.code.rawValue)
            w.u16(0)
            w.i32(e.errno)
            w.counted(e.path.bytes)
            w.text(e.message)
        case .done(let d):
            w.u32(d.request)
            w.u64(d.files)
            w.u64(d.failedFiles)
            w.u64(d.bytes)
            w.u64(d.matches)
        case .requestFailed(let f):
            w.u32(f.request)
            w.u16(f.code.rawValue)
            w.u16(0)
            w.i32(f.errno)
            w.text(f.message)
            w.text(f.hint)
        }
    }

    private static func writeScan(_ p: ScanParameters, into w: inout WireWriter) {
        w.u8((p.caseInsensitive ? 1 : 0) | (p.lineNumbers ? 2 : 0))
        w.u8(p.output.rawValue)
        w.u16(0)
        w.u32(UInt32(truncatingIfNeeded: p.literals.count))
        for literal in p.literals { w.counted(literal) }
    }

    static func readPayload(_ r: inout WireReader) throws(WireError) -> WireMessage {
        switch r.type {
        case .hello:
            let version = try r.u32("protocol version")
            return .hello(Hello(protocolVersion: version, client: try r.text("client")))
        case .welcome:
            let version = try r.u32("protocol version")
            return .welcome(Welcome(protocolVersion: version, server: try r.text("server")))
        case .refused:
            let raw = try r.u16("reason")
            guard let reason = Refusal.Reason(rawValue: raw) else {
                throw .malformed(message: r.type, field: "reason", detail: "unknown reason \(raw)")
            }
            try r.reserved(2, "reserved")
            let version = try r.u32("server protocol version")
            let text = try r.text("message")
            return .refused(Refusal(reason: reason, serverProtocolVersion: version, message: text))
        case .scan, .count, .hash:
            return .request(try readRequest(&r))
        case .files:
            return .files(try readFiles(&r))
        case .cancel:
            return .cancel(request: try r.u32("request"))
        case .matches:
            return .matches(try readMatches(&r))
        case .fileCount:
            let (request, file) = (try r.u32("request"), try r.u32("file"))
            let bytes = try r.u64("bytes")
            return .fileCount(FileCountReply(request: request, file: file, bytes: bytes, lines: try r.u64("lines")))
        case .fileHash:
            let (request, file) = (try r.u32("request"), try r.u32("file"))
            let crc = try r.u32("crc32c")
            return .fileHash(FileHashReply(request: request, file: file, crc32c: crc, bytes: try r.u64("bytes")))
        case .fileError:
            let (request, file) = (try r.u32("request"), try r.u32("file"))
            let code = try errorCode(&r)
            let errno = try r.i32("errno")
            let path = try r.path("path")
            let text = try r.text("message")
            return .fileError(FileErrorReply(request: request, file: file, code: code, errno: errno, path: path, message: text))
        case .done:
            let request = try r.u32("request")
            let (files, failed) = (try r.u64("files"), try r.u64("failed files"))
            let (bytes, matches) = (try r.u64("bytes"), try r.u64("matches"))
            return .done(RequestDone(request: request, files: files, failedFiles: failed, bytes: bytes, matches: matches))
        case .requestFailed:
            let request = try r.u32("request")
            let code = try errorCode(&r)
            let errno = try r.i32("errno")
            let text = try r.text("message")
            let hint = try r.text("hint")
            return .requestFailed(RequestFailure(request: request, code: code, errno: errno, message: text, hint: hint))
        }
    }

    private static func errorCode(_ r: inout WireReader) throws(WireError) -> WireErrorCode {
        let raw = try r.u16("code")
        guard let code = WireErrorCode(rawValue: raw) else {
            throw .malformed(message: r.type, field: "code", detail: "unknown error code \(raw)")
        }
        try r.reserved(2, "reserved")
        return code
    }

    private static func readRequest(_ r: inout WireReader) throws(WireError) -> WireRequest {
        let id = try r.u32("request")
        let fileCount = try r.u32("file count")
        switch r.type {
        case .count: return WireRequest(id: id, fileCount: fileCount, operation: .count)
        case .hash: return WireRequest(id: id, fileCount: fileCount, operation: .hash)
        default: break
        }
        let flags = try r.u8("flags")
        guard flags & ~3 == 0 else { throw .malformed(message: r.type, field: "flags", detail: "unknown bits 0x\(String(flags & ~3, radix: 16))") }
        let rawOutput = try r.u8("output mode")
        guard let output = ScanOutputMode(rawValue: rawOutput) else {
            throw .malformed(message: r.type, field: "output mode", detail: "unknown mode \(rawOutput)")
        }
        try r.reserved(2, "reserved")
        let n = try r.count("literal count", bytesEach: 4)
        var literals: [[UInt8]] = []
        literals.reserveCapacity(n)
        for _ in 0..<n {
            let length = Int(try r.u32("literal length"))
            literals.append(try r.take(length, "literal"))
        }
        let p = ScanParameters(literals: literals, caseInsensitive: flags & 1 != 0, output: output, lineNumbers: flags & 2 != 0)
        return WireRequest(id: id, fileCount: fileCount, operation: .scan(p))
    }

    private static func readFiles(_ r: inout WireReader) throws(WireError) -> FileBatch {
        let request = try r.u32("request")
        let descriptors = try r.u32("descriptor count")
        let n = try r.count("file count", bytesEach: FileBatch.bytesPerEntry)
        var files: [WireFile] = []
        files.reserveCapacity(n)
        for _ in 0..<n {
            let descriptor = try r.u32("descriptor index")
            files.append(WireFile(path: try r.path("path"), descriptor: descriptor))
        }
        return FileBatch(request: request, descriptorCount: descriptors, files: files)
    }

    private static func readMatches(_ r: inout WireReader) throws(WireError) -> MatchPiece {
        let (request, file) = (try r.u32("request"), try r.u32("file"))
        let flags = try r.u8("flags")
        guard flags & ~3 == 0 else { throw .malformed(message: r.type, field: "flags", detail: "unknown bits 0x\(String(flags & ~3, radix: 16))") }
        try r.reserved(3, "reserved")
        let count = try r.u64("count")
        let newlines = try r.u64("newlines")
        if flags & 2 == 0 && newlines != 0 {
            throw .malformed(message: r.type, field: "newlines", detail: "\(newlines) without the newlines flag")
        }
        let n = try r.count("matches", bytesEach: MatchPiece.bytesPerMatch)
        var matches: [WireMatch] = []
        matches.reserveCapacity(n)
        for _ in 0..<n {
            let offset = try r.u64("match offset")
            let pattern = try r.u32("match pattern")
            matches.append(WireMatch(offset: offset, pattern: pattern, line: try r.u64("match line")))
        }
        return MatchPiece(
            request: request, file: file, isComplete: flags & 1 != 0, count: count,
            newlines: flags & 2 != 0 ? newlines : nil, matches: matches)
    }

    /// The rules of the format beyond its layout, checked on every message
    /// encoded and every message decoded.
    static func validate(_ message: WireMessage, limits: WireLimits) throws(WireError) {
        let type = message.type
        func text(_ s: String) throws(WireError) {
            let n = s.utf8.count
            if n > limits.maxTextBytes { throw .limitExceeded(.textBytes, value: n, maximum: limits.maxTextBytes) }
        }
        func path(_ p: RawPath, _ field: String) throws(WireError) {
            if p.bytes.count > limits.maxPathBytes {
                throw .limitExceeded(.pathBytes, value: p.bytes.count, maximum: limits.maxPathBytes)
            }
            if p.bytes.isEmpty { throw .malformed(message: type, field: field, detail: "empty") }
            if let nul = p.bytes.firstIndex(of: 0) { throw .malformed(message: type, field: field, detail: "NUL byte at \(nul)") }
        }
        switch message {
        case .hello(let h): try text(h.client)
        case .welcome(let w): try text(w.server)
        case .refused(let r): try text(r.message)
        case .request(let r):
            if Int(r.fileCount) > limits.maxFilesPerRequest {
                throw .limitExceeded(.filesPerRequest, value: Int(r.fileCount), maximum: limits.maxFilesPerRequest)
            }
            guard case .scan(let p) = r.operation else { return }
            if p.literals.count > limits.maxLiterals {
                throw .limitExceeded(.literals, value: p.literals.count, maximum: limits.maxLiterals)
            }
            let bytes = p.literals.reduce(0) { $0 + $1.count }
            if bytes > limits.maxLiteralBytes { throw .limitExceeded(.literalBytes, value: bytes, maximum: limits.maxLiteralBytes) }
        case .files(let b):
            // The descriptors attached, then the files naming them (the decoder's order).
            for count in [Int(b.descriptorCount), b.files.count] where count > limits.maxDescriptorsPerMessage {
                throw .limitExceeded(.descriptorsPerMessage, value: count, maximum: limits.maxDescriptorsPerMessage)
            }
            for (i, f) in b.files.enumerated() {
                try path(f.path, "path of file \(i)")
                if f.descriptor >= b.descriptorCount {
                    throw .malformed(
                        message: type, field: "descriptor index of file \(i)",
                        detail: "\(f.descriptor) but \(b.descriptorCount) descriptors are attached")
                }
            }
        case .matches(let m):
            if UInt64(m.matches.count) > m.count {
                throw .malformed(message: type, field: "count", detail: "\(m.count) but \(m.matches.count) matches listed")
            }
            if let i = m.matches.firstIndex(where: { $0.line == 0 }) {
                throw .malformed(message: type, field: "line of match \(i)", detail: "lines are 1-based (nil is sent as 0)")
            }
            if m.newlines != nil && !m.isComplete {
                throw .malformed(message: type, field: "newlines", detail: "only a file's complete piece carries them")
            }
        case .fileError(let e):
            try path(e.path, "path")
            try text(e.message)
        case .done(let d):
            if d.failedFiles > d.files {
                throw .malformed(message: type, field: "failed files", detail: "\(d.failedFiles) of \(d.files) files")
            }
        case .requestFailed(let f):
            try text(f.message)
            try text(f.hint)
        case .cancel, .fileCount, .fileHash:
            break
        }
    }
}
