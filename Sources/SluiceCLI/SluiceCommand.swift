import ArgumentParser

/// The `sluice` tool: a thin shell over the Sluice library.
struct SluiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Move file bytes into a persistent GPU (or CPU) megakernel and do work on them there.",
        discussion: """
            Files are read with io_uring into buffers the workers read in place, and processed \
            in chunks through a ring of slots. `--backend auto` uses CUDA when a usable GPU is \
            found (and its kernel is cached or NVRTC loads to compile it), else the CPU \
            backend, and says which one runs on stderr with --verbose.
            """,
        subcommands: [Scan.self, Count.self, Doctor.self, Hash.self, Serve.self, Selftest.self, Soak.self, Bench.self])
}
