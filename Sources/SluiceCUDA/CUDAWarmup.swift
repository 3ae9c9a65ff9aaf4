import SluiceCore
import SluiceThreads
import Synchronization

/// Loads the CUDA driver (`cuInit`) and retains devices' primary contexts on
/// a background thread, so that their fixed cost (about 220 ms on the H100
/// machine: benchmarks/RESULTS.md, "Start-up") overlaps the command's own
/// start (walking the tree, compiling the pattern table) instead of adding
/// to it. A `CUDABackend` made later finds the driver loaded and the primary
/// context alive, and retains it again at no cost.
///
/// Call `end()` once the backends exist (or are not wanted): it drops the
/// warm-up's own retains; a context the backend retained stays alive. When
/// nothing loads (no driver), the warm-up does nothing and the backend's own
/// start reports why.
public enum CUDAWarmup {
    private struct State: ~Copyable {
        var contexts: [CUDAContext] = []
        var ended = false
    }
    private static let state = Mutex(State())

    /// Starts warming `devices` (CUDA ordinals) on one detached thread.
    public static func begin(devices: [Int]) {
        let ordinals = devices.isEmpty ? [0] : devices
        do {
            try PosixThread.detach(name: "cuda warm-up") { CUDAWarmup.warm(ordinals) }
        } catch {
            // Only a lost head start: the backend starts the driver itself.
            return
        }
        PhaseTrace.mark("cuda warm-up: started")
    }

    /// Drops the warm-up's retains (now, or when the warm-up finishes).
    public static func end() {
        // Returned, so that the retains are released after the lock, not under it.
        _ = state.withLock { s -> [CUDAContext] in
            s.ended = true
            defer { s.contexts = [] }
            return s.contexts
        }
    }

    private static func warm(_ ordinals: [Int]) {
        guard case .success(let driver) = CUDADriver.shared else { return }
        PhaseTrace.mark("cuda warm-up: driver loaded and initialized")
        for ordinal in ordinals {
            guard let context = try? CUDAContext(driver: driver, ordinal: ordinal) else { continue }
            PhaseTrace.mark("cuda warm-up: primary context of device \(ordinal) retained")
            let keep = state.withLock { s -> Bool in
                if s.ended { return false }
                s.contexts.append(context)
                return true
            }
            if !keep { return }
        }
    }

}
