#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Sluice

/// The paths a pipeline command reads: those given, or `-` (standard
/// input) when none is given and standard input is not a terminal, as grep
/// and wc do; a terminal there with no path is a usage error naming `what`.
func inputPaths(_ given: [String], what: String) throws -> [RawPath] {
    guard given.isEmpty else { return given.map(commandLinePath) }
    guard isatty(0) != 1 else {
        throw ValidationError("give at least one file or directory to \(what) (- or a pipe reads standard input)")
    }
    return ["-"]
}

/// The path a command-line word names: the word's raw bytes, which need not
/// be UTF-8 (ArgumentParser parsed an escaped spelling of them).
func commandLinePath(_ word: String) -> RawPath {
    RawPath(bytes: CommandLineBytes.intake.bytes(of: word))
}
