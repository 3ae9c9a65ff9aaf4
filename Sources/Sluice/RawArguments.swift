#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The command line as bytes, before ArgumentParser sees it.
///
/// Swift's `CommandLine.arguments` repairs invalid UTF-8 (0xFF becomes
/// EF BF BD), and ArgumentParser refuses an option value that starts with a
/// dash. A literal is bytes and may start with a dash (grep takes
/// `-e -foo`), so the words of `scan` are rewritten first: every value of
/// `-e`/`--regexp` and `-f`/`--file` becomes one `--regexp=VALUE` or
/// `--file=VALUE` word (an empty one: the option and an empty word), and
/// its raw bytes are kept here in order, for the command to use in place of
/// the repaired strings.
///
/// Other words that are not valid UTF-8 (file names) reach ArgumentParser
/// with each invalid byte B spelled as the private-use scalar U+10FF00 + B,
/// so that no two of them read alike, and `bytes(of:)` gives a parsed
/// value's raw bytes back.
public struct RawArguments: Sendable, Equatable {
    /// The words to parse (without the program name), values rewritten.
    public var words: [String]
    /// The raw bytes of each `-e`/`--regexp` value, in command-line order.
    public var literals: [[UInt8]]
    /// The raw bytes of each `-f`/`--file` value, in command-line order.
    public var patternFiles: [[UInt8]]
    /// The raw bytes of each word that is not valid UTF-8 (and not a
    /// `-e`/`-f` value), by the word ArgumentParser gets for it.
    public var escapedWords: [String: [UInt8]]

    /// Words as parsed, with the raw bytes kept aside.
    public init(words: [String], literals: [[UInt8]] = [], patternFiles: [[UInt8]] = [], escapedWords: [String: [UInt8]] = [:]) {
        self.words = words
        self.literals = literals
        self.patternFiles = patternFiles
        self.escapedWords = escapedWords
    }

    /// The raw bytes of a word ArgumentParser parsed from this command line
    /// (a path argument): those it was made from, or its own UTF-8 bytes
    /// when it was valid UTF-8 (or did not come from this command line).
    public func bytes(of word: String) -> [UInt8] {
        escapedWords[word] ?? Array(word.utf8)
    }

    /// Short flags of `scan` that take no value and may come before `e` or
    /// `f` in one word (`-ie foo`), as getopt allows.
    static let scanFlagLetters: Set<UInt8> = Set("iclnvqhZ".utf8)

    /// Rewrites `argv` (without the program name). Only `scan` takes
    /// literals; other commands' words pass through unchanged. Forms:
    /// `-e V`, `-eV`, `-e=V` (ArgumentParser's spelling, kept: V),
    /// `--regexp V`, `--regexp=V`, and `-e` after other short flags
    /// (`-ie V`); the same for `-f`/`--file`. The word after `-e` is its value
    /// whatever it looks like; after `--` nothing is rewritten. A lone `-e` at
    /// the end is left for ArgumentParser to report.
    public static func prepare(_ argv: [[UInt8]]) -> RawArguments {
        var result = RawArguments(words: [])
        guard argv.first == Array("scan".utf8) else {
            result.words = argv.map { result.escape($0) }
            return result
        }
        var i = 0
        var optionsEnded = false
        while i < argv.count {
            let word = argv[i]
            i += 1
            if optionsEnded || word.first != UInt8(ascii: "-") || word.count < 2 {
                result.words.append(result.escape(word))
                continue
            }
            if word == Array("--".utf8) {
                optionsEnded = true
                result.words.append("--")
                continue
            }
            guard let (flags, kind, attached) = split(word) else {
                result.words.append(result.escape(word))
                continue
            }
            let value: [UInt8]
            if let attached {
                value = attached
            } else if i < argv.count {
                value = argv[i]
                i += 1
            } else {
                result.words.append(text(word))  // no value: ArgumentParser says so
                continue
            }
            if !flags.isEmpty { result.words.append("-" + text(flags)) }
            let name: String
            switch kind {
            case .literal:
                result.literals.append(value)
                name = "--regexp"
            case .patternFile:
                result.patternFiles.append(value)
                name = "--file"
            }
            // ArgumentParser reads `--regexp=` with nothing after it as
            // wanting the next word; an empty value goes as its own word
            // (which cannot be taken for an option).
            result.words += value.isEmpty ? [name, ""] : [name + "=" + text(value)]
        }
        return result
    }

    private enum ValueKind { case literal, patternFile }

    /// For a word that names `-e`/`-f` (alone, with flags before it, or with
    /// the value attached): the flags before it, which one, and the attached
    /// value if any; nil for any other word.
    private static func split(_ word: [UInt8]) -> (flags: [UInt8], kind: ValueKind, attached: [UInt8]?)? {
        let dash = UInt8(ascii: "-")
        if word.count > 2, word[1] == dash {
            for (name, kind) in [("--regexp", ValueKind.literal), ("--file", .patternFile)] {
                let n = Array(name.utf8)
                if word == n { return ([], kind, nil) }
                if word.starts(with: n + [UInt8(ascii: "=")]) { return ([], kind, Array(word[(n.count + 1)...])) }
            }
            return nil
        }
        var flags: [UInt8] = []
        var k = 1
        while k < word.count {
            let letter = word[k]
            k += 1
            let kind: ValueKind
            switch letter {
            case UInt8(ascii: "e"): kind = .literal
            case UInt8(ascii: "f"): kind = .patternFile
            case _ where scanFlagLetters.contains(letter):
                flags.append(letter)
                continue
            default: return nil
            }
            guard k < word.count else { return (flags, kind, nil) }
            // `-e=V` meant V before this rewrite (ArgumentParser's spelling); it still does.
            let start = word[k] == UInt8(ascii: "=") ? k + 1 : k
            return (flags, kind, Array(word[start...]))
        }
        return nil
    }

    /// A word as ArgumentParser gets it (invalid UTF-8 repaired; the raw
    /// bytes of values are kept aside).
    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// The word ArgumentParser gets for `bytes`: the same text when it is
    /// UTF-8; else each invalid byte B becomes U+10FF00 + B (distinct words
    /// stay distinct) and the raw bytes are recorded for `bytes(of:)`.
    mutating func escape(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var scalars = String.UnicodeScalarView()
        var parser = Unicode.UTF8.ForwardParser()
        var input = bytes.makeIterator()
        var at = 0
        parsing: while true {
            switch parser.parseScalar(from: &input) {
            case .valid(let encoded):
                scalars.append(Unicode.UTF8.decode(encoded))
                at += encoded.count
            case .error(let length):
                for b in bytes[at..<(at + length)] { scalars.append(Unicode.Scalar(0x10FF00 + UInt32(b))!) }
                at += length
            case .emptyInput:
                break parsing
            }
        }
        let word = String(scalars)
        escapedWords[word] = bytes
        return word
    }

    /// The raw words of this process's command line, without the program name.
    public static func processArguments() -> [[UInt8]] {
        let argc = Int(CommandLine.argc)
        return (1..<max(argc, 1)).map { i in
            guard let p = CommandLine.unsafeArgv[i] else { return [] }
            return Array(UnsafeBufferPointer(start: p, count: strlen(p))).map { UInt8(bitPattern: $0) }
        }
    }
}
