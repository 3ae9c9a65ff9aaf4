#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceNUMA
import SluiceSystem
import SluiceThreads
import Synchronization

// One owner type per CUDA resource; each releases its resource in deinit and
// keeps what it depends on (the context) alive until then. Only this file and
// CUDADriver.swift touch raw driver handles.

/// A retained primary context of one device. Work is done with it pushed as
/// the calling thread's current context (`withCurrent`), so any thread may
/// use the wrappers.
package final class CUDAContext: @unchecked Sendable {
    package let driver: CUDADriver
    let device: CUdevice
    let ordinal: Int
    private let handle: OpaquePointer
    /// The device's context generation when this was retained. A reset after
    /// a lost context (`resetAfterLoss`) starts a new generation; owners of a
    /// stale one skip their frees, because the reset destroyed every
    /// allocation and a freed address may already belong to the new context.
    let generation: UInt64

    private static let generations = Mutex<[CUdevice: UInt64]>([:])

    /// True once the device's primary context was reset after this was retained.
    var isStale: Bool {
        let device = self.device
        return CUDAContext.generations.withLock { $0[device, default: 0] } != generation
    }

    /// Destroys every allocation and all state of the device's primary
    /// context (`cuDevicePrimaryCtxReset`), the way out of a sticky error:
    /// the next retain creates a fresh context. Only once nothing may touch
    /// memory of the lost one (its pinned host buffers are gone with it).
    func resetAfterLoss() {
        let device = self.device
        let driver = self.driver
        CUDAContext.generations.withLock { g in
            guard g[device, default: 0] == generation else { return }   // already reset
            _ = driver.cuDevicePrimaryCtxReset(device)
            g[device, default: 0] += 1
        }
    }

    package init(driver: CUDADriver, ordinal: Int) throws(PipelineError) {
        let device = try driver.device(ordinal: ordinal)
        var context: OpaquePointer? = nil
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain")
        guard let context else {
            throw .gpu(call: "cuDevicePrimaryCtxRetain", code: -1, message: "the driver returned no context")
        }
        self.driver = driver
        self.device = device
        self.ordinal = ordinal
        self.handle = context
        self.generation = CUDAContext.generations.withLock { $0[device, default: 0] }
    }

    deinit {
        _ = driver.cuDevicePrimaryCtxRelease(device)
    }

    /// Runs `body` with this context current on the calling thread.
    package func withCurrent<R>(_ body: () throws(PipelineError) -> R) throws(PipelineError) -> R {
        try driver.check(driver.cuCtxPushCurrent(handle), "cuCtxPushCurrent_v2")
        defer {
            var popped: OpaquePointer? = nil
            _ = driver.cuCtxPopCurrent(&popped)
        }
        return try body()
    }

    /// For deinit paths: runs `body` with the context current, ignoring a push
    /// failure; skips it when the context was reset since (nothing is left to free).
    func releasing(_ body: (CUDADriver) -> Void) {
        guard !isStale else { return }
        let pushed = driver.cuCtxPushCurrent(handle) == CUDADriver.success
        body(driver)
        if pushed {
            var popped: OpaquePointer? = nil
            _ = driver.cuCtxPopCurrent(&popped)
        }
    }

    func attribute(_ attribute: CUDADriver.DeviceAttribute) throws(PipelineError) -> Int {
        try driver.attribute(attribute, of: device)
    }
}

