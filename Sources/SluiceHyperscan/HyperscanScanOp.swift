import SluiceCore
import SluiceOps

/// The `scan` opcode with Hyperscan doing the matching: the same contract,
/// checks, result words and overflow rule as `ScanOp.run` (docs/protocol.md,
/// "scan"), so a slot's found count and, when they all fit, its records are
/// the same set as the built-in engine's. Hyperscan reports by end offset,
/// so records may be stored in another order (the host sorts), and when the
/// area overflows (found > stored) which matches were stored differs; the
/// host discards those and rescans the chunk.
public enum HyperscanScanOp {
    /// Runs the op into `result` with `scratch` (the calling thread's own).
    /// Throws only when `hs_scan` itself fails; the result area is then
    /// unspecified and the caller reruns the slot with `ScanOp.run`.
    public static func run(
        database: HyperscanDatabase, scratch: HyperscanScratch, chunk: UnsafeRawBufferPointer, startLimit: Int,
        flags: UInt32, into result: UnsafeMutableBufferPointer<UInt32>
    ) throws(PipelineError) -> ScanOp.Outcome {
        guard startLimit >= 0, startLimit <= chunk.count else { return .fault(.badArguments) }
        guard result.count >= ScanOp.headerWords else { return .fault(.resultOverflow) }
        let countOnly = flags & ScanOp.countOnlyFlag != 0
        var sink = RecordSink(
            lengths: UnsafePointer(database.lengths.baseAddress!), startLimit: UInt64(startLimit),
            found: 0, stored: 0,
            capacity: countOnly ? 0 : (result.count - ScanOp.headerWords) / 2,
            records: result.baseAddress! + ScanOp.headerWords)
        let onMatch: HSMatchHandler = { id, _, to, _, context in
            let sink = context.unsafelyUnwrapped.assumingMemoryBound(to: RecordSink.self)
            let start = to &- UInt64(sink.pointee.lengths[Int(id)])
            guard start < sink.pointee.startLimit else { return 0 }
            let stored = sink.pointee.stored
            if stored < sink.pointee.capacity {
                sink.pointee.records[2 * stored] = UInt32(truncatingIfNeeded: start)
                sink.pointee.records[2 * stored + 1] = id
                sink.pointee.stored = stored + 1
            }
            sink.pointee.found &+= 1
            return 0
        }
        try scan(database: database, scratch: scratch, chunk: chunk, startLimit: startLimit, handler: onMatch, context: &sink)
        result[0] = UInt32(truncatingIfNeeded: sink.found)
        result[1] = UInt32(truncatingIfNeeded: sink.found >> 32)
        result[2] = UInt32(sink.stored)
        result[3] = 0
        return .done(resultWords: UInt32(ScanOp.headerWords + 2 * sink.stored))
    }

    /// Calls `body(position, pattern)` for every match starting before
    /// `startLimit`, in the order Hyperscan reports them (by end offset).
    public static func forEachMatch(
        database: HyperscanDatabase, scratch: HyperscanScratch, chunk: UnsafeRawBufferPointer, startLimit: Int,
        _ body: (Int, UInt32) -> Void
    ) throws(PipelineError) {
        guard startLimit >= 0, startLimit <= chunk.count else {
            throw .invalidRequest(chunk: nil, slot: nil, reason: "start limit \(startLimit) is outside the \(chunk.count)-byte chunk")
        }
        try withoutActuallyEscaping(body) { (escapable) throws(PipelineError) in
            var sink = CallbackSink(
                lengths: UnsafePointer(database.lengths.baseAddress!), startLimit: UInt64(startLimit), body: escapable)
            let onMatch: HSMatchHandler = { id, _, to, _, context in
                let sink = context.unsafelyUnwrapped.assumingMemoryBound(to: CallbackSink.self)
                let start = to &- UInt64(sink.pointee.lengths[Int(id)])
                if start < sink.pointee.startLimit { sink.pointee.body(Int(start), id) }
                return 0
            }
            try scan(database: database, scratch: scratch, chunk: chunk, startLimit: startLimit, handler: onMatch, context: &sink)
        }
    }

    /// `hs_scan` over the bytes a match starting before `startLimit` can reach.
    private static func scan<Sink>(
        database: HyperscanDatabase, scratch: HyperscanScratch, chunk: UnsafeRawBufferPointer, startLimit: Int,
        handler: HSMatchHandler, context: inout Sink
    ) throws(PipelineError) {
        guard startLimit > 0, let base = chunk.baseAddress else { return }
        // Bytes past startLimit + maxLength - 1 can end no match that starts in range.
        let length = min(chunk.count, startLimit + database.maxLength - 1)
        guard length <= Int(UInt32.max) else {
            throw .invalidRequest(chunk: nil, slot: nil, reason: "a \(length)-byte block is more than hs_scan takes")
        }
        let library = database.library
        let code = withUnsafeMutablePointer(to: &context) { sink in
            library.hs_scan(
                database.raw, base.assumingMemoryBound(to: CChar.self), UInt32(length), 0, scratch.raw, handler,
                UnsafeMutableRawPointer(sink))
        }
        guard code == HyperscanLibrary.success else {
            throw .backendUnavailable(backend: "hyperscan", reason: "hs_scan failed: \(HyperscanLibrary.describe(code))")
        }
    }
}

/// Where `run`'s match callback writes: the header counts and the records.
private struct RecordSink {
    let lengths: UnsafePointer<UInt32>
    let startLimit: UInt64
    var found: UInt64
    var stored: Int
    let capacity: Int
    let records: UnsafeMutablePointer<UInt32>
}

/// What `forEachMatch`'s match callback calls.
private struct CallbackSink {
    let lengths: UnsafePointer<UInt32>
    let startLimit: UInt64
    let body: (Int, UInt32) -> Void
}
