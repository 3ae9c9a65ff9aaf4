#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

// cuFile (GPUDirect Storage), loaded with dlopen("libcufile.so.0") like the
// driver: no link-time dependency, and the binary runs where it is missing.
// Only this file touches raw cuFile handles; each is owned by one small type
// (`CuFileDriverSession`, `CuFileRegisteredFile`, `CuFileRegisteredBuffer`).
//
// Why cuFileRead on a thread pool and not the batch (cuFileBatchIO*) or
// stream (cuFileReadAsync) API: the GPU machine has no nvidia-fs, so cuFile
// can only run in compatibility mode there, where the batch API is refused
// on older releases (CU_FILE_BATCH_NOCOMPAT_ERROR) and the stream API runs
// the same POSIX read on cuFile's own threads; and their structs
// (CUfileIOParams_t, CUfileIOEvents_t) could not be checked against a real
// libcufile from here. cuFileRead is synchronous and thread-safe, its
// arguments are plain integers and pointers, and reads on several threads
// overlap the same way (`ChunkReaderStream`).

/// The cuFile entry points Sluice uses, as typed C function pointers.
final class CuFileLibrary: @unchecked Sendable {
    // CUfileFileHandleType (cufile.h).
    static let handleTypeOpaqueFD: Int32 = 1
    // CUFileBoolConfigParameter_t (cufile.h, cuFile 1.14 and later).
    static let parameterAllowCompatMode: Int32 = 1
    static let parameterForceCompatMode: Int32 = 2
    static let parameterUsePCIP2PDMA: Int32 = 7
    // CUfileDescr_t: { enum type (int, offset 0); union { int fd; void *handle; }
    // (pointer-aligned, offset 8); const CUfileFSOps_t *fs_ops (offset 16) }: 24 bytes.
    static let descriptorBytes = 24
    static let descriptorFDOffset = 8

    let library: String
    private let handle: UnsafeMutableRawPointer

    let cuFileDriverOpen: @convention(c) () -> UInt64
    let cuFileDriverClose: @convention(c) () -> UInt64
    let cuFileHandleRegister: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutableRawPointer?) -> UInt64
    let cuFileHandleDeregister: @convention(c) (UnsafeMutableRawPointer?) -> Void
    let cuFileBufRegister: @convention(c) (UnsafeRawPointer?, Int, Int32) -> UInt64
    let cuFileBufDeregister: @convention(c) (UnsafeRawPointer?) -> UInt64
    /// ssize_t cuFileRead(CUfileHandle_t, void *base, size_t size, off_t file_offset, off_t base_offset).
    let cuFileRead: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int, Int, Int) -> Int
    /// Optional (cuFile 1.9+): the library version, e.g. 1150 for 1.15.0.
    let cuFileGetVersion: (@convention(c) (UnsafeMutablePointer<Int32>?) -> UInt64)?
    /// Optional (cuFile 1.14+): a boolean configuration parameter.
    let cuFileGetParameterBool: (@convention(c) (Int32, UnsafeMutablePointer<Bool>?) -> UInt64)?
    let cuFileSetParameterBool: (@convention(c) (Int32, Bool) -> UInt64)?

    /// The process-wide library, loaded on first use.
    static let shared: Result<CuFileLibrary, PipelineError> = Result { () throws(PipelineError) -> CuFileLibrary in
        try CuFileLibrary(library: "libcufile.so.0")
    }

    private init(library: String) throws(PipelineError) {
        guard let handle = dlopen(library, RTLD_NOW | RTLD_LOCAL) else {
            throw .backendUnavailable(
                backend: "cuFile", reason: "cannot load \(library) (\(dynamicLoaderError())); install the CUDA toolkit's GPUDirect Storage library")
        }
        self.library = library
        self.handle = handle
        func symbol<T>(_ names: String...) throws(PipelineError) -> T {
            for name in names {
                if let address = dlsym(handle, name) { return unsafeBitCast(address, to: T.self) }
            }
            throw .backendUnavailable(backend: "cuFile", reason: "\(library) has no \(names.joined(separator: " or ")); it is too old for Sluice")
        }
        func optional<T>(_ name: String) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
        }
        cuFileDriverOpen = try symbol("cuFileDriverOpen")
        // cufile.h maps cuFileDriverClose to cuFileDriverClose_v2 in newer releases.
        cuFileDriverClose = try symbol("cuFileDriverClose_v2", "cuFileDriverClose")
        cuFileHandleRegister = try symbol("cuFileHandleRegister")
        cuFileHandleDeregister = try symbol("cuFileHandleDeregister")
        cuFileBufRegister = try symbol("cuFileBufRegister")
        cuFileBufDeregister = try symbol("cuFileBufDeregister")
        cuFileRead = try symbol("cuFileRead")
        cuFileGetVersion = optional("cuFileGetVersion")
        cuFileGetParameterBool = optional("cuFileGetParameterBool")
        cuFileSetParameterBool = optional("cuFileSetParameterBool")
    }

    /// "1.15.0", or nil when this release cannot say.
    var version: String? {
        guard let get = cuFileGetVersion else { return nil }
        var v: Int32 = 0
        guard CuFileCallResult(raw: get(&v)).isSuccess, v > 0 else { return nil }
        return "\(v / 1000).\((v % 1000) / 10).\(v % 10)"
    }

    /// A boolean parameter (`parameter*`), nil when this release cannot say.
    func parameter(_ parameter: Int32) -> Bool? {
        guard let get = cuFileGetParameterBool else { return nil }
        var value = false
        guard CuFileCallResult(raw: get(parameter, &value)).isSuccess else { return nil }
        return value
    }
}

