#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceCUDA
import SluiceIngest
import SluiceSystem
import Synchronization
import SystemPackage

/// Whether an engine reads with cuFile into GPU memory, and why: the logic
/// behind `--ingest gds` and the GDS half of `--ingest auto`, on facts that
/// tests can inject.
public enum GDSPlan {
    /// The decision before the backend exists.
    public struct Decision: Equatable, Sendable {
        /// Allocate a device ingest region and read through cuFile.
        public var useGDS: Bool
        /// `--ingest gds` asked for it (so failing to set it up is an error, not a fallback).
        public var forced: Bool
        /// Why (the GDS part of the ingest reason); nil when GDS was not considered.
        public var note: String?

        /// A decision with each field as given.
        public init(useGDS: Bool, forced: Bool, note: String?) {
            self.useGDS = useGDS
            self.forced = forced
            self.note = note
        }
    }

    /// `.gds` reads through cuFile even in compatibility mode (it is how that
    /// mode is tested and measured) and throws where cuFile cannot read at
    /// all or the backend cannot be CUDA. `.auto` takes cuFile only when it
    /// is truly direct, and says why not otherwise. `.uring` and `.pread`
    /// never look (`capability` is not called). `settingName` names a
    /// forced `.gds` in the notes (the CLI names its flag).
    public static func decide(
        ingest: IngestChoice, backend: BackendChoice,
        settingName: (ConfiguredSetting) -> String = ConfiguredSetting.inTheConfiguration,
        capability: () -> CuFileCapability
    ) throws(PipelineError) -> Decision {
        switch ingest {
        case .uring, .pread:
            return Decision(useGDS: false, forced: false, note: nil)
        case .gds:
            guard backend != .cpu else {
                throw .invalidConfiguration(
                    "ingest gds reads chunks into GPU memory, which the CPU backend cannot read; run the CUDA backend (or auto on a machine with a GPU), or read with io_uring on the CPU backend")
            }
            let c = capability()
            if c.libraryLoads, !c.udevDatabase, case .unusable(let why) = c.mode {
                // cuFile would refuse every file (CU_FILE_HANDLE_NOT_REGISTERED): say why up front.
                throw .backendUnavailable(backend: "gds", reason: "ingest gds: \(why)")
            }
            switch c.mode {
            case .unavailable(let why):
                throw .backendUnavailable(backend: "gds", reason: "ingest gds needs cuFile: \(why)")
            case .unusable(let why):
                // Forced: Sluice allows compatibility mode for its own process
                // (CuFileDriverSession), and cuFile's own error is the answer if
                // it still refuses.
                return Decision(
                    useGDS: true, forced: true,
                    note: "compatibility mode, NOT direct (POSIX reads into a host bounce buffer, then a copy to the GPU): \(why); forced with \(settingName(.ingest(.gds))), which turns allow_compat_mode on for this process")
            case .compatibility(let why):
                return Decision(
                    useGDS: true, forced: true,
                    note: "compatibility mode, NOT direct (POSIX reads into a host bounce buffer, then a copy to the GPU): \(why); forced with \(settingName(.ingest(.gds)))")
            case .direct(let how):
                return Decision(useGDS: true, forced: true, note: "direct GPUDirect Storage (\(how)); chosen with \(settingName(.ingest(.gds)))")
            }
        case .auto:
            guard backend != .cpu else { return Decision(useGDS: false, forced: false, note: nil) }
            let c = capability()
            switch c.mode {
            case .direct(let how):
                return Decision(useGDS: true, forced: false, note: "auto: GPUDirect Storage is direct here (\(how))")
            case .unavailable(let why):
                return Decision(useGDS: false, forced: false, note: "GPUDirect Storage not used: cuFile not available (\(why))")
            case .unusable(let why):
                return Decision(useGDS: false, forced: false, note: "GPUDirect Storage not used: \(why)")
            case .compatibility(let why):
                return Decision(
                    useGDS: false, forced: false,
                    note: "GPUDirect Storage not used: cuFile would only run in compatibility mode (\(why)); ingest gds forces it")
            }
        }
    }

    /// The decision once the backend exists: a GDS decision needs the CUDA
    /// backend with its device ingest region. Forced, its absence is an
    /// error; under auto, the engine reads with io_uring (and, on the CPU
    /// backend, does not mention GPUDirect Storage).
    public static func resolve(
        _ decision: Decision, backendIsCUDA: Bool, backendReason: String
    ) throws(PipelineError) -> Decision {
        guard !backendIsCUDA else { return decision }
        if decision.forced {
            throw .backendUnavailable(
                backend: "gds", reason: "ingest gds reads into GPU memory and needs the CUDA backend, which is not running (\(backendReason))")
        }
        // On the CPU backend GPUDirect Storage is beside the point: say nothing of it.
        return Decision(useGDS: false, forced: false, note: nil)
    }

