import Glibc
import SluiceCPU
import SluiceCUDA
import SluiceCore
import Testing

@testable import Sluice

/// `Engine.memoryRefusal`: what makes the engine retry with half the slots
/// is known by value (the errno of a call that maps, locks or registers
/// memory; CUDA_ERROR_OUT_OF_MEMORY), never by the failing call's name.
@Suite struct AllocationRefusalTests {
    static func io(_ operation: String, _ code: Int32, allocates: Bool) -> PipelineError {
        .io(IOFailure(
            operation: operation, path: "", errno: code, reason: String(cString: strerror(code)), allocatesMemory: allocates))
    }

    /// A mapping larger than any address space: the kernel itself refuses it.
    @Test func aRealMmapRefusalIsRecognised() throws {
        let error = #expect(throws: PipelineError.self) { _ = try HostMemory(byteCount: 1 << 60, purpose: "test") }
        guard case .io(let failure) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(failure.errno == ENOMEM && failure.allocatesMemory)
        #expect(Engine.memoryRefusal(.io(failure), slotsWanted: 0) == (true, 128))
        #expect(Engine.memoryRefusal(.io(failure), slotsWanted: 6) == (true, 6))
    }

    @Test func errnoOfAnAllocatingCall() {
        #expect(Engine.memoryRefusal(Self.io("mmap 64 bytes", ENOMEM, allocates: true), slotsWanted: 8) == (true, 8))
        #expect(Engine.memoryRefusal(Self.io("io_uring_register(buffers)", EAGAIN, allocates: true), slotsWanted: 8) == (true, 8))
        // Another errno from the same call is not memory refused.
        #expect(Engine.memoryRefusal(Self.io("mmap 64 bytes", EINVAL, allocates: true), slotsWanted: 8) == (false, 8))
        // ENOMEM or EAGAIN from a call that allocates nothing, whatever its name.
        #expect(Engine.memoryRefusal(Self.io("mmap", ENOMEM, allocates: false), slotsWanted: 8) == (false, 8))
        #expect(Engine.memoryRefusal(Self.io("pthread_create", EAGAIN, allocates: false), slotsWanted: 8) == (false, 8))
    }

    @Test func cudaResults() {
        let oom = CUDADriver.errorOutOfMemory
        #expect(oom == 2)  // CUDA_ERROR_OUT_OF_MEMORY in cuda.h
        let pinned = PipelineError.gpu(call: "cuMemHostRegister_v2", code: oom, message: "CUDA_ERROR_OUT_OF_MEMORY: out of memory")
        #expect(Engine.memoryRefusal(pinned, slotsWanted: 0) == (true, 128))
        // By value: out of memory from any call.
        let module = PipelineError.gpu(call: "cuModuleLoadData", code: oom, message: "CUDA_ERROR_OUT_OF_MEMORY: out of memory")
        #expect(Engine.memoryRefusal(module, slotsWanted: 32) == (true, 32))
        // An allocation call that failed for another reason is not a refusal.
        let invalid = PipelineError.gpu(
            call: "cuMemAlloc_v2", code: CUDADriver.errorInvalidValue, message: "CUDA_ERROR_INVALID_VALUE: invalid argument")
        #expect(CUDADriver.errorInvalidValue == 1)
        #expect(Engine.memoryRefusal(invalid, slotsWanted: 32) == (false, 32))
        let sticky = PipelineError.gpu(call: "cuMemHostAlloc", code: 700, message: "CUDA_ERROR_ILLEGAL_ADDRESS")
        #expect(Engine.memoryRefusal(sticky, slotsWanted: 32) == (false, 32))
    }

    /// Errors of other kinds never shrink the ring: a shortfall found before
    /// allocating already names what fits.
    @Test func otherErrorsAreNotRefusals() {
        let others: [PipelineError] = [
            .invalidConfiguration("mmap"), .backendUnavailable(backend: "cuda", reason: "cuMemHostAlloc"),
            .contextLost(backend: "cuda", reason: "out of memory"),
        ]
        for error in others { #expect(Engine.memoryRefusal(error, slotsWanted: 16) == (false, 16), "\(error)") }
    }
}
