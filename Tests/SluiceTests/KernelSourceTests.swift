import Glibc
import SluiceExampleOperations
import Testing

@testable import Sluice
@testable import SluiceCUDA
@testable import SluiceDiagnostics

/// The CUDA programs as the host hands them to NVRTC: megakernel.cu and the
/// sluice_*.h headers it includes. NVRTC finds an include only among the
/// headers it is given (nothing is read from the file system), so a header
/// missing from a program would fail only on a machine with a GPU.
@Suite struct KernelSourceTests {
    /// The names of a source's `#include "NAME"` lines.
    static func includes(_ text: [UInt8]) -> [String] {
        String(decoding: text, as: UTF8.self).split(separator: "\n").compactMap { line in
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            guard trimmed.hasPrefix("#include \"") else { return nil }
            return String(trimmed.dropFirst("#include \"".count).prefix { $0 != "\"" })
        }
    }

    /// The includes reachable from the program's main source, through its
    /// headers; records an issue for any name the program does not hand over.
    static func reachedHeaders(_ program: KernelProgram) -> Set<String> {
        let byName = Dictionary(program.headers.map { ($0.name, $0.text) }, uniquingKeysWith: { first, _ in first })
        var reached: Set<String> = []
        var pending = includes(program.main.text)
        while let name = pending.popLast() {
            guard reached.insert(name).inserted else { continue }
            guard let text = byName[name] else {
                Issue.record("\(program.main.name) includes \(name), which its program does not hand to NVRTC")
                continue
            }
            pending += includes(text)
        }
        return reached
    }

    @Test("every include of the megakernel, of it with user operations and of measure.cu is among the program's headers")
    func programsCarryTheirHeaders() throws {
        let megakernel = KernelProgram.megakernel
        let names = megakernel.headers.map(\.name)
        #expect(Set(names).count == names.count && names.count >= 2)
        // The production program: exactly the headers it includes.
        #expect(Self.reachedHeaders(megakernel) == Set(names))
        #expect(names.allSatisfy { $0.hasPrefix("sluice_") && $0.hasSuffix(".h") })  // the reserved prefix (OperationSet)

        let set = try Session.operationSet([ByteHistogram(), XXH64Blocks()])
        let composed = UserOperationSource.program(set)
        #expect(Self.reachedHeaders(composed) == Set(names + [UserOperationSource.headerName]))

        let measure = MeasurementKernels.program
        #expect(Self.reachedHeaders(measure) == Set(names + [Megakernel.sourceName]))
    }

    @Test("user operations are spliced in after every include of megakernel.cu")
    func markersFollowTheIncludes() throws {
        let lines = String(decoding: Megakernel.source, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let lastInclude = try #require(lines.lastIndex { $0.hasPrefix("#include ") })
        let begin = try #require(lines.firstIndex { $0.hasPrefix(UserOperationSource.beginMarker) })
        let end = try #require(lines.firstIndex { $0.hasPrefix(UserOperationSource.endMarker) })
        #expect(lastInclude < begin && begin < end)
        #expect(lines[(end + 1)...].allSatisfy { $0.allSatisfy(\.isWhitespace) }, "nothing follows the END marker")
        // The markers are only in megakernel.cu, which the composition rewrites.
        for header in Megakernel.headers {
            let text = String(decoding: header.text, as: UTF8.self)
            #expect(!text.contains(UserOperationSource.beginMarker) && !text.contains(UserOperationSource.endMarker), "\(header.name)")
        }
    }

    @Test(
        "the production megakernel and measure.cu compile clean under NVRTC (sm_90) from the embedded sources",
        .enabled(if: UserOperationTests.nvrtcLoaded, "NVRTC 13 (.build-ci-venv, as CI installs it) is needed"))
    func programsCompile() throws {
        let nvrtc = try NVRTC.shared.get()
        let options = ["--gpu-architecture=sm_90"] + Megakernel.nvrtcOptions
        for program in [KernelProgram.megakernel, MeasurementKernels.program] {
            let output = try nvrtc.compile(
                source: program.main.text, name: program.main.name, headers: program.headers, options: options)
            #expect(output.log.isEmpty, "\(program.main.name): \(output.log)")
            #expect(output.cubin.starts(with: [0x7F, 0x45, 0x4C, 0x46]), "\(program.main.name): an ELF CUBIN")
        }
    }

    /// The kernel's architecture, options and cache key come from the
    /// device alone: nothing loads NVRTC until a compile is needed.
    @Test func aKernelBuildIsKeyedWithoutNVRTC() {
        let h100 = KernelBuild(computeCapability: (9, 0), driverVersion: 13000)
        #expect(h100.architecture == "sm_90")
        #expect(h100.options == ["--gpu-architecture=sm_90"] + Megakernel.nvrtcOptions)
        #expect(h100.cachePath.map { $0.contains("/megakernel-sm_90-") && $0.hasSuffix(".cubin") } ?? true)
        let again = KernelBuild(computeCapability: (9, 0), driverVersion: 13000)
        #expect(h100.key == again.key)
        // Another device, another program: other keys.
        #expect(KernelBuild(computeCapability: (8, 0), driverVersion: 13000).key != h100.key)
        // Another driver: another key (a driver update compiles again).
        #expect(KernelBuild(computeCapability: (9, 0), driverVersion: 13010).key != h100.key)
        #expect(KernelBuild(computeCapability: (9, 0), driverVersion: 13000, program: MeasurementKernels.program).key != h100.key)
        // Whether NVRTC is needed: a CUBIN file at the build's path (a driver version no machine has).
        let unseen = KernelBuild(computeCapability: (9, 0), driverVersion: 1)
        if let path = unseen.cachePath {
            #expect(!unseen.cubinCached)
            #expect(creat(path, 0o600) >= 0)
            defer { unlink(path) }
            #expect(unseen.cubinCached)
        }
    }

    /// A cache miss compiles through NVRTC, for the device's architecture or,
    /// where NVRTC cannot target it, the nearest of the same major version.
    @Test(
        "a kernel build compiles through NVRTC when asked, falling back within the major version",
        .enabled(if: UserOperationTests.nvrtcLoaded, "NVRTC 13 (.build-ci-venv, as CI installs it) is needed"))
    func aKernelBuildCompilesWhenAsked() throws {
        let output = try KernelBuild(computeCapability: (9, 0), driverVersion: 13000, program: MeasurementKernels.program).compile()
        #expect(output.cubin.starts(with: [0x7F, 0x45, 0x4C, 0x46]) && output.log.isEmpty, "\(output.log)")
        // sm_99 exists nowhere: NVRTC compiles for its newest 9.x, and the build keeps the device's own name.
        let future = KernelBuild(computeCapability: (9, 9), driverVersion: 13000, program: MeasurementKernels.program)
        #expect(future.architecture == "sm_99")
        #expect(try future.compile().cubin.starts(with: [0x7F, 0x45, 0x4C, 0x46]))
        // No 2.x at all: the error names NVRTC and the architecture.
        let error = #expect(throws: PipelineError.self) { _ = try KernelBuild(computeCapability: (2, 0), driverVersion: 13000).compile() }
        #expect(error?.message.contains("cannot compile for sm_20") == true, "\(String(describing: error))")
    }
}