    /// Builds the cuFile stream over the backend's device ingest region:
    /// opens the cuFile driver, registers the region, and starts `threads`
    /// reader threads. Call before `backend.start()`: registration may
    /// allocate or synchronize, which must not happen while the persistent
    /// kernel runs.
    static func makeStream(
        backend: CUDABackend, chunkBytes: Int, chunkCount: Int, threads: Int, note: String
    ) throws(PipelineError) -> (stream: ChunkReaderStream, reason: String) {
        guard let region = backend.deviceIngest else {
            throw .backendUnavailable(backend: "gds", reason: "the CUDA backend was started without a device ingest region")
        }
        let session = try CuFileDriverSession.shared.get()
        let buffer = try region.register(with: session)
        let reader = CuFileChunkReader(session: session, region: region, buffer: buffer, chunkBytes: chunkBytes)
        let stream = try ChunkReaderStream(
            reader: reader, region: backend.dataRegion, chunkBytes: chunkBytes, chunkCount: chunkCount, threads: threads)
        let size = Double(chunkBytes) / Double(1 << 20)
        let reason = "cuFile (\(session.libraryDescription)) into GPU memory: cuFileRead on \(threads) threads, "
            + "\(chunkCount) registered device buffers of \(size == size.rounded() ? "\(Int(size))" : "\(size)") MiB; \(note)"
        return (stream, reason)
    }
}

/// `cuFileRead` into the device ingest region, as a `ChunkReader`: each
/// open file is registered with cuFile once (by descriptor), and each read
/// runs with the region's CUDA context current on the calling thread.
final class CuFileChunkReader: ChunkReader, @unchecked Sendable {
    // @unchecked: the cuFile objects are immutable handles whose calls
    // cuFile documents as thread-safe; the registry is behind a mutex.
    let kind = "cuFile"
    let readOperation = "cuFileRead"
    let landing = ChunkRegion.device

    private let session: CuFileDriverSession
    private let region: CUDADeviceIngestRegion
    private let buffer: CuFileRegisteredBuffer
    private let chunkBytes: Int

    /// A descriptor's registration, and which file it was for (a closed
    /// descriptor's number comes back for the next file opened).
    private struct Entry {
        var device: UInt64
        var inode: UInt64
        var file: CuFileRegisteredFile
        /// A second, O_DIRECT descriptor of the same file, when cuFile
        /// refused the caller's buffered one; closed after the registration goes.
        var directFD: DescriptorOwner?
    }

    /// Closes a descriptor this reader opened once nothing uses it.
    final class DescriptorOwner: @unchecked Sendable {
        let fd: FileDescriptor
        init(_ fd: FileDescriptor) { self.fd = fd }
        deinit { try? fd.close() }
    }
    private let files = Mutex<[Int32: Entry]>([:])

    init(session: CuFileDriverSession, region: CUDADeviceIngestRegion, buffer: CuFileRegisteredBuffer, chunkBytes: Int) {
        self.session = session
        self.region = region
        self.buffer = buffer
        self.chunkBytes = chunkBytes
    }

    /// Registers the request's descriptor unless it is registered for this
    /// very file; a stale registration (the number now names another file)
    /// is dropped first. Runs on the owner's thread: no read of the old file
    /// is in flight, because the scanner closes a file only after all its
    /// chunks completed.
    func prepare(_ request: ReadRequest) throws(PipelineError) {
        let fd = request.fd.rawValue
        let st: Stat
        do { st = try request.fd.stat() } catch { throw .io(IOFailure(operation: "fstat", path: request.path, errno: error.rawValue)) }
        let device = UInt64(st.deviceID.rawValue)
        let inode = UInt64(st.inode.rawValue)
        let known = files.withLock { $0[fd].map { $0.device == device && $0.inode == inode } ?? false }
        if known { return }
        // A stale registration is deregistered before the new one is made.
        files.withLock { $0[fd] = nil }
        do {
            let file = try register(fd: fd, path: request.path)
            files.withLock { $0[fd] = Entry(device: device, inode: inode, file: file) }
        } catch {
            // Some cuFile releases register only O_DIRECT descriptors, even
            // for compatibility mode: try once more with one, reading the
            // same file, before giving up.
            guard !isOpenForDirectIO(request.fd),
                  let direct = try? openForIngest(path: RawPath(request.path), direct: true) else { throw error }
            let owner = DescriptorOwner(direct)
            guard let file = try? register(fd: direct.rawValue, path: request.path) else { throw error }
            files.withLock { $0[fd] = Entry(device: device, inode: inode, file: file, directFD: owner) }
        }
    }

    private func register(fd: Int32, path: String) throws(PipelineError) -> CuFileRegisteredFile {
        let session = self.session
        let made = region.withContext { Result { () throws(PipelineError) in
            try CuFileRegisteredFile(session: session, fd: fd, path: path)
        } }
        return try made.get().get()
    }

    func read(_ request: ReadRequest, bufferOffset: Int, fileOffset: UInt64, length: Int) -> ChunkReaderResult {
        guard let file = files.withLock({ $0[request.fd.rawValue]?.file }) else {
            return .failed(errno: 0, reason: "\(request.path) is not registered with cuFile (a bug: prepare runs before every read)")
        }
        let offset = request.chunkIndex * chunkBytes + bufferOffset
        let buffer = self.buffer
        switch region.withContext({ buffer.read(file, bufferOffset: offset, length: length, fileOffset: fileOffset) }) {
        case .failure(let error):
            return .failed(errno: 0, reason: "the GPU's context could not be made current: \(error.message)")
        case .success(.bytes(let n)):
            return .transferred(n)
        case .success(.systemError(let code)):
            return .systemError(code)
        case .success(.status(let status)):
            return .failed(errno: 0, reason: status.description)
        }
    }

    func copyToHost(chunk: Int, into target: UnsafeMutableRawBufferPointer) throws(PipelineError) {
        try region.copyToHost(offset: chunk * chunkBytes, into: target)
    }
}
