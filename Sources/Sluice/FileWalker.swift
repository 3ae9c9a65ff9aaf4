#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest
import SluiceSystem
import SluiceThreads
import Synchronization
import SystemPackage

/// Expands command-line paths into the files to process, in a
/// deterministic order: arguments as given, directories walked depth-first
/// with entries sorted by their bytes. Symbolic links met inside a walk are
/// not followed (a link named on the command line is, like `find -H`);
/// other non-regular files met inside a walk are skipped with a note.
///
/// This is where it is decided what is read besides regular files: streams
/// the user named, that is `-` (standard input, named `<stdin>`) and a FIFO
/// or character device given as an argument. Each is copied to its end into
/// a temporary file as the walk meets it (`SpooledInput`), since it can be
/// read only once and the scan reads by offset; the copy is what the scan
/// opens under that name. Block devices and sockets are still skipped.
///
/// Paths are bytes (`RawPath`): a name that is not UTF-8 is walked, opened
/// and reported like any other, and a child's path is its parent's as
/// spelled, a `/` (unless the parent ends with one) and the entry's name.
public struct FileWalker: Sendable {
    /// What the walk found.
    public struct Result: Sendable {
        /// The files to read, in order.
        public var files: [RawPath] = []
        /// Skipped entries, for stderr ("skipping FIFO: path").
        public var notes: [String] = []
        /// Paths that could not be examined; each counts as an error.
        public var errors: [PipelineError] = []
        /// The sizes of the `files` the walk stat'ed, added up (a hint for
        /// sizing buffers; the scan itself checks each file again).
        public var bytes: Int = 0
        /// Files whose sizes `bytes` adds up (all of them, or the first
        /// `sizedLimit` of a large tree: a sample of its file sizes).
        public var sizedFiles: Int = 0
        /// The copies of the streams among `files` (by name): they are read
        /// from these, so they must live until the run is over
        /// (`closeStreamCopies`).
        public var spooled: [SpooledInput] = []
        /// Files whose size the walk did not look up (found through
        /// readdir's `d_type` past the sample) or could not: not in `bytes`.
        public var unsizedFiles: Int { files.count - sizedFiles }

        /// Appends what a walk of a later part of the input found.
        mutating func append(_ other: Result) {
            files += other.files
            notes += other.notes
            errors += other.errors
            bytes += other.bytes
            sizedFiles += other.sizedFiles
            spooled += other.spooled
        }

        /// Closes the copies of the streams read (the run is over).
        public func closeStreamCopies() {
            for copy in spooled { copy.close() }
        }

        /// What the run will read, or nil when some sizes are unknown.
        public var inputHint: InputHint? {
            unsizedFiles == 0 ? InputHint(files: files.count, bytes: bytes) : nil
        }
    }

    /// Threads that walk the subdirectories of each directory named on the
    /// command line (1: the whole walk on the calling thread).
    public var threads: Int

    /// A walker with `threads` walking threads (at least 1); by default up to 8, fewer on a smaller machine.
    public init(threads: Int = min(8, ProcessorCount.online)) {
        self.threads = max(1, threads)
    }

    /// The files `paths` name, in order; `-` is standard input. Ctrl-C
    /// (`shouldStop`) ends the copy of a stream with an error.
    public func expand(_ paths: [RawPath], shouldStop: () -> Bool = { Interrupt.isRequested }) -> Result {
        var result = Result()
        let readsStandardInput = paths.contains("-")
        for path in paths {
            if path == "-" {
                admitStream(path: nil, name: InputSource.standardInputName, shouldStop: shouldStop, into: &result)
            } else if path == InputSource.standardInputName, readsStandardInput {
                // A file of that name, told apart from standard input's copy.
                visit(RawPath(bytes: Array("./".utf8) + path.bytes), followLink: true, fanOut: threads > 1, shouldStop: shouldStop, into: &result)
            } else {
                visit(path, followLink: true, fanOut: threads > 1, shouldStop: shouldStop, into: &result)
            }
        }
        if result.unsizedFiles > 0, result.files.count <= FileWalker.sizedLimit {
            // The fan-out shared the sample out; one thread would have sized
            // every file of so small an input: so does this (the ring is fitted to it).
            result.bytes = 0
            result.sizedFiles = 0
            for path in result.files {
                if let copy = result.spooled.first(where: { $0.name == path }) {
                    result.bytes += Int(copy.size)
                    result.sizedFiles += 1
                    continue
                }
                // stat, not lstat: a file named on the command line may be a link to it.
                if let st = try? path.stat() {
                    result.bytes += Int(st.size)
                    result.sizedFiles += 1
                }
            }
        }
        return result
    }

    /// A regular file's size is nil when it came from `d_type` (no stat).
    /// A stream (FIFO, character device) is read when named, skipped in a walk.
    private enum Kind { case regular(Int?), directory, symlink, stream(String), other(String) }

    private func kind(of path: RawPath, followLink: Bool) throws(PipelineError) -> Kind {
        let st: Stat
        do { st = try path.stat(followingLinks: followLink) } catch {
            throw .io(IOFailure(operation: "stat", path: path.description, errno: error.rawValue))
        }
        switch st.type {
        case .regular: return .regular(Int(st.size))
        case .directory: return .directory
        case .symbolicLink: return .symlink
        case .fifo: return .stream("FIFO")
        case .socket: return .other("socket")
        case .characterSpecial: return .stream("character device")
        case .blockSpecial: return .other("block device")
        default: return .other("special file")
        }
    }

    /// Files up to which the walk stats entries that readdir said are regular, for their sizes.
    static let sizedLimit = 4096

