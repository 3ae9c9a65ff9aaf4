/// Which tenant owns each chunk buffer and each result area: the region
/// table the workers check every slot against, so that one tenant's slots can
/// never read another tenant's bytes or write another tenant's results.
///
/// Layout (32-bit words, in memory the workers read; control words 12–13
/// point at it):
/// ```
/// [0] magic "TNT1"   [1] tenant count   [2] chunk bytes   [3] chunk count
/// [4] result words per area   [5] area count   [6] [7] zero
/// [8 ..< 8 + chunkCount]                      owner of chunk buffer i
/// [8 + chunkCount ..< 8 + chunkCount + areas] owner of result area j
/// ```
/// An owner is a tenant number, or `unowned`. The host changes an owner only
/// while no slot using that buffer or area is published or claimed, and
/// before publishing the slot that uses it (the publish's release orders it).
public enum TenantTable {
    /// Word 0 of a tenant table: "TNT1" in little-endian ASCII.
    public static let magic: UInt32 = 0x3154_4E54
    /// Words before the owner entries.
    public static let headerWords = 8
    /// The owner of a buffer or area that no tenant may use.
    public static let unowned: UInt32 = 0xFFFF_FFFF

    /// Words of a table for `chunkCount` chunk buffers and `areaCount` result areas.
    public static func wordCount(chunkCount: Int, areaCount: Int) -> Int { headerWords + chunkCount + areaCount }

    /// A table with every buffer and area unowned.
    public static func make(
        tenants: Int, chunkBytes: Int, chunkCount: Int, resultWordsPerArea: Int, areaCount: Int
    ) throws(PipelineError) -> [UInt32] {
        guard tenants >= 1, tenants < Int(unowned), chunkBytes > 0, chunkBytes <= Int(UInt32.max),
              chunkCount >= 0, resultWordsPerArea > 0, areaCount >= 0
        else {
            throw .invalidConfiguration(
                "tenant table for \(tenants) tenants, \(chunkCount) chunks of \(chunkBytes) bytes, \(areaCount) areas of \(resultWordsPerArea) words")
        }
        var w = [UInt32](repeating: unowned, count: wordCount(chunkCount: chunkCount, areaCount: areaCount))
        w[0] = magic
        w[1] = UInt32(tenants)
        w[2] = UInt32(chunkBytes)
        w[3] = UInt32(chunkCount)
        w[4] = UInt32(resultWordsPerArea)
        w[5] = UInt32(areaCount)
        w[6] = 0
        w[7] = 0
        return w
    }

    /// Whether `payload`'s tenant owns every chunk buffer its byte range
    /// touches and every result area its result range touches. `table` must
    /// be a table `make` built (the backend validates it on install).
    /// Ranges are assumed already bounds-checked against the regions.
    public static func permits(_ p: SlotPayload, table: UnsafeBufferPointer<UInt32>) -> Bool {
        let tenants = table[1], chunkBytes = UInt64(table[2]), chunks = Int(table[3])
        let areaWords = UInt64(table[4]), areas = Int(table[5])
        guard p.tenant < tenants else { return false }
        if p.length > 0 {
            let first = p.bufferOffset / chunkBytes
            let last = (p.bufferOffset + UInt64(p.length) - 1) / chunkBytes
            guard last < UInt64(chunks) else { return false }
            for c in first...last where table[headerWords + Int(c)] != p.tenant { return false }
        }
        if p.resultCapacity > 0 {
            let first = UInt64(p.resultOffset) / areaWords
            let last = (UInt64(p.resultOffset) + UInt64(p.resultCapacity) - 1) / areaWords
            guard last < UInt64(areas) else { return false }
            for a in first...last where table[headerWords + chunks + Int(a)] != p.tenant { return false }
        }
        return true
    }

    /// Checks a table's header against its length; throws `.malformed` otherwise.
    public static func validate(_ table: UnsafeBufferPointer<UInt32>) throws(PipelineError) {
        guard table.count >= headerWords, table[0] == magic else {
            throw .malformed(what: "tenant table", detail: "missing header or wrong magic")
        }
        guard table[1] >= 1, table[2] > 0, table[4] > 0,
              table.count == wordCount(chunkCount: Int(table[3]), areaCount: Int(table[5]))
        else {
            throw .malformed(what: "tenant table", detail: "header does not match its \(table.count) words")
        }
    }
}
