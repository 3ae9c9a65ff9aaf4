import SluiceCore

// The tests build paths as Strings (from scratch directories); paths in the
// library are `RawPath`s. These spell the conversion and the comparisons.

extension String {
    /// This string's UTF-8 bytes as a path.
    var raw: RawPath { RawPath(self) }
}

extension Array where Element == String {
    /// These strings as paths.
    var raw: [RawPath] { map { RawPath($0) } }
}

func == (a: RawPath, b: String) -> Bool { a == RawPath(b) }
func == (a: String, b: RawPath) -> Bool { RawPath(a) == b }
func != (a: RawPath, b: String) -> Bool { a != RawPath(b) }
func != (a: String, b: RawPath) -> Bool { RawPath(a) != b }
func == (a: [RawPath], b: [String]) -> Bool { a == b.raw }
func == (a: [String], b: [RawPath]) -> Bool { a.raw == b }
func != (a: [RawPath], b: [String]) -> Bool { a != b.raw }
