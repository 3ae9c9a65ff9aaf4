#if canImport(Glibc)
import Glibc
#endif
import Testing

/// A scratch directory under /var/tmp (a real disk filesystem, where
/// O_DIRECT works; /tmp may be tmpfs), removed by `remove()`.
struct ScratchDirectory {
    let path: String

    init(_ name: String = "sluice-test") {
        var template = Array("/var/tmp/\(name)-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { buffer in
            guard let made = mkdtemp(buffer.baseAddress!) else { preconditionFailure("mkdtemp failed") }
            return String(cString: made)
        }
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `bytes` to `name` (creating parent directories).
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = file(name)
        var dir = ""
        for part in name.split(separator: "/").dropLast() {
            dir += "/" + part
            mkdir(path + dir, 0o755)
        }
        writeRawPath(Array(p.utf8), bytes)
        return p
    }

    func remove() { _ = run(["/bin/rm", "-rf", path]) }
}

/// The result of running a program.
struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `argv` with stdout and stderr captured (through temporary files, so
/// a large output cannot deadlock a pipe).
func run(_ argv: [String]) -> ProcessResult {
    let r = runBytes(argv.map { Array($0.utf8) })
    return ProcessResult(status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self), stderr: r.stderr)
}

func readFile(_ path: String) -> String {
    String(decoding: readBytes(path), as: UTF8.self)
}

func readBytes(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return [] }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return out
}

/// The `sluice` executable built beside this test bundle.
var sluiceExecutable: String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    let exe = String(decoding: buf[0..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    // The test runner is .build/<config>/SluicePackageTests.xctest (a file on Linux).
    return dir + "/sluice"
}

struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random bytes with newlines sprinkled in, so line counts are non-trivial.
func textLikeBytes(_ n: Int, _ rng: inout SeededRandom) -> [UInt8] {
    (0..<n).map { _ in
        let r = UInt8.random(in: 0...255, using: &rng)
        return r < 20 ? 10 : r
    }
}

/// Lines and bytes per path, parsed from `wc -c -l` output (the oracle).
func wcCounts(_ paths: [String]) -> [String: (lines: UInt64, bytes: UInt64)] {
    let r = run(["/usr/bin/wc", "-c", "-l"] + paths)
    var out: [String: (UInt64, UInt64)] = [:]
    for line in r.stdout.split(separator: "\n") {
        let parts = line.split(separator: " ")
        guard parts.count >= 3, let l = UInt64(parts[0]), let b = UInt64(parts[1]) else { continue }
        out[parts[2...].joined(separator: " ")] = (l, b)
    }
    return out
}

/// Files of the sizes around 4 KiB and 8 KiB chunk edges (and 0, 1, 3, 70,001
/// bytes) drawn from NUL, 0xFF, newline and mixed-case letters: binary and
/// case-folding edge cases in one set. Returns the paths and their bytes.
func writeBinaryEdgeFiles(_ dir: ScratchDirectory, seed: UInt64) -> (paths: [String], texts: [[UInt8]]) {
    var rng = SeededRandom(state: seed)
    var paths: [String] = []
    var texts: [[UInt8]] = []
    for (i, size) in [0, 1, 3, 4095, 4096, 4097, 8191, 8192, 8193, 70_001].enumerated() {
        let t: [UInt8] = (0..<size).map { _ in ([0, 255, 10, 65, 97, 66, 98] as [UInt8]).randomElement(using: &rng)! }
        texts.append(t)
        paths.append(dir.write("f\(i)", t))
    }
    return (paths, texts)
}

/// The environment of every `sluice` a test starts: this process's, with
/// the cost model pinned to its defaults (a calibration on the machine that
/// runs the tests must change no outcome) and no Hyperscan database cache
/// (each command compiles, as on a fresh machine), then `extra` (`NAME=VALUE`
/// entries, which replace inherited ones of the same name), less the names
/// `dropping` returns true for.
func childEnvironment(_ extra: [String] = [], dropping: (Substring) -> Bool = { _ in false }) -> [String] {
    var entries: [String] = []
    var index = 0
    while let entry = environ[index] {
        entries.append(String(cString: entry))
        index += 1
    }
    let replaced = ["SLUICE_COST_MODEL=defaults", "SLUICE_HYPERSCAN_CACHE=off"] + extra
    let names = Set(replaced.map { $0.prefix { $0 != "=" } })
    entries.removeAll { names.contains($0.prefix { $0 != "=" }) || dropping($0.prefix { $0 != "=" }) }
    return entries + replaced
}

/// `childEnvironment()` as the C array posix_spawn takes, for `body`.
func withChildEnvironment<T>(_ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> T) -> T {
    let env = cStrings(childEnvironment().map { Array($0.utf8) })
    defer { env.forEach { $0?.deallocate() } }
    return env.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Runs `argv` given as raw bytes (names that are not UTF-8 pass intact),
/// with stdout captured as bytes, through temporary files like `run`.
func runBytes(_ argv: [[UInt8]]) -> (status: Int32, stdout: [UInt8], stderr: String) {
    let outPath = "/var/tmp/sluice-test-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let errPath = outPath + ".err"
    defer { unlink(outPath); unlink(errPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    var cargs = cStrings(argv)
    defer { cargs.forEach { $0?.deallocate() } }
    var pid = pid_t()
    let rc = withChildEnvironment { env in posix_spawn(&pid, cargs[0]!, &actions, nil, &cargs, env) }
    guard rc == 0 else { return (-1, [], "posix_spawn failed: \(rc)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    return (code, readBytes(outPath), readFile(errPath))
}

/// Creates (or replaces) the file at the raw path `path` holding `bytes`.
func writeRawPath(_ path: [UInt8], _ bytes: [UInt8]) {
    let fd = (path.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer {
        open($0.baseAddress!, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    }
    precondition(fd >= 0, "open \(String(decoding: path, as: UTF8.self)) failed")
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(n > 0)
        off += n
    }
    close(fd)
}

/// `argv` as NUL-terminated C strings, then a nil, for posix_spawn; the
/// caller deallocates each.
func cStrings(_ argv: [[UInt8]]) -> [UnsafeMutablePointer<CChar>?] {
    argv.map { bytes in
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        for (i, b) in bytes.enumerated() { p[i] = CChar(bitPattern: b) }
        p[bytes.count] = 0
        return p
    } + [nil]
}

/// Runs `body` (a posix_spawn) with attributes for a child of the test
/// runner: no signal blocked (the runner blocks some on its threads, and a
/// child must not inherit that) and, with `defaultSIGPIPE`, SIGPIPE's default action.
func withChildSpawnAttributes<T>(defaultSIGPIPE: Bool = false, _ body: (inout posix_spawnattr_t) -> T) -> T {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var flags = Int16(POSIX_SPAWN_SETSIGMASK)
    if defaultSIGPIPE {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &set)
        flags |= Int16(POSIX_SPAWN_SETSIGDEF)
    }
    posix_spawnattr_setflags(&attributes, flags)
    return body(&attributes)
}
