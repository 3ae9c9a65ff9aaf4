#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import SluiceCPU
import SluiceSystem

/// This same executable run again as a child process, its output kept in a
/// file, waited for with a deadline. The soak runs its CUDA context kills in
/// such children: after an illegal address the driver refuses every new
/// context in the process that caused it, so a kill in the soak's own process
/// would end its GPU use, while a child's kill leaves the parent's context and
/// kernel running (and shows that one process's lost context spares another).
///
/// Process creation and reaping are wrapped here once; nothing else in the
/// library spawns or waits.
struct ChildProcess {
    /// How a child ended.
    struct Outcome {
        /// Its exit status, or 128 + the signal that ended it.
        var status: Int32
        /// Standard output and error, interleaved as written.
        var output: String
        var seconds: Double
        /// It outlived the deadline and was killed (status is then 128 + SIGKILL).
        var timedOut: Bool
    }

    /// The executable of this process, as the kernel knows it.
    static var executablePath: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/proc/self/exe" }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `executable` (this process's own when nil) with `arguments` (no
    /// shell), standard input from /dev/null and both outputs into
    /// `outputPath` (removed afterwards), and waits until it exits or
    /// `timeout` passes, when it is killed.
    static func run(
        executable: String? = nil, arguments: [String], outputPath: String, timeout: Duration
    ) throws(PipelineError) -> Outcome {
        let executable = executable ?? executablePath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        defer { unlink(outputPath) }
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let started = monotonicNanoseconds()
        var pid = pid_t()
        let rc = posix_spawn(&pid, executable, &actions, nil, &argv, environ)
        guard rc == 0 else {
            throw .io(IOFailure(operation: "posix_spawn", path: executable, errno: rc))
        }
        let deadline = started + UInt64(max(0, timeout.components.seconds)) * 1_000_000_000
        var status: Int32 = 0
        var timedOut = false
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0, errno != EINTR {
                let e = errno
                throw .io(IOFailure(operation: "waitpid", path: executable, errno: e))
            }
            if !timedOut, monotonicNanoseconds() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
            }
            usleep(1_000)   // 1 ms: the calibration times children of a few tens of ms
        }
        let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let output = (try? readWholeFile(outputPath, what: "child output")) ?? []
        return Outcome(
            status: code, output: String(decoding: output, as: UTF8.self),
            seconds: Double(monotonicNanoseconds() - started) / 1e9, timedOut: timedOut)
    }
}
