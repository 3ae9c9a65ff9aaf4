/// A file path as the kernel takes it: bytes, spelled exactly as given.
///
/// A Linux file name may hold any byte but NUL (and `/` between names), so
/// a path need not be UTF-8. A `String` repairs invalid UTF-8 (0xFF becomes
/// U+FFFD), after which the file cannot be opened by that name; this keeps
/// the bytes, from the command line or readdir(3) to open(2) and to output.
///
/// Unlike swift-system's `FilePath`, nothing is normalized: `dir//x` and
/// `file/` stay as spelled, so output shows a path as the user or the walk
/// wrote it (as grep does) and open(2) sees what the user typed (`file/` is
/// ENOTDIR, not `file`).
public struct RawPath: Hashable, Sendable, Comparable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The path's bytes, without a terminating NUL (none holds a NUL).
    public let bytes: [UInt8]

    /// The path of these bytes.
    public init(bytes: some Sequence<UInt8>) {
        self.bytes = Array(bytes)
    }

    /// The path spelled by `string`'s UTF-8 bytes.
    public init(_ string: String) {
        bytes = Array(string.utf8)
    }

    /// The path spelled by a literal's UTF-8 bytes.
    public init(stringLiteral value: String) {
        self.init(value)
    }

    /// The path as text, for messages: invalid UTF-8 shows as U+FFFD. Not
    /// for opening the file, nor for output that must name it exactly.
    public var description: String { String(decoding: bytes, as: UTF8.self) }

    /// The path as a `String`, or nil when its bytes are not valid UTF-8.
    public var string: String? { String(validating: bytes, as: UTF8.self) }

    /// Whether the path is empty.
    public var isEmpty: Bool { bytes.isEmpty }

    /// Whether the last byte is a `/`.
    public var endsWithSlash: Bool { bytes.last == UInt8(ascii: "/") }

    /// The path of the entry `name` in this directory: `self/name`, with no
    /// second slash when this already ends with one (`dir/` + `x` is `dir/x`).
    public func appending(name: some Collection<UInt8>) -> RawPath {
        var joined = bytes
        joined.reserveCapacity(bytes.count + name.count + 1)
        if !endsWithSlash { joined.append(UInt8(ascii: "/")) }
        joined.append(contentsOf: name)
        return RawPath(bytes: joined)
    }

    /// Calls `body` with the path as a NUL-terminated C string (for open(2),
    /// stat(2) and the like), valid only during the call.
    public func withCString<R, E: Error>(_ body: (UnsafePointer<CChar>) throws(E) -> R) throws(E) -> R {
        var terminated = bytes
        terminated.append(0)
        return try terminated.withUnsafeBufferPointer { (buffer) throws(E) -> R in
            try buffer.withMemoryRebound(to: CChar.self) { (chars) throws(E) -> R in try body(chars.baseAddress!) }
        }
    }

    /// Byte order: the order of `scan`'s output (a prefix sorts first).
    /// Sorting many paths goes through `PathOrder`, which compares with memcmp.
    public static func < (a: RawPath, b: RawPath) -> Bool {
        a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}
