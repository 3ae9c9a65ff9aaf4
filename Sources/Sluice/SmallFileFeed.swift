#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest
import SystemPackage

/// The scanner's side of small-file packing (`Scanner.Job.packing`): opens
/// files ahead of need on a `SmallFileLoader` pool, lays whole small files
/// back to back in a chunk buffer, reads them there on the pool, and says
/// when every read of a packed chunk has ended.
///
/// The scanner still decides everything that is visible: which file is
/// next (input order), when a unit is free, what is published and reported.
/// This type keeps the descriptors and buffers straight: every descriptor it
/// hands out or holds is closed exactly once, and `drain` returns only when
/// no pool thread can write into a chunk buffer any more.
final class SmallFileFeed {
    /// One file placed in a pack.
    struct Entry {
        var file: Scanner.PackedFile
        /// Stamp taken right after the open.
        var stamp: FileStamp
        /// Set when the read failed or the file changed; the file then leaves
        /// the pack (its bytes are not attributed to it) and is reported at once.
        var failed = false
        /// Packs it was in before, lost with their backend.
        var attempt = 0
    }

    /// The files of one unit's chunk buffer.
    final class Pack {
        let job: Int
        var entries: [Entry] = []
        /// Bytes of the buffer handed out so far.
        var end = 0
        var readsLeft = 0
        /// No more files will be added (the scanner moved on).
        var sealed = false

        init(job: Int) { self.job = job }

        /// The files whose bytes are all in place, in buffer order.
        var intact: [Scanner.PackedFile] { entries.filter { !$0.failed }.map(\.file) }
        /// The most packs any of its files was in before (fault injection sees it).
        var attempt: Int { entries.map(\.attempt).max() ?? 0 }
    }

    /// What the pool's completions mean to the scanner.
    enum Event {
        /// A packed file failed (read error, ended early, changed); report it now.
        case fileFailed(job: Int, file: Scanner.PackedFile, error: PipelineError)
        /// Every read of the unit's sealed pack ended: publish it or free the unit.
        case packRead(unit: Int)
    }

    let loader: SmallFileLoader
    /// The chunk buffers; a recovery moves them to the new backend's (`rebase`).
    private var region: UnsafeMutableRawBufferPointer
    private let chunkBytes: Int
    /// Descriptors the pool may hold at once (opened ahead, or being read).
    private let descriptorLimit: Int
    private var held = 0
    private var opened: [[Int: Result<SmallFileLoader.OpenedFile, PipelineError>]]
    private var nextToOpen: [Int]
    private(set) var packs: [Pack?]
    /// Events seen while waiting for an open, handed out by the next `poll`.
    private var pending: [Event] = []

    init(loader: SmallFileLoader, region: UnsafeMutableRawBufferPointer, chunkBytes: Int, units: Int, jobs: Int) {
        self.loader = loader
        self.region = region
        self.chunkBytes = chunkBytes
        opened = Array(repeating: [:], count: jobs)
        nextToOpen = Array(repeating: 0, count: jobs)
        packs = Array(repeating: nil, count: units)
        // Leave most of the process's descriptors to everything else.
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        let soft = getrlimit(resource, &limit) == 0 ? Int(clamping: limit.rlim_cur) : 1024
        descriptorLimit = max(16, min(256, soft / 4))
    }

    private static let indexBits = 40

    /// The open of `paths[index]` for job `job`, in input order: posts opens
    /// ahead (up to the descriptor limit), then waits for this one.
    func open(job: Int, paths: [String], index: Int, direct: Bool) -> Result<SmallFileLoader.OpenedFile, PipelineError> {
        var n = nextToOpen[job]
        // The one that is needed goes out even at the limit, so a job never
        // waits on opens another job's lookahead holds back.
        while n < paths.count, n <= index || held < descriptorLimit {
            loader.open(path: paths[n], direct: direct, token: job << SmallFileFeed.indexBits | n)
            held += 1
            n += 1
        }
        nextToOpen[job] = n
        while true {
            if let result = opened[job].removeValue(forKey: index) {
                held -= 1
                return result
            }
            collect(loader.take(waitingUntil: .now + .milliseconds(100)))
        }
    }

    /// Starts a pack in `unit`'s buffer.
    func beginPack(unit: Int, job: Int) {
        packs[unit] = Pack(job: job)
    }

    /// Bytes still free in `unit`'s pack.
    func room(unit: Int) -> Int { chunkBytes - (packs[unit]?.end ?? chunkBytes) }

