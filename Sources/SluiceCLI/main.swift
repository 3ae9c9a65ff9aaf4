#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Sluice
import SluiceCore

// swift-argument-parser exits 64 on usage errors; Sluice follows grep instead:
// 0 success (or a match), 1 no match, 2 any error, usage errors included.
Interrupt.install()
if let value = getenv("SLUICE_TRACE_PHASES"), value.pointee != 0 {
    PhaseTrace.enable()
    PhaseTrace.mark("main")
    atexit {
        PhaseTrace.mark("exit")
        for line in PhaseTrace.report() { printError(line) }
    }
}
do {
    var command = try SluiceCommand.parseAsRoot()
    try command.run()
} catch let code as ExitCode {
    exit(code.rawValue)
} catch let error as PipelineError {
    printError("sluice: \(error.message)\nhint: \(error.hint)")
    if case .interrupted = error { exit(130) }
    exit(2)
} catch {
    let exitCode = SluiceCommand.exitCode(for: error)
    if exitCode == .success || exitCode.rawValue == 0 {
        SluiceCommand.exit(withError: error)
    }
    let message = SluiceCommand.fullMessage(for: error)
    if !message.isEmpty { printError(message) }
    exit(2)
}
