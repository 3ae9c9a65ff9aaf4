import SluiceThreads

/// Faults fresh anonymous memory in on several threads before it is pinned.
///
/// Why: `cuMemHostRegister` faults in every page it pins on the calling
/// thread, and the kernel zeroes each one there. Faulted in on 8 threads
/// first, the default 512 MiB data region pinned in 27-36 ms instead of
/// 97-106 ms on the H100 machine (run 22 in `benchmarks/RESULTS.md`), in
/// every CUDA command's start. Nothing in the ecosystem does this for a
/// region, so it is a few lines here, on `PosixThread`.
enum PageFaulting {
    /// Below this a second thread costs more than it saves.
    static let bytesPerThread = 32 << 20

    /// Writes a zero to every 4 KiB page of `[base, base + length)` (a write,
    /// not a read: a read of untouched anonymous memory maps the shared zero
    /// page and allocates nothing), split over up to `threads` threads, the
    /// caller's included; returns once every page is in. A thread that cannot
    /// be started leaves its share to the caller.
    static func faultIn(_ base: UnsafeMutableRawPointer, length: Int, threads: Int) {
        let parts = max(1, min(threads, length / bytesPerThread))
        let share = (length / parts + 4095) / 4096 * 4096
        var started: [PosixThread] = []
        for index in 1..<parts {
            let start = index * share
            guard start < length else { break }
            let part = Part(base: base + start, length: min(share, length - start))
            if let thread = try? PosixThread(name: "page faulting \(index)", body: { part.touch() }) {
                started.append(thread)
            } else {
                part.touch()
            }
        }
        Part(base: base, length: min(share, length)).touch()
        for thread in started { thread.join() }
    }

    /// One thread's share of the pages. Unchecked Sendable: each part is
    /// a range no other part touches, and `faultIn` joins every thread
    /// before anyone uses the memory.
    final class Part: @unchecked Sendable {
        let base: UnsafeMutableRawPointer
        let length: Int

        init(base: UnsafeMutableRawPointer, length: Int) {
            self.base = base
            self.length = length
        }

        func touch() {
            var offset = 0
            while offset < length {
                // Kept by the compiler: it cannot know the byte is already zero.
                (base + offset).assumingMemoryBound(to: UInt8.self).pointee = 0
                offset += 4096
            }
        }
    }
}
