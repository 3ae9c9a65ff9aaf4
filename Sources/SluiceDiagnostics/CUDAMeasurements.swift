#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCUDA
import SluiceCore
import SluiceOps
import SluiceSystem
import Synchronization

/// Kernels/measure.cu: the measurement kernels, kept out of the production
/// megakernel source. The program includes megakernel.cu for its constants
/// and memory helpers, so it is handed that file and all of its headers.
enum MeasurementKernels {
    static let emptyKernelName = "sluice_empty"
    static let pingPongKernelName = "sluice_pingpong"
    static let countChunkKernelName = "sluice_count_chunk"

    static var program: KernelProgram {
        KernelProgram(
            main: KernelSource(name: "measure.cu", text: PackageResources.measure_cu),
            headers: [KernelSource(name: Megakernel.sourceName, text: Megakernel.source)] + Megakernel.headers)
    }
}

/// The ceilings and baselines `sluice bench` compares the megakernel with,
/// measured through the driver directly on the same device:
///
/// - an empty kernel launch + stream synchronize (what one small piece of work
///   costs when every piece is its own launch);
/// - the host → GPU → host round trip through flags in mapped host memory
///   (a spinning one-thread kernel echoes each value; the floor under any
///   dispatch through mapped memory), plus variants that add one dependent
///   mapped read or one system-scope compare-and-swap before the echo, so
///   the cost of each step the megakernel takes on a claim can be read off;
/// - a "user-written" count of a file: pread into a pinned host buffer,
///   `cuMemcpyHtoD`, memset, a plain count kernel launch, `cuMemcpyDtoH` of the
///   258 result words, per chunk, on the legacy default stream.
///
/// Run these while no persistent megakernel runs: it occupies multiprocessors
/// and polls over PCIe, which would disturb both.
public final class CUDAMeasurements {
    /// The device measured.
    public let device: CUDADeviceInfo
    /// Where the kernels' CUBIN came from (compiled now, or the cache).
    public let kernelOrigin: String

    private let context: CUDAContext
    private let module: CUDAModule
    private let empty: CUDAFunction
    private let pingPong: CUDAFunction
    private let countChunk: CUDAFunction
    /// The ping-pong page, kept between round trips so that one can run while
    /// a persistent kernel occupies the device (freeing pinned memory then
    /// would wait for that kernel; allocate it first with `preparePingPage`).
    /// A page whose kernel was left running is never reused.
    private var pingPage: CUDAMappedHostBuffer?
    /// Ping-pong kernels that never answered and still sit on the device
    /// (they may disturb every later measurement of this process).
    public private(set) var kernelsLeftRunning = 0

    /// What the ping-pong kernel does between seeing a value and echoing it.
    public enum RoundTripStep: Int, CaseIterable, Sendable, CustomStringConvertible {
        /// Nothing: the plain round trip.
        case echo = 0
        /// One dependent read of another word of mapped host memory.
        case mappedRead = 1
        /// Two dependent reads (the second's address depends on the first):
        /// what a slot's dispatch needs at least, the payload after the
        /// acquire and then the chunk bytes.
        case twoMappedReads = 2
        /// A system-scope compare-and-swap on mapped host memory that succeeds.
        case compareAndSwap = 3
        /// A 64-bit system-scope atomicAdd on mapped host memory. On the H100
        /// machine (PCIe, no host-native atomics) no round trip through it
        /// completed within 2 s, and the kernel stayed inside it. Not in `measured`.
        case atomicAdd = 4
        /// A store to mapped host memory and a system fence (the release
        /// before a slot's DONE), then the echo.
        case storeAndFence = 5
        /// The echo, and after it a store into the ping's own cache line (as
        /// the megakernel writes a slot's status in the line it polls);
        /// polling with volatile loads.
        case writePolledLineVolatile = 6
        /// The same, polling with `ld.global.cv`.
        case writePolledLineCacheVolatile = 7

        /// The steps `sluice bench dispatch` measures (all but `atomicAdd`, which did not complete).
        public static var measured: [RoundTripStep] { allCases.filter { $0 != .atomicAdd } }

