/// The inputs of one run of a user operation over one chunk: what the CUDA
/// side's `SluiceOpContext` holds, for the Swift reference.
///
/// Valid only during the call that receives it: `bytes` points into the
/// backend's chunk buffer.
public struct OperationChunk {
    /// The chunk's bytes: `ownBytes` of its own, then any overlap into the next chunk.
    public let bytes: UnsafeRawBufferPointer
    /// Where the chunk's first byte is in its file.
    public let fileOffset: UInt64
    /// Slot word 10: the bytes the chunk owns (its positions; the rest of
    /// `bytes` is overlap that belongs to the next chunk). Equal to
    /// `bytes.count` for an operation without overlap.
    public let argument0: UInt32
    /// Slot word 11: the operation's own argument word (`SluiceOperation.argument`).
    public let argument1: UInt32

    /// A chunk of `bytes` at `fileOffset` with the slot's two argument words.
    public init(bytes: UnsafeRawBufferPointer, fileOffset: UInt64, argument0: UInt32, argument1: UInt32) {
        self.bytes = bytes
        self.fileOffset = fileOffset
        self.argument0 = argument0
        self.argument1 = argument1
    }

    /// Byte `index` of the chunk, checked as the device's `sluice_op_load_u8`
    /// is: an index outside `bytes` throws `OperationFault.badArguments`
    /// (the slot faults) rather than reading past the chunk.
    public func byte(at index: Int) throws(OperationFault) -> UInt8 {
        guard index >= 0, index < bytes.count else { throw .badArguments }
        return bytes[index]
    }

    /// The bytes the chunk owns: the first `argument0` (at most all of them).
    public var ownBytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[0..<min(Int(argument0), bytes.count)])
    }
}

/// Why a user operation gave up on a chunk: the slot ends FAULTED with the
/// matching `FaultCode`, which the run reports with the file and chunk.
public enum OperationFault: Error, Equatable, Sendable {
    /// It wrote (or read) a result word at or past the declared capacity: `resultOverflow`.
    case resultOverflow(index: Int, capacity: Int)
    /// Its inputs (arguments, offset, length) are not ones it accepts, or it
    /// read outside its chunk (`OperationChunk.byte(at:)`): `badArguments`.
    case badArguments

    /// The slot's fault code.
    public var faultCode: FaultCode {
        switch self {
        case .resultOverflow: return .resultOverflow
        case .badArguments: return .badArguments
        }
    }
}

/// A user operation's result area for one chunk: `capacity` words, all
/// zero when the operation starts, each access checked. An index at or past
/// the capacity throws `OperationFault.resultOverflow` (the slot faults);
/// nothing is ever written outside the area.
///
/// Valid only during the call that receives it.
public struct OperationResults {
    private let area: UnsafeMutableBufferPointer<UInt32>

    /// Words of the area: the operation's declared `resultWords`.
    public var capacity: Int { area.count }

    /// The area `area`; the caller zeroes it.
    public init(area: UnsafeMutableBufferPointer<UInt32>) { self.area = area }

    /// The word at `index`.
    public func read(_ index: Int) throws(OperationFault) -> UInt32 {
        try check(index)
        return area[index]
    }

    /// Stores `value` at `index`.
    public func write(_ value: UInt32, at index: Int) throws(OperationFault) {
        try check(index)
        area[index] = value
    }

    /// Adds `value` to the word at `index`, wrapping at 2^32 as the device's `atomicAdd` does.
    public func add(_ value: UInt32, at index: Int) throws(OperationFault) {
        try check(index)
        area[index] &+= value
    }

    /// Stores `value` as two words, low word at `index`, high word after it.
    public func write64(_ value: UInt64, at index: Int) throws(OperationFault) {
        try check(index + 1)
        area[index] = UInt32(truncatingIfNeeded: value)
        area[index + 1] = UInt32(truncatingIfNeeded: value >> 32)
    }

    private func check(_ index: Int) throws(OperationFault) {
        guard index >= 0, index < area.count else { throw .resultOverflow(index: index, capacity: area.count) }
    }
}

/// One user operation as a backend runs it: its opcode, its declared result
/// words, its CUDA C source and the Swift reference the CPU backend runs.
/// Made by `Session` from a `SluiceOperation`; a backend receives them in
/// `BackendConfiguration.operations`.
public struct InstalledOperation: Sendable {
    /// The opcode its slots carry (from `Opcode.userRange`).
    public var opcode: Opcode
    /// Its name; the CUDA source is compiled as the file `name.cu`.
    public var name: String
    /// The `__device__` function the generated dispatch calls.
    public var cudaFunction: String
    /// The CUDA C++ source that defines `cudaFunction`.
    public var cudaSource: String
    /// Words each chunk produces: the capacity of its checked result area.
    public var resultWords: Int
    /// The Swift reference: what the CPU backend runs on a chunk.
    public var reference: @Sendable (OperationChunk, OperationResults) throws(OperationFault) -> Void

