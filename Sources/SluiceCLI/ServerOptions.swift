#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Sluice

/// `--server auto|never|PATH` of `scan`, `count` and `hash`: whether a
/// resident `sluice serve` runs the work.
///
/// - `auto` (the default, or `SLUICE_SERVER`'s value): a server whose socket
///   at the default path answers the handshake runs the work; without one
///   the work runs here exactly as before. An engine option set to anything
///   but its default (`--backend`, `--devices`, `--chunk-size`, ...; see
///   `EngineOptions.localOnly`) asks for a local engine, so it runs here.
/// - `never`: always here.
/// - `PATH`: the server at PATH, or exit 2 naming it; an engine option with
///   it is a usage error (the server's engine options are its own).
///
/// Output, exit status and error messages are the same wherever the work
/// ran. A server that goes away mid-request (or fails a request) ends the
/// command with exit 2 under `PATH`; under `auto` the files it had not
/// answered run here, and stderr says so. Nothing is printed twice: what
/// the server's results printed stays, and the local run resumes after it
/// (inside a file scanned in part, after the matches printed).
struct ServerOptions: ParsableArguments {
    @Option(
        name: .customLong("server"),
        help: ArgumentHelp(
            """
            Where the work runs: auto (a `sluice serve` that answers at $XDG_RUNTIME_DIR/sluice.sock, else \
            /tmp/sluice-UID.sock; without one, or with an engine option such as --backend, --devices or \
            --chunk-size set, here), never (here) or the socket PATH of a server (an engine option with it \
            is an error: the server's engine is its own). SLUICE_SERVER sets the default. The output is the \
            same either way. A server that goes away mid-request: exit 2 with PATH; under auto the files it \
            did not answer run here, after what was printed (nothing twice), and stderr says so.
            """,
            valueName: "auto|never|PATH"))
    var server: String?

    /// What was asked for.
    enum Setting: Equatable {
        case auto
        case never
        case path(String)
    }

    /// The setting and the words that chose it (`--server never`, `SLUICE_SERVER=never`).
    var setting: (value: Setting, source: String) {
        if let server { return (Self.parse(server), "--server \(server)") }
        if let value = getenv("SLUICE_SERVER"), value.pointee != 0 {
            let text = String(cString: value)
            return (Self.parse(text), "SLUICE_SERVER=\(text)")
        }
        return (.auto, "the default")
    }

    static func parse(_ text: String) -> Setting {
        switch text {
        case "auto": return .auto
        case "never": return .never
        default: return .path(text)
        }
    }

    func validate() throws {
        if server == "" { throw ValidationError("--server takes auto, never or a socket path") }
    }

    /// Refuses engine options next to a server path: they cannot reach its engine.
    func checkLocalOptions(_ localOnly: [String]) throws {
        guard case .path(let path) = setting.value, let first = localOnly.first else { return }
        throw ValidationError(
            "\(first) sets up a local engine, but \(setting.source) sends the work to the server at \(path), "
                + "whose engine is its own (use --server auto or never to run here)")
    }

    /// Whether this is `auto`, under which work a server cannot finish runs here.
    var isAuto: Bool { setting.value == .auto }

    /// The server to run the work on, or nil to run it here, saying which
    /// and why on stderr with `verbose`. A server path that does not answer
    /// throws (exit 2, naming it).
    /// `localIsFaster`: why this machine does the work at least as fast
    /// here (checksums on CRC-32C instructions), which `auto` follows.
    func connect(localOnly: [String], verbose: Bool, localIsFaster: String? = nil) throws -> RemoteEngine? {
        let (value, source) = setting
        let socket: FilePath
        switch value {
        case .never:
            if verbose { printError("sluice: server: not used (\(source)); running locally") }
            return nil
        case .auto:
            socket = RemoteEngine.defaultSocketPath
            if let first = localOnly.first {
                if verbose { printError("sluice: server: not used (\(first) asks for a local engine); running locally") }
                return nil
            }
            if let localIsFaster {
                if verbose { printError("sluice: server: not used under auto (\(localIsFaster)); running locally") }
                return nil
            }
        case .path(let path):
            socket = FilePath(path)
        }
        do throws(RemoteConnectFailure) {
            let engine = try RemoteEngine.connect(to: socket, shouldStop: { Interrupt.isRequested })
            if verbose {
                printError("sluice: server: \(socket) (protocol \(engine.welcome.protocolVersion)): \(engine.welcome.server)")
            }
            return engine
        } catch {
            guard value == .auto else { throw error.sluiceError }
            if verbose { printError("sluice: server: none at \(socket) (\(error.reason)); running locally") }
            return nil
        }
    }

    /// Whether the files a server did not answer run here after `error`
    /// (under `auto`, unless the user stopped the run), saying so on stderr.
    /// `answered`: whether the server answered any file; a request it
    /// refused before that runs here quietly (with `verbose`, a line says why).
    func resumesLocally(after error: SluiceError, answered: Bool, verbose: Bool) -> Bool {
        // sessionClosed here is the server's (it is stopping): the command
        // never closes its own connection before the request ends.
        guard isAuto, error.code != .interrupted else { return false }
        if error.code == .serverLost || answered {
            printError("sluice: \(error.message); running the rest locally")
        } else if verbose {
            printError("sluice: server: it did not take the request (\(error.message)); running locally")
        }
        return true
    }
}

extension EngineOptions {
    /// The engine options set to anything but their defaults: each asks for
    /// a local engine (a server's are its own). `--shard`, `--verbose` and
    /// `--quiet` are the client's and work with a server.
    var localOnly: [String] {
        var given: [String] = []
        if backend != .auto { given.append("--backend") }
        if ingest != .auto { given.append("--ingest") }
        if ingestCopy != .auto { given.append("--ingest-copy") }
        if chunkSize.value != 4 << 20 { given.append("--chunk-size") }
        if slots != 0 { given.append("--slots") }
        if workers != 0 { given.append("--workers") }
        if direct { given.append("--direct") }
        if watchdog != 30 { given.append("--watchdog") }
        if devices != "all" { given.append("--devices") }
        if rangeSize != "auto" { given.append("--range-size") }
        if stats { given.append("--stats") }
        return given
    }
}

/// Reads a server request's results on this thread, calling `body` for
/// each; returns nil when it ended, or the error it failed with, once the
/// caller may run the rest here (`ServerOptions.resumesLocally`). `answered`
/// counts the results handed to `body`.
func drainServerResults<Element>(
    _ results: SluiceResults<Element>, server: ServerOptions, verbose: Bool, _ body: (Element) -> Void
) throws(SluiceError) -> SluiceError? {
    var answered = false
    do throws(SluiceError) {
        while let element = try results.nextWaiting() {
            answered = true
            body(element)
        }
        return nil
    } catch {
        guard server.resumesLocally(after: error, answered: answered, verbose: verbose) else { throw error }
        return error
    }
}
