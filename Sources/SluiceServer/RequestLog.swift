import SluiceSocket
import SluiceWire

/// How a request ended, as its log line says it.
enum RequestResult: Hashable, Sendable {
    /// Every file was processed without an error.
    case ok
    /// The request ended, with this many files failed.
    case failedFiles(UInt64)
    /// The request failed as a whole, with this code.
    case error(WireErrorCode)
    /// The client cancelled it.
    case cancelled
    /// The client went away before it ended.
    case clientGone

    /// "ok", "2 failed", "error io", "cancelled", "client gone".
    var text: String {
        switch self {
        case .ok: return "ok"
        case .failedFiles(let n): return "\(n) failed"
        case .error(let code): return "error \(code.name)"
        case .cancelled: return "cancelled"
        case .clientGone: return "client gone"
        }
    }
}

/// The one line logged per request.
enum RequestLog {
    /// "pid 1234 uid 1000 scan: 12 files, 4096 bytes, ok, 0.013 s".
    static func line(
        peer: PeerCredentials, command: String, files: UInt64, bytes: UInt64, result: RequestResult, seconds: Double
    ) -> String {
        let millis = (seconds * 1000).rounded()
        let time = millis >= 1000 ? "\((millis / 10).rounded() / 100) s" : "\(Int(millis)) ms"
        return "pid \(peer.pid) uid \(peer.uid) \(command): \(files) file\(files == 1 ? "" : "s"), \(bytes) bytes, \(result.text), \(time)"
    }
}
