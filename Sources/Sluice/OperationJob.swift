import SluiceCore

/// Runs an installed user operation over files: each chunk's result words
/// are combined in file order (chunks finish in any order; early ones wait
/// in a small table), and each file's value is reported in input order.
enum OperationJob {
    /// The scheduler job for `operation`, installed with `opcode`, over
    /// `paths` for `tenant`, on chunks of `chunkBytes`.
    static func job<Op: SluiceOperation>(
        _ operation: Op, opcode: Opcode, tenant: UInt32, paths: [RawPath], chunkBytes: Int,
        onFile: @escaping (FileResult<Op.Result>) -> Void
    ) -> ChunkScheduler.Job {
        let stride = chunkBytes - operation.overlapBytes
        var files: [Int: FileState<Op.Result>] = [:]
        var finished: [Int: FileResult<Op.Result>] = [:]
        var nextToReport = 0
        return ChunkScheduler.Job(
            tenant: tenant, paths: paths, opcode: opcode, flags: operation.argument, overlap: operation.overlapBytes,
            onChunk: { chunk in
                var state = files[chunk.fileIndex] ?? FileState(value: operation.initialResult)
                defer { files[chunk.fileIndex] = state }
                guard chunk.words.count == operation.resultWords else {
                    // The backend's completion word disagrees with the declaration: a guard, not a path.
                    state.problems.append(.malformed(
                        what: "\(operation.name) result of chunk \(chunk.chunkNumber) of \(chunk.path)",
                        detail: "\(chunk.words.count) words, declared \(operation.resultWords)"))
                    return
                }
                state.waiting[chunk.chunkNumber] = OperationChunkResult(
                    chunkNumber: chunk.chunkNumber, fileOffset: chunk.fileOffset, ownBytes: min(chunk.length, stride),
                    words: chunk.words)
                state.combineReady(operation)
            },
            onFile: { outcome in
                var state = files.removeValue(forKey: outcome.fileIndex) ?? FileState(value: operation.initialResult)
                var errors = outcome.errors + state.problems
                if errors.isEmpty, state.nextChunk != outcome.chunks || !state.waiting.isEmpty {
                    // The scheduler accounts for every chunk; this is a guard, not a path.
                    errors.append(.unaccounted(
                        path: outcome.path.description, chunks: Array(state.nextChunk..<max(state.nextChunk, outcome.chunks))))
                }
                state.waiting.removeAll()
                finished[outcome.fileIndex] = FileResult(
                    path: outcome.path, value: state.value, bytes: state.bytes, errors: errors)
                // Files finish out of order when chunks do; report in input order.
                while let next = finished.removeValue(forKey: nextToReport) {
                    onFile(next)
                    nextToReport += 1
                }
            })
    }

    /// One file's value so far and its chunks that came early.
    struct FileState<Value> {
        var value: Value
        var nextChunk = 0
        var bytes: UInt64 = 0
        var waiting: [Int: OperationChunkResult] = [:]
        var problems: [PipelineError] = []

        /// Combines every waiting chunk that is next in file order.
        mutating func combineReady<Op: SluiceOperation>(_ operation: Op) where Op.Result == Value {
            while let chunk = waiting.removeValue(forKey: nextChunk) {
                operation.combine(&value, with: chunk)
                bytes += UInt64(chunk.ownBytes)
                nextChunk += 1
            }
        }
    }
}
