import Sluice

// What to do about an error, in the command's terms: these hints name
// `sluice` flags and subcommands, so they live here and not in the library,
// whose callers set options in code.
extension PipelineError {
    /// One line on what to do next, naming the command's flags where one helps.
    var hint: String {
        switch self {
        case .invalidConfiguration:
            return "check the sizes and options given"
        case .malformed:
            return "the memory image is corrupt or from another protocol version; restart the backend"
        case .illegalTransition:
            return "a bug in the host or a worker; report it with the slot and both states"
        case .invalidRequest:
            return "fix the request; nothing was submitted"
        case .io(let f):
            switch f.errno {
            case 2: return "check the path exists"
            case 13, 1: return "check permissions on the file, or run as a user that can read it"
            case 22 where f.operation.contains("direct"): return "the filesystem may not support O_DIRECT; retry without it"
            case 38: return "io_uring is not available; the pread path will be used"
            case 12 where f.allocatesMemory: return "ask for fewer --slots or a smaller --chunk-size"
            case _ where f.operation.hasPrefix("cuFile"): return "run `sluice doctor` to see what cuFile can do here, or read with --ingest uring"
            default: return "check the file and the device it lives on"
            }
        case .slotFaulted(_, _, _, let code):
            switch code {
            case .unsupportedOpcode: return "choose a backend that implements this operation"
            case .tenantViolation: return "the tenant named memory outside its regions; check its submissions"
            case .regionUnavailable: return "chunks read into GPU memory (--ingest gds) need the CUDA backend; use --ingest uring with other backends"
            default: return "the slot's arguments were invalid; this is a bug if it came from the scanner"
            }
        case .backendUnavailable(let backend, _) where backend == "gds" || backend == "cuFile":
            return "run `sluice doctor` to see what GPUDirect Storage needs here, or read with --ingest uring"
        case .backendUnavailable(let backend, _) where backend == "hyperscan":
            return "use --cpu-engine builtin or auto (the built-in matcher reports the same matches)"
        case .backendUnavailable:
            return "use --backend cpu, or run `sluice doctor` to see what is missing"
        case .gpu:
            return "check the driver with nvidia-smi, or use --backend cpu"
        case .stuck(_, _, .gpu):
            return "the GPU kernel may be hung; raise --watchdog if the chunks are very large"
        case .stuck(_, _, .cpu):
            return "a CPU worker may be hung or one chunk very slow to scan; raise --watchdog if the chunks are very large"
        case .readsStuck:
            return "the storage device is not answering; check it (dmesg), or raise --watchdog for very slow media"
        case .fileChanged:
            return "rerun once the file is no longer being written"
        case .unaccounted:
            return "a bug: every submitted chunk must complete or fail; report it"
        case .interrupted:
            return "rerun to process the rest"
        case .contextLost:
            return "Sluice recreates the backend and reruns the unfinished chunks; if it repeats, check the GPU (nvidia-smi, dmesg for Xid errors)"
        case .recoveryFailed:
            return "the device keeps failing on these chunks: check nvidia-smi and dmesg (Xid errors), or rerun with --backend cpu"
        case .insufficientMemory:
            return "use fewer slots or smaller chunks (sizes that fit are named above), or free memory"
        case .cancelled:
            return "the caller cancelled the job; run it again to process the file"
        case .operationDidNotCompile:
            return "fix the operation's CUDA source at the line NVRTC names, or run it with --backend cpu"
        }
    }
}

extension SluiceError {
    /// The hint of the underlying `PipelineError` (a server's errors are
    /// rebuilt as the values a local run makes), else one for the session's
    /// own codes, naming `--server`.
    var hint: String {
        if let underlying { return underlying.hint }
        switch code {
        case .serverUnavailable:
            return "start a server with `sluice serve`, or run here with --server auto or never"
        case .serverLost:
            return "the server stopped (its log may say why); rerun, or use --server auto to finish here when a server goes away"
        case .malformed:
            return "the server does not speak this build's protocol; use the same sluice version on both sides"
        default:
            return "rerun, or run here with --server never"
        }
    }
}