/// Pinned host memory mapped into the device's address space: an anonymous
/// `mmap` (page-aligned) registered with `cuMemHostRegister` (DEVICEMAP |
/// PORTABLE); the host and the kernel address the same bytes, through
/// `bytes` and `deviceAddress`.
///
/// Why not `cuMemHostAlloc`: on the H100 machine it took 190-320 ms for
/// 512 MiB and 50-90 ms to free, against 140 ms to register an mmap and
/// 36 ms to unregister and unmap it (bench/startup/pinprobe.c,
/// benchmarks/RESULTS.md "Start-up"). Both work with io_uring's
/// registered buffers.
package final class CUDAMappedHostBuffer: @unchecked Sendable {
    let context: CUDAContext
    /// The usable bytes, starting at a page boundary.
    package let bytes: UnsafeMutableRawBufferPointer
    /// The device address of `bytes.baseAddress`.
    package let deviceAddress: UInt64
    /// Where the pages went when a NUMA node was asked for (see `NUMAMemory.describe`).
    let numaPlacement: String?
    /// The memory, and the only owner of it; unmapped after the registration
    /// is dropped. Its bytes (whole pages) are what is registered, and what
    /// `MemoryLedger.pinnedHostBytes` counts for it.
    private let mapping: AnonymousMapping

    /// Maps and registers at least `byteCount` bytes (one page when zero),
    /// aligned to `alignment` (a power of two, at most the page size: mmap
    /// returns page-aligned memory). With `numaNode`, the mapping prefers
    /// that node before registration faults its pages in, so they come from
    /// the GPU's own node; a refusal (EPERM in containers) is recorded in
    /// `numaPlacement`, not thrown: the memory works either way.
    package init(context: CUDAContext, byteCount: Int, alignment: Int, numaNode: Int? = nil) throws(PipelineError) {
        guard byteCount >= 0, alignment > 0, alignment & (alignment - 1) == 0, alignment <= AnonymousMapping.pageSize else {
            throw .invalidConfiguration("mapped host buffer of \(byteCount) bytes at alignment \(alignment)")
        }
        // Regions of a huge page or more start on a huge-page boundary and ask
        // for transparent huge pages: pinning and mapping 2 MiB pages is far
        // less work for the driver than 4 KiB ones.
        let mapping = try AnonymousMapping(byteCount: byteCount, purpose: "pinned buffers", hugePages: true)
        let mapped = mapping.bytes.baseAddress!
        let rounded = mapping.bytes.count
        let refusal = numaNode.flatMap { NUMAMemory.prefer(node: $0, base: mapped, length: rounded) }
        PageFaulting.faultIn(mapped, length: rounded, threads: min(8, ProcessorCount.online))
        let driver = context.driver
        let device = try context.withCurrent { () throws(PipelineError) -> UInt64 in
            try driver.check(
                driver.cuMemHostRegister(mapped, rounded, CUDADriver.memHostRegisterDeviceMap | CUDADriver.memHostRegisterPortable),
                "cuMemHostRegister_v2")
            var device: CUdeviceptr = 0
            let result = driver.cuMemHostGetDevicePointer(&device, mapped, 0)
            if result != CUDADriver.success {
                _ = driver.cuMemHostUnregister(mapped)
                throw .gpu(call: "cuMemHostGetDevicePointer_v2", code: result, message: driver.describe(result))
            }
            return device
        }
        self.context = context
        self.mapping = mapping
        self.bytes = UnsafeMutableRawBufferPointer(start: mapped, count: byteCount)
        self.deviceAddress = device
        // Every page is in (faulted above, pinned by registration): sample where they are.
        numaPlacement = numaNode.map { NUMAMemory.describe(node: $0, refusal: refusal, base: mapped, length: rounded) }
        MemoryLedger.pinnedChanged(by: rounded)
    }

    deinit {
        let registered = mapping.bytes.baseAddress
        // After a reset of a lost context the reset already dropped the
        // registration (`releasing` skips the call); the mapping is ours
        // either way and is unmapped as it goes, so nothing leaks across recoveries.
        context.releasing { driver in _ = driver.cuMemHostUnregister(registered) }
        MemoryLedger.pinnedChanged(by: -mapping.bytes.count)
    }
}

/// Device memory (`cuMemAlloc`).
package final class CUDADeviceBuffer: @unchecked Sendable {
    let context: CUDAContext
    let byteCount: Int
    package let deviceAddress: UInt64

    package init(context: CUDAContext, byteCount: Int) throws(PipelineError) {
        let driver = context.driver
        var address: CUdeviceptr = 0
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuMemAlloc(&address, max(byteCount, 1)), "cuMemAlloc_v2")
        }
        self.context = context
        self.byteCount = byteCount
        self.deviceAddress = address
    }

    /// Copies `source` to `offset` in the buffer on `stream` and waits for
    /// the copy. With a non-blocking stream this never waits for work on other
    /// streams (the persistent kernel), so it is safe while that kernel runs.
    func upload(_ source: UnsafeRawBufferPointer, at offset: Int = 0, on stream: CUDAStream) throws(PipelineError) {
        guard offset >= 0, source.count <= byteCount - offset else {
            throw .invalidConfiguration("copy of \(source.count) bytes to offset \(offset) of a device buffer of \(byteCount)")
        }
        guard source.count > 0 else { return }
        try stream.copyToDevice(source, at: deviceAddress + UInt64(offset))
    }

    /// Copies `target.count` bytes from `offset` in the buffer into `target`
    /// on `stream` and waits for the copy; like `upload`, safe while the
    /// persistent kernel runs when `stream` is non-blocking.
    func download(into target: UnsafeMutableRawBufferPointer, from offset: Int, on stream: CUDAStream) throws(PipelineError) {
        guard offset >= 0, target.count <= byteCount - offset else {
            throw .invalidConfiguration("copy of \(target.count) bytes from offset \(offset) of a device buffer of \(byteCount)")
        }
        guard target.count > 0 else { return }
        try stream.copyToHost(target, from: deviceAddress + UInt64(offset))
    }

    /// Sets every byte to zero on `stream` and waits for it (so a kernel
    /// launched on any stream afterwards sees zeros).
    func zero(on stream: CUDAStream) throws(PipelineError) {
        let driver = context.driver
        let address = deviceAddress
        let words = (byteCount + 3) / 4
        let handle = stream.rawHandle
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuMemsetD32Async(address, 0, words, handle), "cuMemsetD32Async")
            try driver.check(driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
        }
    }

    deinit {
        let address = deviceAddress
        context.releasing { driver in _ = driver.cuMemFree(address) }
    }
}

