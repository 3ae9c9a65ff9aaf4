#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Sluice

// swift-argument-parser exits 64 on usage errors; Sluice follows grep instead:
// 0 success (or a match), 1 no match, 2 any error, usage errors included;
// 128 plus the signal when SIGINT (130) or SIGTERM (143) stopped the run;
// 141 when standard output was a closed pipe.
Interrupt.install()
HostMemoryTuning.returnLargeBuffersEagerly()
if let value = getenv("SLUICE_TRACE_PHASES"), value.pointee != 0 {
    PhaseTrace.enable()
    PhaseTrace.mark("main")
    atexit {
        PhaseTrace.mark("exit")
        for line in PhaseTrace.report() { printError(line) }
    }
}

/// This process's command line as `RawArguments.prepare` rewrote it: the
/// words parsed, and the raw bytes of `scan`'s `-e` and `-f` values.
enum CommandLineBytes {
    static let intake = RawArguments.prepare(RawArguments.processArguments())
}

/// Ends the process for a signal that asked the run to stop: 128 plus its
/// number, as a shell reports a process the signal killed.
func exitIfSignalled() {
    if let signal = Interrupt.signal { exit(128 + signal) }
}

do {
    var command = try SluiceCommand.parseAsRoot(CommandLineBytes.intake.words)
    try command.run()
    StandardOutput.exitIfFailed()
    exitIfSignalled()
} catch let code as ExitCode {
    StandardOutput.exitIfFailed()
    exitIfSignalled()
    exit(code.rawValue)
} catch let error as PipelineError {
    // A failed write stopped the run (as an interrupt): report the write.
    StandardOutput.exitIfFailed()
    printError("sluice: \(error.message)\nhint: \(error.hint)")
    if case .interrupted = error { exit(128 + (Interrupt.signal ?? SIGINT)) }
    exit(2)
} catch let error as SluiceError {
    // From a server (`--server`): its words, and the hint a local run gives.
    StandardOutput.exitIfFailed()
    printError("sluice: \(error.message)\nhint: \(error.hint)")
    if case .interrupted? = error.underlying { exit(128 + (Interrupt.signal ?? SIGINT)) }
    exit(2)
} catch {
    StandardOutput.exitIfFailed()
    let exitCode = SluiceCommand.exitCode(for: error)
    let message = SluiceCommand.fullMessage(for: error)
    if exitCode == .success || exitCode.rawValue == 0 {
        // --help and the like: their text is output like any other, checked.
        var out = StandardOutput()
        if !message.isEmpty { out.line(message) }
        out.flush()
        StandardOutput.exitIfFailed()
        exit(0)
    }
    if !message.isEmpty { printError(message) }
    exit(2)
}