    /// Places a file of `stamp.size` bytes (it must fit) at the end of
    /// `unit`'s pack and posts its read; the pool closes `fd`.
    func add(unit: Int, fileIndex: Int, path: String, fd: FileDescriptor, stamp: FileStamp, attempt: Int = 0) {
        let pack = packs[unit]!
        let length = Int(stamp.size)
        let start = unit * chunkBytes + pack.end
        let buffer = UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + length)])
        loader.readWhole(fd: fd, path: path, into: buffer, chunk: unit, token: unit << 20 | pack.entries.count)
        pack.entries.append(Entry(
            file: Scanner.PackedFile(fileIndex: fileIndex, path: path, offset: pack.end, length: length), stamp: stamp,
            attempt: attempt))
        pack.end += length
        pack.readsLeft += 1
        held += 1
    }

    /// Ends `unit`'s pack: no more files; `packRead` follows once its reads ended.
    func seal(unit: Int) {
        guard let pack = packs[unit] else { return }
        pack.sealed = true
        if pack.readsLeft == 0 { pending.append(.packRead(unit: unit)) }
    }

    /// Forgets `unit`'s pack (its slot was reclaimed or never published).
    func release(unit: Int) -> Pack? {
        defer { packs[unit] = nil }
        return packs[unit]
    }

    /// Events since the last poll; waits until `deadline` for one when
    /// none is ready and reads are in flight.
    func poll(waitingUntil deadline: ContinuousClock.Instant?) -> [Event] {
        collect(loader.take(waitingUntil: pending.isEmpty ? deadline : nil))
        defer { pending.removeAll() }
        return pending
    }

    var readsInFlight: Bool { loader.inflight > 0 }

    /// Packed files placed and not yet reported (for the pending count of an interrupt).
    var unreportedPackedFiles: Int {
        packs.reduce(0) { n, pack in n + (pack?.entries.filter { !$0.failed }.count ?? 0) }
    }

    /// The packs of a unit whose backend was lost, as `abandonPacks` hands them back.
    struct LostPack {
        var unit: Int
        var job: Int
        /// Its files whose reads did not fail, in buffer order; the pool
        /// closed their descriptors, their stamps are those of the first open.
        var files: [Entry]
    }

    /// After the backend lost its context: waits for every task on the pool
    /// (after it no thread writes into the lost backend's buffers), then
    /// forgets every pack, with any `packRead` not yet taken (a unit filled
    /// later must not see it), and hands back their intact files to be
    /// packed again. Files whose read failed stay as `fileFailed` events for
    /// the next `poll`; opens ahead stay valid and are kept.
    func abandonPacks() -> [LostPack] {
        collect(loader.drain())
        var lost: [LostPack] = []
        for (unit, pack) in packs.enumerated() {
            guard let pack else { continue }
            let files = pack.entries.filter { !$0.failed }
            if !files.isEmpty { lost.append(LostPack(unit: unit, job: pack.job, files: files)) }
        }
        packs = Array(repeating: nil, count: packs.count)
        pending.removeAll { event in
            if case .packRead = event { return true }
            return false
        }
        return lost
    }

    /// Packs from now on go into `region` (a rebuilt backend's chunk
    /// buffers) with `units` units; only after `abandonPacks`.
    func rebase(region: UnsafeMutableRawBufferPointer, units: Int) {
        precondition(packs.allSatisfy { $0 == nil }, "rebase with packs in flight")
        self.region = region
        packs = Array(repeating: nil, count: units)
    }

    /// Waits for every task, closes every descriptor opened ahead and not
    /// handed out, and forgets the packs. After it, no pool thread touches
    /// the chunk buffers.
    func drain() {
        collect(loader.drain())
        for job in opened.indices {
            for case .success(let file) in opened[job].values { try? file.fd.close() }
            opened[job] = [:]
        }
        pending.removeAll()
        held = 0
    }

    private func collect(_ completions: [SmallFileLoader.Completion]) {
        for completion in completions {
            switch completion {
            case .opened(let token, let result):
                opened[token >> SmallFileFeed.indexBits][token & (1 << SmallFileFeed.indexBits - 1)] = result
            case .read(let token, let result):
                held -= 1
                let unit = token >> 20, e = token & 0xFFFFF
                guard let pack = packs[unit] else { continue }
                pack.readsLeft -= 1
                let entry = pack.entries[e]
                let path = entry.file.path
                var failure: PipelineError?
                switch result {
                case .failure(let error):
                    failure = error
                case .success(let read) where read.bytes < entry.file.length:
                    failure = .fileChanged(
                        path: path,
                        detail: "read \(read.bytes) of \(entry.file.length) bytes before the end of the file")
                case .success(let read):
                    if let change = read.after.difference(from: entry.stamp) {
                        failure = .fileChanged(path: path, detail: change)
                    }
                }
                if let failure {
                    pack.entries[e].failed = true
                    pending.append(.fileFailed(job: pack.job, file: entry.file, error: failure))
                }
                if pack.readsLeft == 0, pack.sealed { pending.append(.packRead(unit: unit)) }
            }
        }
    }
}
