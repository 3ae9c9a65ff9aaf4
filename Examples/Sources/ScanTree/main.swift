import Sluice

// scan-tree DIR LITERAL...: prints PATH:OFFSET:LITERAL for every match, as `sluice scan` does.
let literals = CommandLine.arguments.dropFirst(2).map { Array($0.utf8) }
let session = try await Session()
for try await piece in session.scan([FilePath(CommandLine.arguments[1])], literals: literals) {
    for match in piece.matches {
        print("\(piece.path):\(match.offset):\(String(decoding: literals[match.pattern], as: UTF8.self))")
    }
}
await session.close()
