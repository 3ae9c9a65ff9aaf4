import SluiceWire

/// Which peers a server serves: its own uid, always, and the uids it was
/// told to allow (`--allow-uid`). The uid is the one the kernel recorded
/// for the connecting process (`SO_PEERCRED`), which a client cannot forge.
public struct PeerAccess: Hashable, Sendable {
    /// Every uid served, the server's own included.
    public let allowedUIDs: Set<UInt32>

    /// Access for `uids` and `serverUID`.
    public init(allowing uids: some Sequence<UInt32>, serverUID: UInt32) {
        allowedUIDs = Set(uids).union([serverUID])
    }

    /// Whether a peer of `uid` is served.
    public func allows(_ uid: UInt32) -> Bool { allowedUIDs.contains(uid) }
}

/// The server's answer to a connection's `hello`: a pure decision, so that
/// every refusal can be tested without another user or a second version.
public enum Admission {
    /// The refusal of a uid the server does not serve; it names no uid that
    /// is served (a stranger learns nothing about who is).
    public static func refusal(uid: UInt32, serverVersion: UInt32 = WireProtocol.version) -> WireMessage {
        .refused(Refusal(
            reason: .uidNotAllowed, serverProtocolVersion: serverVersion,
            message: "uid \(uid) may not use this server (start it with --allow-uid \(uid) to serve that user)"))
    }

    /// What the server sends back: `refused` for a uid not served (asked
    /// first, so a stranger learns nothing else), a version mismatch (naming
    /// both versions), a server shutting down, or one with as many
    /// connections as it takes; else `welcome` carrying `server`.
    public static func answer(
        _ hello: Hello, peerUID: UInt32, access: PeerAccess, isStopping: Bool, isFull: Bool, server: String,
        serverVersion: UInt32 = WireProtocol.version
    ) -> WireMessage {
        guard access.allows(peerUID) else { return refusal(uid: peerUID, serverVersion: serverVersion) }
        let answer = WireHandshake.answer(hello, server: server, serverVersion: serverVersion)
        guard case .welcome = answer else { return answer }
        if isStopping {
            return .refused(Refusal(
                reason: .shuttingDown, serverProtocolVersion: serverVersion, message: "the server is shutting down"))
        }
        if isFull {
            return .refused(Refusal(
                reason: .busy, serverProtocolVersion: serverVersion,
                message: "the server has as many connections as it takes; try again later"))
        }
        return answer
    }
}