        /// What the step does besides the echo, as the report's rows name it.
        public var description: String {
            switch self {
            case .echo: return "echo"
            case .mappedRead: return "1 dependent read + echo"
            case .twoMappedReads: return "2 dependent reads + echo"
            case .compareAndSwap: return "atomicCAS_system + echo"
            case .atomicAdd: return "64-bit atomicAdd_system + echo"
            case .storeAndFence: return "store + system fence + echo"
            case .writePolledLineVolatile: return "echo, kernel also writes the polled line, volatile polling"
            case .writePolledLineCacheVolatile: return "echo, kernel also writes the polled line, ld.cv polling"
            }
        }
    }

    /// Creates a context on device `ordinal` and compiles (or loads from the cache) the measurement kernels; throws when CUDA or NVRTC is unavailable.
    public init(device ordinal: Int = 0) throws(PipelineError) {
        let driver = try CUDADriver.shared.get()
        let info = try CUDAProbe.deviceInfo(driver: driver, ordinal: ordinal)
        let context = try CUDAContext(driver: driver, ordinal: ordinal)
        let build = KernelBuild(
            computeCapability: (info.computeCapability.major, info.computeCapability.minor), driverVersion: info.driverVersion,
            program: MeasurementKernels.program)
        let (module, origin, _) = try build.load(into: context)
        self.device = info
        self.kernelOrigin = origin.description
        self.context = context
        self.module = module
        self.empty = try module.function(named: MeasurementKernels.emptyKernelName)
        self.pingPong = try module.function(named: MeasurementKernels.pingPongKernelName)
        self.countChunk = try module.function(named: MeasurementKernels.countChunkKernelName)
        try preparePingPage()
    }

    /// Makes sure a ping-pong page exists (a fresh one after a kernel was
    /// left running on the last). Call it before starting a persistent kernel
    /// that a round trip will run beside.
    public func preparePingPage() throws(PipelineError) {
        guard pingPage == nil else { return }
        let page = AnonymousMapping.pageSize
        pingPage = try CUDAMappedHostBuffer(context: context, byteCount: page, alignment: page)
    }

    /// Nanoseconds of each `cuLaunchKernel(sluice_empty, 1×1)` + `cuStreamSynchronize`,
    /// on a non-blocking stream, with the context current throughout (no push/pop in the loop).
    public func emptyLaunchAndSynchronize(iterations: Int, warmup: Int = 1000) throws(PipelineError) -> [UInt64] {
        let stream = try CUDAStream(context: context)
        let driver = context.driver
        let function = empty.rawHandle
        let streamHandle = stream.rawHandle
        return try context.withCurrent { () throws(PipelineError) -> [UInt64] in
            var samples: [UInt64] = []
            samples.reserveCapacity(iterations)
            for i in 0..<(warmup + iterations) {
                let start = clockNanoseconds()
                try driver.check(
                    driver.cuLaunchKernel(function, 1, 1, 1, 1, 1, 1, 0, streamHandle, nil, nil),
                    "cuLaunchKernel(\(MeasurementKernels.emptyKernelName))")
                try driver.check(driver.cuStreamSynchronize(streamHandle), "cuStreamSynchronize")
                let end = clockNanoseconds()
                if i >= warmup { samples.append(end - start) }
            }
            return samples
        }
    }

    /// Average nanoseconds per launch of `count` empty kernels issued back to
    /// back on one stream and synchronized once.
    public func emptyLaunchesBackToBack(count: Int) throws(PipelineError) -> Double {
        let stream = try CUDAStream(context: context)
        let driver = context.driver
        let function = empty.rawHandle
        let streamHandle = stream.rawHandle
        return try context.withCurrent { () throws(PipelineError) -> Double in
            for _ in 0..<100 {
                try driver.check(
                    driver.cuLaunchKernel(function, 1, 1, 1, 1, 1, 1, 0, streamHandle, nil, nil), "cuLaunchKernel")
            }
            try driver.check(driver.cuStreamSynchronize(streamHandle), "cuStreamSynchronize")
            let start = clockNanoseconds()
            for _ in 0..<count {
                try driver.check(
                    driver.cuLaunchKernel(function, 1, 1, 1, 1, 1, 1, 0, streamHandle, nil, nil), "cuLaunchKernel")
            }
            try driver.check(driver.cuStreamSynchronize(streamHandle), "cuStreamSynchronize")
            return Double(clockNanoseconds() - start) / Double(max(count, 1))
        }
    }