    private static func size(of path: RawPath) -> Int? {
        (try? path.stat(followingLinks: false)).map { Int($0.size) }
    }

    /// The kind readdir(3) already gave (`d_type`), so that a tree of many
    /// files costs no lstat per entry; nil where the filesystem does not say.
    private static func kind(ofEntryType type: UInt8) -> Kind? {
        switch Int(type) {
        case Int(DT_REG): return .regular(nil)
        case Int(DT_DIR): return .directory
        case Int(DT_LNK): return .symlink
        case Int(DT_FIFO): return .stream("FIFO")
        case Int(DT_SOCK): return .other("socket")
        case Int(DT_CHR): return .stream("character device")
        case Int(DT_BLK): return .other("block device")
        default: return nil
        }
    }

    /// With `fanOut`, a directory's subdirectories are walked on `threads`
    /// threads, each into a result of its own, and joined in entry order, so
    /// the result is the same as one thread's except for which file sizes
    /// were sampled (each subdirectory samples its first files, its share
    /// of `sizeLimit`).
    /// `followLink` is true for a path named on the command line (only
    /// such a path is followed if a link, and read if a stream).
    private func visit(
        _ path: RawPath, followLink: Bool, known: Kind? = nil, fanOut: Bool = false,
        sizeLimit: Int = FileWalker.sizedLimit, shouldStop: () -> Bool = { false }, into result: inout Result
    ) {
        let k: Kind
        if let known {
            k = known
        } else {
            do { k = try kind(of: path, followLink: followLink) } catch {
                result.errors.append(error)
                return
            }
        }
        switch k {
        case .regular(let size):
            result.files.append(path)
            if let size {
                result.bytes += size
                result.sizedFiles += 1
            } else if result.files.count <= sizeLimit, let size = FileWalker.size(of: path) {
                // A small tree's sizes are cheap to get and let the ring be
                // sized to it; a big tree keeps the d_type speed-up.
                result.bytes += size
                result.sizedFiles += 1
            }
        case .symlink:
            result.notes.append("skipping symbolic link: \(path)")
        case .stream where followLink:
            admitStream(path: path, name: path, shouldStop: shouldStop, into: &result)
        case .stream(let what), .other(let what):
            result.notes.append("skipping \(what): \(path)")
        case .directory:
            let entries: [(name: [UInt8], type: UInt8)]
            do {
                entries = try listDirectory(path)
            } catch {
                result.errors.append(error)
                return
            }
            let subdirectories = fanOut ? entries.indices.filter { entries[$0].type == UInt8(DT_DIR) } : []
            var walked: [Int: Result] = [:]   // by entry index
            if subdirectories.count >= 2 {
                // The sampled sizes stay about `sizeLimit` in all, shared out.
                let share = max(16, sizeLimit / subdirectories.count)
                for (k, part) in walkInParallel(subdirectories.map { path.appending(name: entries[$0].name) }, sizeLimit: share) {
                    walked[subdirectories[k]] = part
                }
            }
            for (i, entry) in entries.enumerated() {
                if let part = walked[i] {
                    result.append(part)
                } else {
                    visit(
                        path.appending(name: entry.name), followLink: false, known: FileWalker.kind(ofEntryType: entry.type),
                        sizeLimit: sizeLimit, into: &result)
                }
            }
        }
    }

    /// Copies the stream at `path` (nil: standard input) to its end and
    /// adds it to the files as `name`; a stream named twice is read once,
    /// and both mentions read that one copy.
    private func admitStream(path: RawPath?, name: RawPath, shouldStop: () -> Bool, into result: inout Result) {
        let copy: SpooledInput
        if let earlier = result.spooled.first(where: { $0.name == name }) {
            copy = earlier
        } else {
            do {
                copy = try SpooledInput(path: path, name: name, shouldStop: shouldStop)
            } catch {
                result.errors.append(error)
                return
            }
            result.spooled.append(copy)
        }
        result.files.append(name)
        result.bytes += Int(copy.size)
        result.sizedFiles += 1
    }

    /// Walks each of `directories` into a result of its own on up to
    /// `threads` threads; a directory whose thread could not start is left
    /// out of the answer (the caller walks it itself).
    private func walkInParallel(_ directories: [RawPath], sizeLimit: Int) -> [Int: Result] {
        let next = Atomic<Int>(0)
        let parts = Mutex<[Int: Result]>([:])
        var workers: [PosixThread] = []
        for _ in 0..<min(threads, directories.count) {
            let worker = try? PosixThread(name: "tree walker") {
                while true {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < directories.count else { return }
                    var part = Result()
                    visit(directories[i], followLink: false, known: .directory, sizeLimit: sizeLimit, into: &part)
                    parts.withLock { $0[i] = part }
                }
            }
            if let worker { workers.append(worker) }
        }
        workers.forEach { $0.join() }
        return parts.withLock { $0 }
    }

    /// The names in a directory, sorted by their bytes, without . and ..
    /// (any bytes: a name need not be UTF-8).
    private func listDirectory(_ path: RawPath) throws(PipelineError) -> [(name: [UInt8], type: UInt8)] {
        guard let dir = path.withCString({ opendir($0) }) else {
            let e = errno
            throw .io(IOFailure(operation: "opendir", path: path.description, errno: e))
        }
        defer { closedir(dir) }
        var names: [(name: [UInt8], type: UInt8)] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 {
                    let e = errno
                    throw .io(IOFailure(operation: "readdir", path: path.description, errno: e))
                }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append((name, entry.pointee.d_type))
        }
        names.sort { $0.name.lexicographicallyPrecedes($1.name) }
        return names
    }
}
