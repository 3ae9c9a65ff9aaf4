#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser

/// The paths a pipeline command reads: those given, or `-` (standard
/// input) when none is given and standard input is not a terminal, as grep
/// and wc do; a terminal there with no path is a usage error naming `what`.
func inputPaths(_ given: [String], what: String) throws -> [String] {
    guard given.isEmpty else { return given }
    guard isatty(0) != 1 else {
        throw ValidationError("give at least one file or directory to \(what) (- or a pipe reads standard input)")
    }
    return ["-"]
}