    /// What `mappedRoundTrip` measured.
    public struct RoundTrip: Sendable {
        /// Nanoseconds per round trip.
        public var samples: [UInt64]
        /// For the atomic steps: anything wrong seen (a nonzero old value
        /// returned from a word that holds 0, or the word changed), else nil.
        public var anomaly: String?
    }

    /// Nanoseconds of each host → GPU → host round trip through flags in
    /// mapped pinned host memory: the host stores a new value (release) and
    /// busy-polls for the echo (acquire); one spinning GPU thread echoes it
    /// after `step`.
    public func mappedRoundTrip(iterations: Int, warmup: Int = 1000, step: RoundTripStep = .echo)
        throws(PipelineError) -> RoundTrip
    {
        try preparePingPage()
        guard let flags = pingPage else {
            throw .gpu(call: MeasurementKernels.pingPongKernelName, code: -1, message: "no ping-pong page")
        }
        flags.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        let base = flags.bytes.baseAddress!
        let ping = UnsafePointer(base.assumingMemoryBound(to: Atomic<UInt32>.self))
        let pong = UnsafePointer((base + 128).assumingMemoryBound(to: Atomic<UInt32>.self))
        func word(_ index: Int) -> UInt32 {
            UnsafePointer((base + 4 * index).assumingMemoryBound(to: Atomic<UInt32>.self)).pointee.load(ordering: .acquiring)
        }
        let stream = try CUDAStream(context: context)
        try pingPong.launch(
            grid: 1, blockThreads: 32, stream: stream, argumentWords: [flags.deviceAddress, UInt64(step.rawValue)])
        let stop: UInt32 = 0xFFFF_FFFF
        var samples: [UInt64] = []
        samples.reserveCapacity(iterations)
        for i in 1...(warmup + iterations) {
            let value = UInt32(i)
            let start = clockNanoseconds()
            ping.pointee.store(value, ordering: .releasing)
            var spins: UInt64 = 0
            while true {
                let seen = pong.pointee.load(ordering: .acquiring)
                if seen == value { break }
                spins &+= 1
                if spins & 0xF_FFFF == 0, clockNanoseconds() - start > 2_000_000_000 {
                    let state: String
                    do { state = try stream.isIdle() ? "the kernel had ended" : "the kernel still runs" } catch {
                        state = "the kernel failed: \(error.message)"
                    }
                    ping.pointee.store(stop, ordering: .releasing)
                    pingPage = nil
                    if state == "the kernel still runs" { kernelsLeftRunning += 1 }
                    CUDAGraveyard.keep([flags, stream, pingPong])
                    throw .gpu(
                        call: MeasurementKernels.pingPongKernelName, code: -1,
                        message: "\(step): no echo of value \(value) within 2 s; pong holds \(seen) (\(state))")
                }
            }
            let end = clockNanoseconds()
            if i > warmup { samples.append(end - start) }
        }
        ping.pointee.store(stop, ordering: .releasing)
        try stream.synchronize()
        var anomaly: String?
        if step == .compareAndSwap || step == .atomicAdd {
            let returned = UInt64(word(40)) | UInt64(word(41)) << 32
            let target = step == .compareAndSwap ? UInt64(word(64)) : UInt64(word(66)) | UInt64(word(67)) << 32
            if returned != 0 || target != 0 {
                anomaly = "\(step) on a zero word of mapped host memory returned 0x\(String(returned, radix: 16)) (last nonzero return) and left the word 0x\(String(target, radix: 16))"
            }
        }
        return RoundTrip(samples: samples, anomaly: anomaly)
    }

    /// What `countFileWithCopies` measured.
    public struct CopyLoopResult: Sendable {
        /// The file's bytes, newlines and histogram, summed over chunks.
        public var result: CountResult
        /// Bytes counted.
        public var bytes: UInt64
        /// Chunks copied and counted.
        public var chunks: Int
        /// Wall time of the whole loop, in nanoseconds.
        public var nanoseconds: UInt64
        /// Blocks of each count kernel launch.
        public var grid: Int
    }