    /// An installed operation with each field given.
    public init(
        opcode: Opcode, name: String, cudaFunction: String, cudaSource: String, resultWords: Int,
        reference: @escaping @Sendable (OperationChunk, OperationResults) throws(OperationFault) -> Void
    ) {
        self.opcode = opcode
        self.name = name
        self.cudaFunction = cudaFunction
        self.cudaSource = cudaSource
        self.resultWords = resultWords
        self.reference = reference
    }

    /// The CUDA source's file name in compiler messages: `name.cu`.
    public var sourceFileName: String { name + ".cu" }
}

/// The user operations a backend runs besides the built-in opcodes, the
/// `i`th with opcode `Opcode.user(i)`. Empty by default.
public struct OperationSet: Sendable, Hashable {
    /// The operations, in opcode order.
    public let operations: [InstalledOperation]

    /// No user operations.
    public init() { operations = [] }

    /// `operations`, which must carry `Opcode.user(0)`, `Opcode.user(1)`, ...
    /// in order, valid names and function names, distinct names, and result
    /// words in 1...`maxResultWords`.
    public init(_ operations: [InstalledOperation]) throws(PipelineError) {
        var names = Set<String>()
        for (i, op) in operations.enumerated() {
            guard i < Opcode.userRange.count, op.opcode == Opcode.user(i) else {
                throw .invalidConfiguration("user operation \(i) (\(op.name)) must have opcode \(Opcode.userRange.lowerBound + UInt32(i))")
            }
            guard OperationSet.isIdentifier(op.name) else {
                throw .invalidConfiguration("user operation name \"\(op.name)\" must be letters, digits, _ or - and start with a letter")
            }
            guard !OperationSet.isReserved(op.name) else {
                throw .invalidConfiguration(
                    "user operation name \"\(op.name)\" is reserved: names starting with \"sluice\" and "
                        + OperationSet.reservedNames.map { "\"\($0)\"" }.joined(separator: ", ")
                        + " are Sluice's own files in compiler messages")
            }
            guard OperationSet.isCIdentifier(op.cudaFunction) else {
                throw .invalidConfiguration("user operation \(op.name): CUDA function name \"\(op.cudaFunction)\" is not a C identifier")
            }
            guard names.insert(op.name).inserted else {
                throw .invalidConfiguration("two user operations are named \(op.name)")
            }
            guard (1...OperationSet.maxResultWords).contains(op.resultWords) else {
                throw .invalidConfiguration(
                    "user operation \(op.name) declares \(op.resultWords) result words; 1...\(OperationSet.maxResultWords) are allowed")
            }
        }
        self.operations = operations
    }

    /// The most result words one chunk of a user operation may declare (1 MiB of words).
    public static let maxResultWords = 1 << 18

    /// Whether there is no user operation.
    public var isEmpty: Bool { operations.isEmpty }

    /// The installed operation with `opcode`, nil when none has it.
    public func operation(for opcode: Opcode) -> InstalledOperation? {
        guard let i = opcode.userIndex, i < operations.count else { return nil }
        return operations[i]
    }

    /// Their opcodes.
    public var opcodes: Set<Opcode> { Set(operations.map(\.opcode)) }

    /// The largest `resultWords` among them (0 when empty).
    public var largestResultWords: Int { operations.map(\.resultWords).max() ?? 0 }

    /// Sets are equal when their operations have the same opcodes, names, functions, sources and result words.
    public static func == (a: OperationSet, b: OperationSet) -> Bool {
        a.operations.count == b.operations.count
            && zip(a.operations, b.operations).allSatisfy { x, y in
                x.opcode == y.opcode && x.name == y.name && x.cudaFunction == y.cudaFunction
                    && x.cudaSource == y.cudaSource && x.resultWords == y.resultWords
            }
    }

    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) {
        for op in operations {
            hasher.combine(op.opcode)
            hasher.combine(op.name)
            hasher.combine(op.cudaFunction)
            hasher.combine(op.cudaSource)
            hasher.combine(op.resultWords)
        }
    }

    /// Letters, digits, `_` and `-`, starting with a letter: safe in a file name and a message.
    static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.isASCIILetter, text.utf8.count <= 64 else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" || $0 == "-" }
    }

    /// Names of the compiler's own files (without `.cu`) besides those
    /// starting with `sluice`: an operation named so would make NVRTC's
    /// messages about Sluice's code look like its own.
    static let reservedNames = ["megakernel", "measure"]

    /// Whether `name` (compared without case) starts with `sluice` or is one of `reservedNames`.
    static func isReserved(_ name: String) -> Bool {
        let lower = name.lowercased()
        return lower.hasPrefix("sluice") || reservedNames.contains(lower)
    }

    /// A C identifier that is not reserved for Sluice's own names (`sluice_`).
    static func isCIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.isASCIILetter || first == "_", !text.hasPrefix("sluice_"),
            text.utf8.count <= 128
        else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