/// Runs a cuFile call with errno cleared first, and returns its result and
/// the errno it left (0 when it set none).
@inline(__always)
func callKeepingErrno<R>(_ body: () -> R) -> (R, Int32) {
    errno = 0
    let result = body()
    return (result, errno)
}

/// An open cuFile driver (`cuFileDriverOpen`). The driver is per process and
/// every device's stream shares it, so the session is opened once and kept
/// for the life of the process: closing it while another engine still reads
/// would pull the driver out from under that engine.
public final class CuFileDriverSession: @unchecked Sendable {
    let library: CuFileLibrary

    /// The process-wide session, opened on first use.
    public static let shared: Result<CuFileDriverSession, PipelineError> = Result {
        () throws(PipelineError) -> CuFileDriverSession in
        try CuFileDriverSession(library: try CuFileLibrary.shared.get())
    }

    private init(library: CuFileLibrary) throws(PipelineError) {
        // Sluice opens the driver only to read with cuFile (--ingest gds, or
        // auto where reads are direct), so it allows compatibility mode for
        // this process: without it cuFile 1.15 on a machine without
        // nvidia-fs and without /etc/cufile.json refuses every file handle
        // (CU_FILE_HANDLE_NOT_REGISTERED, seen on the H100 machine), and in
        // the direct case it only lets a file that cannot be read by DMA
        // still be read. Parameters can only be set before the driver opens.
        if let set = library.cuFileSetParameterBool {
            _ = set(CuFileLibrary.parameterAllowCompatMode, true)
        }
        let (raw, code) = callKeepingErrno { library.cuFileDriverOpen() }
        let result = CuFileCallResult(raw: raw)
        guard result.isSuccess else { throw result.error(call: "cuFileDriverOpen", errno: code) }
        self.library = library
    }

    /// "libcufile.so.0 1.15.0".
    public var libraryDescription: String {
        library.library + (library.version.map { " \($0)" } ?? "")
    }
}

/// An open file registered with cuFile (`cuFileHandleRegister`), deregistered
/// in deinit. Does not own the descriptor: the caller closes it after this is gone.
public final class CuFileRegisteredFile: @unchecked Sendable {
    /// The registered descriptor; not owned.
    public let fd: Int32
    /// The file's path, for error messages.
    public let path: String
    let session: CuFileDriverSession
    let handle: UnsafeMutableRawPointer

