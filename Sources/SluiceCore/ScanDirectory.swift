/// The scan-table directory: the tables a scan slot may pick from, so that
/// slots of several requests (tenants), each with its own literal set, can
/// be in flight in one ring at once.
///
/// Layout (32-bit words, in memory the workers read; control words 10–11
/// give its address and entry count), `entryWords` words per entry:
/// ```
/// [0] table address, low 32 bits   [1] high 32 bits
/// [2] table length in words (0: the entry is empty)
/// [3] owner: the tenant whose slots may use it, or `anyTenant`
/// ```
/// A scan slot names its entry in bits 16–31 of `argument1`
/// (`argument1(index:flags:)`); bits 1–15 are reserved and must be zero.
/// The host writes an entry only while no slot naming it is published or
/// claimed, and before publishing the first slot that names it (the
/// publish's release orders it); a table's memory is never reused for
/// another table while the workers run (docs/protocol.md, "2: scan").
public enum ScanDirectory {
    /// Words per entry.
    public static let entryWords = 4
    /// Entries a backend's directory has unless told otherwise.
    public static let defaultEntries = 64
    /// Largest entry count the slot's 16 index bits can name.
    public static let maxEntries = 1 << 16
    /// Owner word of a table any tenant's slots may use.
    public static let anyTenant: UInt32 = 0xFFFF_FFFF
    /// Bit of `argument1` where the entry index starts.
    public static let indexShift: UInt32 = 16
    /// Bits of `argument1` that are neither flags the scan opcode defines
    /// nor the index: a slot with any of them set faults `badArguments`.
    public static let reservedFlagBits: UInt32 = 0xFFFE

    /// One directory entry as the workers read it.
    public struct Entry: Hashable, Sendable {
        /// Where the table is, in the workers' address space.
        public var address: UInt64
        /// Its length in 32-bit words; 0 for an empty entry.
        public var words: UInt32
        /// The tenant whose slots may use it, or `ScanDirectory.anyTenant`.
        public var owner: UInt32

        /// An entry for a table at `address` of `words` words, usable by `owner`.
        public init(address: UInt64, words: UInt32, owner: UInt32) {
            self.address = address
            self.words = words
            self.owner = owner
        }

        /// The entry's four words.
        public var encoded: [UInt32] { [UInt32(truncatingIfNeeded: address), UInt32(truncatingIfNeeded: address >> 32), words, owner] }

        /// Whether a slot of `tenant` may use the table; with tenant checks
        /// off (`checked` false) every slot may.
        public func permits(tenant: UInt32, checked: Bool) -> Bool {
            !checked || owner == ScanDirectory.anyTenant || owner == tenant
        }
    }

    /// A scan slot's `argument1`: the opcode's flags (`ScanOp.countOnlyFlag`) and the entry index.
    public static func argument1(index: Int, flags: UInt32) -> UInt32 {
        precondition(index >= 0 && index < maxEntries, "scan directory index \(index) outside 0..<\(maxEntries)")
        return flags & ~(reservedFlagBits | 0xFFFF_0000) | UInt32(index) << indexShift
    }

    /// The entry index a scan slot's `argument1` names.
    public static func index(of argument1: UInt32) -> Int { Int(argument1 >> indexShift) }

    /// The entry a scan slot's `argument1` names, as the workers check it;
    /// nil (the slot faults `badArguments`) when reserved bits are set, the
    /// index is past the directory, or the entry is empty.
    public static func lookup(argument1: UInt32, in directory: UnsafeBufferPointer<UInt32>) -> Entry? {
        guard argument1 & reservedFlagBits == 0 else { return nil }
        let first = index(of: argument1) * entryWords
        guard first + entryWords <= directory.count else { return nil }
        let entry = Entry(
            address: UInt64(directory[first]) | UInt64(directory[first + 1]) << 32, words: directory[first + 2],
            owner: directory[first + 3])
        return entry.words == 0 ? nil : entry
    }
}
