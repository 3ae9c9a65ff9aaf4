import Testing

@testable import SluiceCore

/// The scan-table directory's layout, written out by hand from docs/protocol.md.
@Suite("Scan-table directory")
struct ScanDirectoryTests {
    /// A directory of `entries` entries with entry `live` at address
    /// 0x1_2345_6780 + live, `words` words long, owned by `owner`.
    static func directory(entries: Int, live: [Int], words: UInt32 = 40, owner: UInt32 = 7) -> [UInt32] {
        var d = [UInt32](repeating: 0, count: entries * 4)
        for i in live {
            d[4 * i] = 0x2345_6780 + UInt32(i)
            d[4 * i + 1] = 1
            d[4 * i + 2] = words
            d[4 * i + 3] = owner
        }
        return d
    }

    @Test("argument1 puts the index in bits 16-31 and keeps the count-only flag")
    func argumentBits() {
        #expect(ScanDirectory.argument1(index: 0, flags: 0) == 0)
        #expect(ScanDirectory.argument1(index: 0, flags: 1) == 1)
        #expect(ScanDirectory.argument1(index: 3, flags: 1) == 0x0003_0001)
        #expect(ScanDirectory.argument1(index: 65535, flags: 0) == 0xFFFF_0000)
        // Bits the opcode does not define are dropped, never passed on.
        #expect(ScanDirectory.argument1(index: 2, flags: 0xFFFF_FFFF) == 0x0002_0001)
        #expect(ScanDirectory.index(of: 0x0005_0001) == 5)
    }

    @Test("lookup decodes the live entry the slot names")
    func liveEntry() {
        let d = Self.directory(entries: 8, live: [0, 5])
        let e = d.withUnsafeBufferPointer { ScanDirectory.lookup(argument1: 0x0005_0001, in: $0) }
        #expect(e == ScanDirectory.Entry(address: 0x1_2345_6785, words: 40, owner: 7))
        #expect(e?.encoded == Array(d[20..<24]))
    }

    @Test(
        "lookup refuses reserved bits, an index past the directory and an empty entry",
        arguments: [0x0000_0002, 0x0000_8000, 0x0008_0000, 0xFFFF_0000, 0x0001_0000] as [UInt32])
    func refused(argument1: UInt32) {
        let d = Self.directory(entries: 8, live: [0, 5])
        #expect(d.withUnsafeBufferPointer { ScanDirectory.lookup(argument1: argument1, in: $0) } == nil)
    }

    @Test("an empty directory refuses every index")
    func emptyDirectory() {
        let d: [UInt32] = []
        #expect(d.withUnsafeBufferPointer { ScanDirectory.lookup(argument1: 0, in: $0) } == nil)
    }

    @Test("a table is usable by its owner, by anyone when shared, and by all with tenant checks off")
    func ownership() {
        let owned = ScanDirectory.Entry(address: 64, words: 40, owner: 3)
        #expect(owned.permits(tenant: 3, checked: true))
        #expect(!owned.permits(tenant: 4, checked: true))
        #expect(owned.permits(tenant: 4, checked: false))
        let shared = ScanDirectory.Entry(address: 64, words: 40, owner: ScanDirectory.anyTenant)
        #expect(shared.permits(tenant: 9, checked: true))
    }
}
