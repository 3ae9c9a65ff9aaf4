import Sluice
import SluiceCore

/// User operations for `sluice selftest --faults` whose CUDA source faults
/// on purpose: each sums a chunk's own bytes (two result words, the 64-bit
/// sum), except that a chunk starting with its marker traps the kernel
/// (`TrappingSum`) or spins forever (`SpinningSum`) on the GPU. The Swift
/// references never fault: they sum every chunk, marked or not, so a chunk
/// rerun on the CPU backend after a lost context still gives the file's sum.
enum FaultingOperations {
    /// A chunk whose first bytes are this traps `TrappingSum`'s CUDA function.
    static let trapMarker = Array("sluice:trap!".utf8)
    /// A chunk whose first bytes are this spins `SpinningSum`'s CUDA function forever.
    static let spinMarker = Array("sluice:spin!".utf8)

    /// The chunk's own bytes summed, as both references compute it.
    static func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {
        var sum: UInt64 = 0
        for byte in chunk.ownBytes { sum &+= UInt64(byte) }
        try results.write64(sum, at: 0)
    }

    /// The chunk's sum from its two result words, added to the file's.
    static func combine(_ result: inout UInt64, with chunk: OperationChunkResult) {
        result &+= UInt64(chunk.words[0]) | UInt64(chunk.words[1]) << 32
    }

    /// CUDA source: `function` sums the chunk's own bytes with the whole
    /// block, after `onMarker` runs on a chunk that starts with `marker`
    /// (every thread sees the same bytes, so the block takes one branch).
    static func cudaSource(function: String, marker: [UInt8], onMarker: String) -> String {
        let bytes = marker.map { "\($0)u" }.joined(separator: ", ")
        return """
            #include "sluice_operation.h"

            __device__ __forceinline__ bool \(function)_marked(const SluiceOpContext& c) {
                const unsigned char marker[\(marker.count)] = { \(bytes) };
                if (c.ownBytes < \(marker.count)u) {
                    return false;
                }
                for (unsigned i = 0u; i < \(marker.count)u; ++i) {
                    if (sluice_op_load_u8(c, i) != marker[i]) {
                        return false;
                    }
                }
                return true;
            }

            __device__ void \(function)(const SluiceOpContext& c) {
                if (\(function)_marked(c)) {
            \(onMarker)
                }
                unsigned long long sum = 0ull;
                for (unsigned i = threadIdx.x; i < c.ownBytes; i += SLUICE_OP_THREADS) {
                    sum += sluice_op_load_u8(c, i);
                }
                sum = sluice_op_block_sum_u64(sum);
                if (threadIdx.x == 0u) {
                    sluice_op_write64(c, 0u, sum);
                }
            }

            """
    }
}

/// Sums each chunk's bytes; on the GPU a chunk that starts with
/// `FaultingOperations.trapMarker` executes `__trap()`, which kills the
/// kernel with a sticky error (the context is lost, as with an illegal address).
struct TrappingSum: FaultingSum {
    let name = "selftest-trap"
    let cudaFunction = "selftest_trap_sum"
    var cudaSource: String {
        FaultingOperations.cudaSource(
            function: cudaFunction, marker: FaultingOperations.trapMarker, onMarker: "        __trap();")
    }
}

/// Sums each chunk's bytes; on the GPU a chunk that starts with
/// `FaultingOperations.spinMarker` never finishes: every thread of the block
/// loops on a volatile load of scratch memory that nothing writes (the
/// compiler must repeat a volatile load, so the loop stays), and, unlike the
/// built-in `testHang`, never looks at the shutdown flag.
struct SpinningSum: FaultingSum {
    let name = "selftest-spin"
    let cudaFunction = "selftest_spin_sum"
    var cudaSource: String {
        FaultingOperations.cudaSource(
            function: cudaFunction, marker: FaultingOperations.spinMarker,
            onMarker: """
                        volatile unsigned* never = (volatile unsigned*)c.scratch;
                        while (*never == 0u) {
                        }
                """)
    }
}

/// What both faulting operations are away from their marked chunk: a sum of
/// each chunk's bytes (2 result words), combined per file by addition.
protocol FaultingSum: SluiceOperation where Result == UInt64 {}

extension FaultingSum {
    var resultWords: Int { 2 }
    var initialResult: UInt64 { 0 }

    func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {
        try FaultingOperations.reference(chunk, results: results)
    }

    func combine(_ result: inout UInt64, with chunk: OperationChunkResult) {
        FaultingOperations.combine(&result, with: chunk)
    }
}
