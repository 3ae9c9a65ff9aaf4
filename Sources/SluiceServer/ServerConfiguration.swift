import Logging
import Sluice
import SluiceSocket
import SluiceWire
import SystemPackage

extension Server {
    /// How a server is set up: where it listens, the session it holds, whom
    /// it serves, when it leaves, and its limits.
    public struct Configuration: Sendable {
        /// The socket's path (created with mode 0600; a stale socket there is
        /// replaced); not used when `activatedSocket` is set.
        public var socketPath: FilePath
        /// The listening socket systemd passed (socket activation), served
        /// instead of binding `socketPath`. The server neither creates nor
        /// removes its file (systemd owns it, and starts the server again on
        /// the next connection after it left).
        public var activatedSocket: ActivatedSocket?
        /// The one session every client's requests run on.
        public var session: Session.Configuration
        /// Uids served besides the server's own, which is always served.
        public var allowedUIDs: [UInt32] = []
        /// Leave after this long with no connection open; nil: never.
        public var idleExit: Duration?
        /// The bounds on what clients send (and what the server sends back).
        public var limits = WireLimits()
        /// Connections served at once; one more is refused as `busy`.
        public var maxConnections = 256
        /// Requests one connection may have open (assembling or running) at once.
        public var maxOpenRequestsPerConnection = 16
        /// How often the accept loop and idle connections look at their stop
        /// conditions (a stop, a signal, the idle exit).
        public var pollInterval: Duration = .milliseconds(100)
        /// How long a stopping server waits for its connections' requests:
        /// past it, a request still receiving its files or blocked sending
        /// to a client that stopped reading is cancelled and its connection
        /// closed, so that a stop always ends.
        public var stopGrace: Duration = .seconds(30)
        /// Polled with `pollInterval`: true stops the server as `stop()` does
        /// (the CLI passes `Interrupt.isRequested`, set by SIGTERM and SIGINT).
        public var shouldStop: @Sendable () -> Bool = { false }
        /// What to do about a request's failure, sent as `request-failed`'s
        /// hint so that a client prints what a local run prints. The CLI
        /// passes its hints (which name its flags); the default gives none.
        public var hint: @Sendable (SluiceError) -> String = { _ in "" }
        /// Where the per-request lines go (standard error by default).
        public var logger = Logger(label: "sluice.serve", factory: { StreamLogHandler.standardError(label: $0) })

        /// A configuration serving `session` at `socketPath`.
        public init(socketPath: FilePath = Server.defaultSocketPath, session: Session.Configuration = Session.Configuration()) {
            self.socketPath = socketPath
            self.session = session
        }
    }

    /// `$XDG_RUNTIME_DIR/sluice.sock` when that is an absolute path, else `/tmp/sluice-UID.sock`.
    public static var defaultSocketPath: FilePath { ServerSocketPath.current() }
}

extension Server.Configuration {
    /// Takes the listening socket systemd passed (socket activation), if
    /// any: it reads and unsets the environment, so call it before any
    /// thread starts. `named` (a socket the command line named) must be that
    /// socket: a unit and a command line that disagree about where clients
    /// look is a mistake to show, not to guess about.
    public mutating func adoptActivatedSocket(named: FilePath?) throws(ServerError) {
        let activated: ActivatedSocket?
        do {
            activated = try SocketActivation.inheritedListener()
        } catch {
            throw .activation(error)
        }
        if let activated, let named, !activated.isBound(to: named) {
            throw .activatedElsewhere(named: named, passed: activated.description)
        }
        activatedSocket = activated
    }
}