/// A non-blocking stream (does not synchronize with the legacy default stream).
package final class CUDAStream: @unchecked Sendable {
    let context: CUDAContext
    fileprivate let handle: OpaquePointer
    /// The raw stream, for measurement loops that call the driver directly
    /// with the context already current.
    package var rawHandle: OpaquePointer { handle }

    package init(context: CUDAContext) throws(PipelineError) {
        let driver = context.driver
        var stream: OpaquePointer? = nil
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuStreamCreate(&stream, CUDADriver.streamNonBlocking), "cuStreamCreate")
        }
        guard let stream else {
            throw .gpu(call: "cuStreamCreate", code: -1, message: "the driver returned no stream")
        }
        self.context = context
        self.handle = stream
    }

    /// True when all work on the stream has finished, false while some runs;
    /// throws the error a kernel on the stream ended with.
    package func isIdle() throws(PipelineError) -> Bool {
        let driver = context.driver
        let handle = self.handle
        return try context.withCurrent { () throws(PipelineError) -> Bool in
            try driver.finished(driver.cuStreamQuery(handle), "cuStreamQuery")
        }
    }

    package func synchronize() throws(PipelineError) {
        let driver = context.driver
        let handle = self.handle
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
        }
    }

    /// Copies `source.count` bytes to device `address` on this stream and
    /// waits for them. On a non-blocking stream this never waits for other
    /// streams' work (the persistent kernel), so it is safe while it runs.
    func copyToDevice(_ source: UnsafeRawBufferPointer, at address: UInt64) throws(PipelineError) {
        let driver = context.driver
        let handle = self.handle
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuMemcpyHtoDAsync(address, source.baseAddress, source.count, handle), "cuMemcpyHtoDAsync_v2")
            try driver.check(driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
        }
    }

    /// Queues copies of each source to its device address on this stream
    /// and records `event` after them, without waiting: pinned sources move
    /// on a copy engine while the caller goes on.
    func enqueueCopies(_ copies: [(source: UnsafeRawBufferPointer, address: UInt64)], then event: CUDAEvent) throws(PipelineError) {
        let driver = context.driver
        let handle = self.handle
        try context.withCurrent { () throws(PipelineError) in
            for copy in copies where copy.source.count > 0 {
                try driver.check(
                    driver.cuMemcpyHtoDAsync(copy.address, copy.source.baseAddress, copy.source.count, handle), "cuMemcpyHtoDAsync_v2")
            }
            try event.record(on: self)
        }
    }

    /// Copies `target.count` bytes from device `address` on this stream and
    /// waits for them; safe while the persistent kernel runs, like `copyToDevice`.
    func copyToHost(_ target: UnsafeMutableRawBufferPointer, from address: UInt64) throws(PipelineError) {
        let driver = context.driver
        let handle = self.handle
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuMemcpyDtoHAsync(target.baseAddress, address, target.count, handle), "cuMemcpyDtoHAsync_v2")
            try driver.check(driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
        }
    }

    deinit {
        let handle = self.handle
        context.releasing { driver in _ = driver.cuStreamDestroy(handle) }
    }
}

/// An event without timing (`cuEventCreate` with CU_EVENT_DISABLE_TIMING):
/// recorded on a stream, it completes when the work queued before it has.
package final class CUDAEvent: @unchecked Sendable {
    let context: CUDAContext
    private let handle: OpaquePointer

    package init(context: CUDAContext) throws(PipelineError) {
        let driver = context.driver
        var event: OpaquePointer? = nil
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuEventCreate(&event, CUDADriver.eventDisableTiming), "cuEventCreate")
        }
        guard let event else {
            throw .gpu(call: "cuEventCreate", code: -1, message: "the driver returned no event")
        }
        self.context = context
        self.handle = event
    }

    /// Records the event after the work queued on `stream` so far; call with
    /// the context current.
    func record(on stream: CUDAStream) throws(PipelineError) {
        try context.driver.check(context.driver.cuEventRecord(handle, stream.rawHandle), "cuEventRecord")
    }

    /// True once the work before the event has finished; throws the error it ended with.
    package func isComplete() throws(PipelineError) -> Bool {
        let driver = context.driver
        let handle = self.handle
        return try context.withCurrent { () throws(PipelineError) -> Bool in
            try driver.finished(driver.cuEventQuery(handle), "cuEventQuery")
        }
    }

    /// Blocks until the work before the event has finished.
    package func synchronize() throws(PipelineError) {
        let driver = context.driver
        let handle = self.handle
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuEventSynchronize(handle), "cuEventSynchronize")
        }
    }

    deinit {
        let handle = self.handle
        context.releasing { driver in _ = driver.cuEventDestroy(handle) }
    }
}

