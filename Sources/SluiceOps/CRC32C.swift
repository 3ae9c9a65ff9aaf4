import CSluiceCRC

/// CRC-32C (Castagnoli): polynomial 0x1EDC6F41, bit-reflected, initial and
/// final XOR 0xFFFFFFFF, as in iSCSI, ext4, SCTP and the checksums cloud
/// object stores publish.
///
/// Values passed in and returned are finished checksums, as zlib's `crc32`
/// does: `update(checksum(a), b) == checksum(a + b)`, and 0 is the checksum
/// of nothing. Three implementations give the same values:
///
/// - `updateHardware`: the CPU's CRC-32C instruction (SSE4.2 or Arm CRC),
///   three independent streams at a time (`CSluiceCRC`); nil where absent;
/// - `updateSoftware`: table-driven, eight bytes a step (slicing-by-8);
/// - `updateBitwise`: one bit a step, straight from the definition; the
///   reference the others are tested against.
///
/// `update` picks the hardware path when the CPU has one. `combine` joins the
/// checksums of two adjacent pieces without their bytes, so chunks can be
/// checksummed in any order and in parallel.
public enum CRC32C {
    /// 0x1EDC6F41 bit-reflected.
    public static let reflectedPolynomial: UInt32 = 0x82F6_3B78
    /// The checksum of the ASCII bytes "123456789".
    public static let checkValue: UInt32 = 0xE306_9283

    /// Whether the CPU's CRC-32C instruction is used.
    public static let hardwareAvailable: Bool = sluice_crc32c_hardware_available() != 0

    /// What `update` runs on this machine: "sse4.2", "armv8-crc" or "software".
    public static var implementation: String {
        hardwareAvailable ? String(cString: sluice_crc32c_hardware_name()) : "software"
    }

    // MARK: Checksums

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(0, bytes) }

    /// The checksum of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { update(0, $0) }
    }

    /// The checksum of the bytes `crc` covers followed by `bytes`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        if hardwareAvailable, let base = bytes.baseAddress {
            return ~sluice_crc32c_hardware(~crc, base, bytes.count)
        }
        return updateSoftware(crc, bytes)
    }

    /// The hardware path, or nil when this CPU has no CRC-32C instruction.
    /// `serial` runs one dependent chain instead of three streams (for comparison).
    public static func updateHardware(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer, serial: Bool = false) -> UInt32? {
        guard hardwareAvailable else { return nil }
        guard let base = bytes.baseAddress else { return crc }
        return ~(serial ? sluice_crc32c_hardware_serial(~crc, base, bytes.count)
                        : sluice_crc32c_hardware(~crc, base, bytes.count))
    }

    /// Slicing-by-8: eight table lookups fold eight bytes per step.
    public static func updateSoftware(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        let n = bytes.count
        guard n > 0, let base = bytes.baseAddress else { return crc }
        sliceTables.withUnsafeBufferPointer { t in
            var i = 0
            while i + 8 <= n {
                let v = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let lo = c ^ UInt32(truncatingIfNeeded: v)
                let hi = UInt32(truncatingIfNeeded: v >> 32)
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = (c >> 8) ^ t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)]
                i += 1
            }
        }
        return ~c
    }

    /// One bit at a time, from the definition. Slow; the reference.
    public static func updateBitwise(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        for byte in bytes {
            c ^= UInt32(byte)
            for _ in 0..<8 {
                c = c & 1 != 0 ? (c >> 1) ^ reflectedPolynomial : c >> 1
            }
        }
        return ~c
    }

    /// `sliceTables[k * 256 + v]`: the register after byte `v` followed by `k` zero bytes.
    static let sliceTables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for v in 0..<256 {
            var c = UInt32(v)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ reflectedPolynomial : c >> 1 }
            t[v] = c
        }
        for k in 1..<8 {
            for v in 0..<256 {
                let previous = t[(k - 1) * 256 + v]
                t[k * 256 + v] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()

    // MARK: Combining

    /// The checksum of A‖B from the checksum of A, that of B, and B's length.
    ///
    /// Appending B to A multiplies A's register by x^(8·|B|) modulo P and adds
    /// B's own; the initial and final inversions cancel out, so
    /// `combine(a, b, n) = a · x^(8n) mod P ⊕ b` on finished checksums.
    /// O(log n) multiplications.
    public static func combine(_ crcA: UInt32, _ crcB: UInt32, lengthB: UInt64) -> UInt32 {
        multiply(crcA, xToThe8n(lengthB)) ^ crcB
    }

    /// x^(8n) mod P (reflected): the factor that appending `n` bytes applies
    /// to a register. Cache it when many pieces share a length.
    public static func xToThe8n(_ n: UInt64) -> UInt32 {
        var result: UInt32 = 0x8000_0000  // 1
        var bits = n
        var k = 3  // x^(8n) = ∏ over set bits j of n of x^(2^(j+3))
        while bits != 0 {
            if bits & 1 != 0 { result = multiply(result, powersOfX[k]) }
            bits >>= 1
            k += 1
        }
        return result
    }

    /// `crcA` combined with the checksum of `lengthB` bytes whose factor is
    /// `factor` (= `xToThe8n(lengthB)`).
    public static func combine(_ crcA: UInt32, _ crcB: UInt32, factor: UInt32) -> UInt32 {
        multiply(crcA, factor) ^ crcB
    }

    /// a · b mod P in the reflected representation (bit 31 is x^0).
    static func multiply(_ a: UInt32, _ b: UInt32) -> UInt32 {
        var product: UInt32 = 0
        var b = b
        var m: UInt32 = 0x8000_0000
        while m != 0 {
            if a & m != 0 { product ^= b }
            b = b & 1 != 0 ? (b >> 1) ^ reflectedPolynomial : b >> 1
            m >>= 1
        }
        return product
    }

    /// `powersOfX[k]` = x^(2^k) mod P, for every bit of a 64-bit byte count times 8.
    static let powersOfX: [UInt32] = {
        var p: [UInt32] = [0x4000_0000]  // x^1
        for _ in 1..<67 { p.append(multiply(p[p.count - 1], p[p.count - 1])) }
        return p
    }()
}
