import SluiceCore

/// An operation of your own that the megakernel runs on every chunk of a
/// file: a CUDA C `__device__` function that a whole worker block runs over
/// one chunk, a Swift reference over the same inputs (what the CPU backend
/// runs, and the oracle `Session.verify(operation:)` checks the GPU
/// against), and how the chunks' result words combine into one value per file.
///
/// A `Session` created with operations compiles them into its megakernel
/// before the kernel starts; `Session.run(_:over:)` then runs one over files.
/// See <doc:WritingAnOperation>.
public protocol SluiceOperation: Sendable {
    /// The per-file value that `combine(_:with:)` builds.
    associatedtype Result: Sendable

    /// A name of letters, digits, `_` and `-` (starting with a letter),
    /// unique in the session; the CUDA source is compiled as the file `NAME.cu`.
    /// Names starting with `sluice` (any case) and `megakernel` and
    /// `measure` are reserved for Sluice's own files.
    var name: String { get }
    /// The `__device__ void FUNCTION(const SluiceOpContext& c)` that
    /// `cudaSource` defines (a C identifier not starting with `sluice_`).
    var cudaFunction: String { get }
    /// The CUDA C++ source: `#include "sluice_operation.h"` and the function.
    var cudaSource: String { get }
    /// The words each chunk produces, all zero before the operation runs:
    /// the capacity of its checked result area (1...`OperationSet.maxResultWords`).
    var resultWords: Int { get }
    /// Bytes each chunk reads past its own so that the operation can see
    /// across the boundary (as scan does): a multiple of 4096 below half
    /// the session's chunk size (`Session` refuses a larger one with
    /// `invalidConfiguration`). 0 by default.
    var overlapBytes: Int { get }
    /// The slot's `argument1` word for every chunk (`OperationChunk.argument1`). 0 by default.
    var argument: UInt32 { get }
    /// The per-file value before any chunk (an empty file's value).
    var initialResult: Result { get }

    /// The Swift reference: computes the chunk's result words into
    /// `results` exactly as the CUDA function does. Throwing faults the slot.
    func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault)

    /// Adds one chunk's result words to the file's value; called once per
    /// chunk, in file order.
    func combine(_ result: inout Result, with chunk: OperationChunkResult)
}

extension SluiceOperation {
    /// No overlap.
    public var overlapBytes: Int { 0 }
    /// 0.
    public var argument: UInt32 { 0 }

    /// The operation as a backend runs it, with `opcode`.
    func installed(as opcode: Opcode) -> InstalledOperation {
        InstalledOperation(
            opcode: opcode, name: name, cudaFunction: cudaFunction, cudaSource: cudaSource, resultWords: resultWords
        ) { chunk, results throws(OperationFault) in
            try self.reference(chunk, results: results)
        }
    }
}

/// One chunk's outcome, handed to `SluiceOperation.combine(_:with:)`.
public struct OperationChunkResult: Sendable {
    /// The chunk's number in its file (0-based); chunks come in this order.
    public var chunkNumber: Int
    /// Where the chunk starts in its file.
    public var fileOffset: UInt64
    /// The bytes the chunk owns (its overlap not included).
    public var ownBytes: Int
    /// The `resultWords` words the operation wrote.
    public var words: [UInt32]

    /// A chunk result with each field given.
    public init(chunkNumber: Int, fileOffset: UInt64, ownBytes: Int, words: [UInt32]) {
        self.chunkNumber = chunkNumber
        self.fileOffset = fileOffset
        self.ownBytes = ownBytes
        self.words = words
    }
}

/// The value of a user operation for one file.
public struct FileResult<Value: Sendable>: Sendable {
    /// The file.
    public var path: RawPath
    /// The chunks' results combined; meaningful only when `errors` is empty
    /// (otherwise it holds the chunks that finished, in file order up to the first gap).
    public var value: Value
    /// Bytes the operation covered (the file's size when `errors` is empty).
    public var bytes: UInt64
    /// Empty when every chunk of the file was processed exactly once.
    public var errors: [PipelineError]
}
