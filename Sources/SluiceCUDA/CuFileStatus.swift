import SluiceCore
import SluiceSystem

/// A cuFile status (`CUfileOpError` in cufile.h) with its name and what it
/// means, so that every cuFile failure reads as "CU_FILE_..." and a reason.
///
/// Pure data: the mapping is tested without the library.
public struct CuFileStatus: Hashable, Sendable, CustomStringConvertible {
    /// The `CUfileOpError` value (0 for success; failures from 5001 up).
    public let code: Int32

    /// The status with this value.
    public init(code: Int32) { self.code = code }

    /// `CU_FILE_SUCCESS`.
    public static let success = CuFileStatus(code: 0)

    /// `CU_FILE_...`, or `CU_FILE_STATUS_<code>` for a value this build does not know.
    public var name: String { CuFileStatus.table[code]?.0 ?? "CU_FILE_STATUS_\(code)" }

    /// One phrase on what the status means (our words, after cufile.h).
    public var meaning: String { CuFileStatus.table[code]?.1 ?? "unknown cuFile status" }

    /// "CU_FILE_CUDA_DRIVER_ERROR (5011): the CUDA driver failed".
    public var description: String { "\(name) (\(code)): \(meaning)" }

    /// Whether cuFile can give the same answer for any file or buffer here:
    /// the driver, platform or configuration is at fault, not one request.
    public var isSetupProblem: Bool {
        [5001, 5002, 5004, 5005, 5007, 5009, 5010, 5033, 5034].contains(code)
    }

    /// CUfileOpError values (cufile.h, CUFILEOP_BASE_ERR = 5000).
    static let table: [Int32: (String, String)] = [
        0: ("CU_FILE_SUCCESS", "success"),
        5001: ("CU_FILE_DRIVER_NOT_INITIALIZED", "the nvidia-fs driver is not loaded"),
        5002: ("CU_FILE_DRIVER_INVALID_PROPS", "invalid driver property"),
        5003: ("CU_FILE_DRIVER_UNSUPPORTED_LIMIT", "a driver property is out of range"),
        5004: ("CU_FILE_DRIVER_VERSION_MISMATCH", "the nvidia-fs driver version does not match the library"),
        5005: ("CU_FILE_DRIVER_VERSION_READ_ERROR", "the nvidia-fs driver version could not be read"),
        5006: ("CU_FILE_DRIVER_CLOSING", "the driver is shutting down"),
        5007: ("CU_FILE_PLATFORM_NOT_SUPPORTED", "this platform does not support GPUDirect Storage"),
        5008: ("CU_FILE_IO_NOT_SUPPORTED", "the file's filesystem or open mode cannot be read with GPUDirect Storage"),
        5009: ("CU_FILE_DEVICE_NOT_SUPPORTED", "the GPU does not support GPUDirect Storage"),
        5010: ("CU_FILE_NVFS_DRIVER_ERROR", "the nvidia-fs driver failed an ioctl"),
        5011: ("CU_FILE_CUDA_DRIVER_ERROR", "the CUDA driver failed"),
        5012: ("CU_FILE_CUDA_POINTER_INVALID", "the buffer is not a valid CUDA pointer"),
        5013: ("CU_FILE_CUDA_MEMORY_TYPE_INVALID", "the buffer's memory type cannot be used"),
        5014: ("CU_FILE_CUDA_POINTER_RANGE_ERROR", "the access lies outside the buffer's allocation"),
        5015: ("CU_FILE_CUDA_CONTEXT_MISMATCH", "the buffer belongs to another CUDA context"),
        5016: ("CU_FILE_INVALID_MAPPING_SIZE", "the access exceeds the registered size"),
        5017: ("CU_FILE_INVALID_MAPPING_RANGE", "the access lies outside the registered range"),
        5018: ("CU_FILE_INVALID_FILE_TYPE", "the file type is not supported"),
        5019: ("CU_FILE_INVALID_FILE_OPEN_FLAG", "the file was opened with flags cuFile does not support"),
        5020: ("CU_FILE_DIO_NOT_SET", "the file was not opened with O_DIRECT"),
        5021: ("CU_FILE_EXPECTED_FILE_MODE", "unexpected file mode"),
        5022: ("CU_FILE_INVALID_VALUE", "an argument is invalid"),
        5023: ("CU_FILE_MEMORY_ALREADY_REGISTERED", "the buffer is already registered"),
        5024: ("CU_FILE_MEMORY_NOT_REGISTERED", "the buffer is not registered"),
        5025: ("CU_FILE_PERMISSION_DENIED", "permission denied"),
        5026: ("CU_FILE_DRIVER_ALREADY_OPEN", "the driver is already open"),
        5027: ("CU_FILE_HANDLE_NOT_REGISTERED", "the file handle is not registered"),
        5028: ("CU_FILE_HANDLE_ALREADY_REGISTERED", "the file handle is already registered"),
        5029: ("CU_FILE_DEVICE_NOT_FOUND", "no GPU was found"),
        5030: ("CU_FILE_INTERNAL_ERROR", "internal cuFile error"),
        5031: ("CU_FILE_GETNEWFD_FAILED", "a new file descriptor could not be obtained"),
        5033: ("CU_FILE_NVFS_SETUP_ERROR", "the nvidia-fs driver could not be set up"),
        5034: ("CU_FILE_IO_DISABLED", "GPUDirect Storage is disabled by the configuration (cufile.json)"),
        5035: ("CU_FILE_BATCH_SUBMIT_FAILED", "a batch submission failed"),
        5036: ("CU_FILE_GPU_MEMORY_PINNING_FAILED", "GPU memory could not be pinned"),
        5037: ("CU_FILE_BATCH_FULL", "the batch queue is full"),
        5038: ("CU_FILE_ASYNC_NOT_SUPPORTED", "asynchronous I/O is not supported"),
        5039: ("CU_FILE_INTERNAL_BATCH_SETUP_ERROR", "internal error setting up a batch"),
        5040: ("CU_FILE_INTERNAL_BATCH_SUBMIT_ERROR", "internal error submitting a batch"),
        5041: ("CU_FILE_INTERNAL_BATCH_GETSTATUS_ERROR", "internal error polling a batch"),
        5042: ("CU_FILE_INTERNAL_BATCH_CANCEL_ERROR", "internal error cancelling a batch"),
        5043: ("CU_FILE_NOMEM_ERROR", "out of memory"),
        5044: ("CU_FILE_IO_ERROR", "an I/O error"),
        5045: ("CU_FILE_INTERNAL_BUF_REGISTER_ERROR", "internal error registering a buffer"),
        5046: ("CU_FILE_HASH_OPR_ERROR", "internal hash table error"),
        5047: ("CU_FILE_INVALID_CONTEXT_ERROR", "no valid CUDA context is current"),
        5048: ("CU_FILE_NVFS_INTERNAL_DRIVER_ERROR", "internal nvidia-fs driver error"),
        5049: ("CU_FILE_BATCH_NOCOMPAT_ERROR", "batch I/O cannot run in compatibility mode"),
    ]
}