    /// Registers `fd` with cuFile in `session`; throws `io` naming `path` and the cuFile status when it cannot.
    public init(session: CuFileDriverSession, fd: Int32, path: String) throws(PipelineError) {
        let library = session.library
        var registered: UnsafeMutableRawPointer? = nil
        let (raw, code) = withUnsafeTemporaryAllocation(byteCount: CuFileLibrary.descriptorBytes, alignment: 8) {
            descriptor in
            descriptor.initializeMemory(as: UInt8.self, repeating: 0)
            descriptor.storeBytes(of: CuFileLibrary.handleTypeOpaqueFD, toByteOffset: 0, as: Int32.self)
            descriptor.storeBytes(of: fd, toByteOffset: CuFileLibrary.descriptorFDOffset, as: Int32.self)
            return callKeepingErrno { library.cuFileHandleRegister(&registered, descriptor.baseAddress) }
        }
        let result = CuFileCallResult(raw: raw)
        guard result.isSuccess, let registered else {
            throw .io(IOFailure(
                operation: "cuFileHandleRegister", path: path, errno: code,
                reason: result.isSuccess ? "cuFile returned no handle" : result.text(errno: code)))
        }
        self.fd = fd
        self.path = path
        self.session = session
        self.handle = registered
    }

    deinit { session.library.cuFileHandleDeregister(handle) }
}

/// Device memory registered with cuFile (`cuFileBufRegister`), deregistered
/// in deinit. Does not own the memory, which must outlive it.
public final class CuFileRegisteredBuffer: @unchecked Sendable {
    /// The registered device memory's address.
    public let deviceAddress: UInt64
    /// Bytes registered.
    public let byteCount: Int
    let session: CuFileDriverSession
    /// What owns the memory (the device ingest region), kept until the
    /// registration is undone.
    private let owner: AnyObject?
    /// The memory's context, made current to deregister.
    private let context: CUDAContext?

    init(
        session: CuFileDriverSession, deviceAddress: UInt64, byteCount: Int, owner: AnyObject?, context: CUDAContext?
    ) throws(PipelineError) {
        let library = session.library
        let base = UnsafeRawPointer(bitPattern: UInt(deviceAddress))
        let (raw, code) = callKeepingErrno { library.cuFileBufRegister(base, byteCount, 0) }
        let result = CuFileCallResult(raw: raw)
        guard result.isSuccess else {
            throw result.error(call: "cuFileBufRegister", errno: code, what: "\(byteCount) bytes of device memory")
        }
        self.deviceAddress = deviceAddress
        self.byteCount = byteCount
        self.session = session
        self.owner = owner
        self.context = context
    }

    /// One synchronous `cuFileRead` of `length` bytes at `fileOffset` into
    /// the buffer at `bufferOffset`. Thread-safe; the caller makes the
    /// buffer's CUDA context current.
    public func read(_ file: CuFileRegisteredFile, bufferOffset: Int, length: Int, fileOffset: UInt64) -> CuFileReadOutcome {
        guard bufferOffset >= 0, length >= 0, bufferOffset <= byteCount - length, fileOffset <= UInt64(Int.max) else {
            return .status(CuFileStatus(code: 5022))
        }
        let base = UnsafeMutableRawPointer(bitPattern: UInt(deviceAddress))
        let (returned, code) = callKeepingErrno {
            session.library.cuFileRead(file.handle, base, length, Int(fileOffset), bufferOffset)
        }
        return CuFileReadOutcome(returned: returned, errno: code)
    }

    deinit {
        let library = session.library
        let base = UnsafeRawPointer(bitPattern: UInt(deviceAddress))
        if let context {
            context.releasing { _ in _ = library.cuFileBufDeregister(base) }
        } else {
            _ = library.cuFileBufDeregister(base)
        }
    }
}