    /// Counts a file the way a user would without Sluice: per chunk, `pread`
    /// into one pinned host buffer, `cuMemcpyHtoD` into device memory,
    /// `cuMemsetD32` the result, launch `sluice_count_chunk`, `cuMemcpyDtoH`
    /// the 258 result words (which waits for the kernel), and add them up.
    /// All on the legacy default stream, one chunk at a time.
    public func countFileWithCopies(path: String, chunkBytes: Int) throws(PipelineError) -> CopyLoopResult {
        guard chunkBytes > 0, chunkBytes <= Int(UInt32.max) else {
            throw .invalidConfiguration("chunk size \(chunkBytes) for the copy loop")
        }
        let page = AnonymousMapping.pageSize
        let host = try CUDAMappedHostBuffer(context: context, byteCount: chunkBytes, alignment: page)
        let input = try CUDADeviceBuffer(context: context, byteCount: chunkBytes)
        let output = try CUDADeviceBuffer(context: context, byteCount: CountOp.resultWords * 4)
        let driver = context.driver
        let function = countChunk.rawHandle
        let vectorsPerBlock = Megakernel.blockThreads * 16
        let maxGrid = device.multiprocessors * 4
        let start = clockNanoseconds()
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw .io(IOFailure(operation: "open", path: path, errno: e))
        }
        defer { close(fd) }
        var words = [UInt32](repeating: 0, count: CountOp.resultWords)
        var total = CountResult()
        var offset: UInt64 = 0
        var chunks = 0
        var grid = 1
        try context.withCurrent { () throws(PipelineError) in
            while true {
                var filled = 0
                while filled < chunkBytes {
                    let n = pread(fd, host.bytes.baseAddress! + filled, chunkBytes - filled, off_t(offset) + off_t(filled))
                    if n < 0 {
                        let e = errno
                        if e == EINTR { continue }
                        throw .io(IOFailure(
                            operation: "pread", path: path, fileOffset: offset, length: chunkBytes, errno: e))
                    }
                    if n == 0 { break }
                    filled += n
                }
                if filled == 0 { break }
                try driver.check(driver.cuMemcpyHtoD(input.deviceAddress, host.bytes.baseAddress, filled), "cuMemcpyHtoD_v2")
                try driver.check(driver.cuMemsetD32(output.deviceAddress, 0, CountOp.resultWords), "cuMemsetD32_v2")
                grid = max(1, min((filled + vectorsPerBlock - 1) / vectorsPerBlock, maxGrid))
                var parameters: [UInt64] = [input.deviceAddress, UInt64(filled), output.deviceAddress, 0]
                let launched = parameters.withUnsafeMutableBytes { bytes in
                    var list: [UnsafeMutableRawPointer?] = [bytes.baseAddress]
                    return list.withUnsafeMutableBufferPointer { pointers in
                        driver.cuLaunchKernel(
                            function, UInt32(grid), 1, 1, UInt32(Megakernel.blockThreads), 1, 1, 0, nil,
                            pointers.baseAddress, nil)
                    }
                }
                try driver.check(launched, "cuLaunchKernel(\(MeasurementKernels.countChunkKernelName))")
                let copied = words.withUnsafeMutableBytes {
                    driver.cuMemcpyDtoH($0.baseAddress, output.deviceAddress, $0.count)
                }
                try driver.check(copied, "cuMemcpyDtoH_v2")
                let chunk = try CountResult(words: words)
                guard chunk.bytes == UInt64(filled) else {
                    throw .malformed(
                        what: "count result of the copy loop at offset \(offset)",
                        detail: "kernel counted \(chunk.bytes) bytes of \(filled)")
                }
                total.add(chunk)
                offset += UInt64(filled)
                chunks += 1
                if filled < chunkBytes { break }
            }
        }
        let elapsed = clockNanoseconds() - start
        return CopyLoopResult(result: total, bytes: offset, chunks: chunks, nanoseconds: elapsed, grid: grid)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func clockNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