/// A loaded module (`cuModuleLoadData` of a CUBIN image).
package final class CUDAModule: @unchecked Sendable {
    let context: CUDAContext
    fileprivate let handle: OpaquePointer

    init(context: CUDAContext, image: [UInt8]) throws(PipelineError) {
        let driver = context.driver
        var module: OpaquePointer? = nil
        try context.withCurrent { () throws(PipelineError) in
            let result = image.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress) }
            try driver.check(result, "cuModuleLoadData")
        }
        guard let module else {
            throw .gpu(call: "cuModuleLoadData", code: -1, message: "the driver returned no module")
        }
        self.context = context
        self.handle = module
    }

    package func function(named name: String) throws(PipelineError) -> CUDAFunction {
        let driver = context.driver
        let handle = self.handle
        var function: OpaquePointer? = nil
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuModuleGetFunction(&function, handle, name), "cuModuleGetFunction(\(name))")
        }
        guard let function else {
            throw .gpu(call: "cuModuleGetFunction(\(name))", code: -1, message: "the driver returned no function")
        }
        return CUDAFunction(module: self, name: name, handle: function)
    }

    deinit {
        let handle = self.handle
        context.releasing { driver in _ = driver.cuModuleUnload(handle) }
    }
}

/// A kernel of a loaded module; keeps the module alive.
package final class CUDAFunction: @unchecked Sendable {
    let module: CUDAModule
    let name: String
    private let handle: OpaquePointer
    /// The raw function, for measurement loops that call the driver directly
    /// with the context already current.
    package var rawHandle: OpaquePointer { handle }

    fileprivate init(module: CUDAModule, name: String, handle: OpaquePointer) {
        self.module = module
        self.name = name
        self.handle = handle
    }

    private var context: CUDAContext { module.context }

    func attribute(_ attribute: CUDADriver.FunctionAttribute) throws(PipelineError) -> Int {
        let driver = context.driver
        let handle = self.handle
        var value: Int32 = 0
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuFuncGetAttribute(&value, attribute.rawValue, handle), "cuFuncGetAttribute")
        }
        return Int(value)
    }

    func setAttribute(_ attribute: Int32, to value: Int) throws(PipelineError) {
        let driver = context.driver
        let handle = self.handle
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(driver.cuFuncSetAttribute(handle, attribute, Int32(value)), "cuFuncSetAttribute")
        }
    }

    /// Blocks of `blockThreads` threads that fit on one multiprocessor at once.
    func maxActiveBlocksPerMultiprocessor(blockThreads: Int, dynamicSharedBytes: Int = 0) throws(PipelineError) -> Int {
        let driver = context.driver
        let handle = self.handle
        var blocks: Int32 = 0
        try context.withCurrent { () throws(PipelineError) in
            try driver.check(
                driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, handle, Int32(blockThreads), dynamicSharedBytes),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor")
        }
        return Int(blocks)
    }

    /// Launches a one-dimensional grid on `stream` (nil: the legacy default
    /// stream, which orders the launch after earlier synchronous copies and
    /// memsets). `argumentWords`, when given, is the kernel's single by-value
    /// parameter: a struct of 64-bit words.
    package func launch(grid: Int, blockThreads: Int, sharedBytes: Int = 0, stream: CUDAStream?, argumentWords: [UInt64]?)
        throws(PipelineError)
    {
        guard grid > 0, grid <= Int(Int32.max), blockThreads > 0, blockThreads <= 1024, sharedBytes >= 0 else {
            throw .invalidConfiguration("launch of \(name) with grid \(grid), block \(blockThreads), \(sharedBytes) shared bytes")
        }
        let driver = context.driver
        let handle = self.handle
        let streamHandle = stream?.handle
        try context.withCurrent { () throws(PipelineError) in
            let result: CUresult
            if var words = argumentWords {
                result = words.withUnsafeMutableBytes { bytes in
                    var parameters: [UnsafeMutableRawPointer?] = [bytes.baseAddress]
                    return parameters.withUnsafeMutableBufferPointer { list in
                        driver.cuLaunchKernel(
                            handle, UInt32(grid), 1, 1, UInt32(blockThreads), 1, 1, UInt32(sharedBytes), streamHandle,
                            list.baseAddress, nil)
                    }
                }
            } else {
                result = driver.cuLaunchKernel(
                    handle, UInt32(grid), 1, 1, UInt32(blockThreads), 1, 1, UInt32(sharedBytes), streamHandle, nil, nil)
            }
            try driver.check(result, "cuLaunchKernel(\(name))")
        }
    }
}