/// What a `CUfileError_t`-returning call said: the cuFile status and, for
/// `CU_FILE_CUDA_DRIVER_ERROR`, the CUDA driver result.
///
/// cufile.h declares `CUfileError_t` as `{ CUfileOpError err; CUresult cu_err; }`:
/// two 32-bit integers, 8 bytes, which the x86-64 System V and AArch64 ABIs
/// return in one 64-bit register (`err` in the low half). The dlopen'd
/// functions are therefore declared to return `UInt64`, and this splits it.
public struct CuFileCallResult: Hashable, Sendable {
    /// The cuFile status (`err`).
    public var status: CuFileStatus
    /// The CUDA driver result (`cu_err`); 0 unless the status is `CU_FILE_CUDA_DRIVER_ERROR`.
    public var cudaResult: Int32

    /// A result with each field given.
    public init(status: CuFileStatus, cudaResult: Int32) {
        self.status = status
        self.cudaResult = cudaResult
    }

    /// Decodes the register a `CUfileError_t` comes back in.
    public init(raw: UInt64) {
        status = CuFileStatus(code: Int32(truncatingIfNeeded: raw))
        cudaResult = Int32(truncatingIfNeeded: raw >> 32)
    }

    /// Whether the status is `CU_FILE_SUCCESS`.
    public var isSuccess: Bool { status == .success }

    /// The status, the CUDA result when it carries one, and errno when the
    /// call left one: "CU_FILE_CUDA_DRIVER_ERROR (5011): the CUDA driver failed; CUDA result 2".
    public func text(errno code: Int32 = 0) -> String {
        var s = status.description
        if cudaResult != 0 { s += "; CUDA result \(cudaResult)" }
        if code != 0 { s += "; errno \(code) (\(SystemErrors.text(code)))" }
        return s
    }

    /// The error for a failed call that concerns no one file (driver open,
    /// buffer registration): `.gpu` naming the call and the status.
    public func error(call: String, errno code: Int32 = 0, what: String = "") -> PipelineError {
        .gpu(call: call, code: status.code, message: (what.isEmpty ? "" : what + ": ") + text(errno: code))
    }
}

/// What one `cuFileRead` returned, decoded: `ssize_t` bytes read; -1 with
/// errno for a system error; any other negative value is minus a
/// `CUfileOpError` (the cuFile API reference, "cuFileRead").
public enum CuFileReadOutcome: Hashable, Sendable {
    /// Bytes read; fewer than asked at the end of the file.
    case bytes(Int)
    /// -1: a system error, with errno.
    case systemError(errno: Int32)
    /// Any other negative value: minus this cuFile status.
    case status(CuFileStatus)

    /// Decodes `returned` (`ssize_t`) with the errno the call left.
    public init(returned: Int, errno code: Int32) {
        if returned >= 0 {
            self = .bytes(returned)
        } else if returned == -1 {
            self = .systemError(errno: code)
        } else {
            self = .status(CuFileStatus(code: Int32(clamping: -returned)))
        }
    }
}
