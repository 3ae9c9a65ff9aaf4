import SluiceOps

/// The scan tables of the last few literal sets a session was asked for:
/// programs and scripts tend to scan for the same set again and again, and
/// building a table of 10,000 literals takes milliseconds that a small
/// request should not pay each time. The table only depends on the set.
final class RecentTables {
    /// Sets kept at most; the least recently used goes first.
    static let capacity = 8
    private var entries: [(set: PatternSet, table: ScanTable)] = []

    /// `set`'s table, built on first use.
    func table(for set: PatternSet) -> ScanTable {
        if let i = entries.firstIndex(where: { $0.set == set }) {
            let hit = entries.remove(at: i)
            entries.append(hit)
            return hit.table
        }
        let table = ScanTable(set)
        entries.append((set, table))
        if entries.count > RecentTables.capacity { entries.removeFirst() }
        return table
    }
}
