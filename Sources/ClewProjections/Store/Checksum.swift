/// A fast 64-bit checksum over the key and value of every view record, checked on every read, so a flipped
/// byte in a views file is found instead of answered from. Not cryptographic: views are caches of a log
/// that is itself hash-chained; this only has to catch accidents (bit rot, torn or stray writes).
enum Checksum {
    static let size = 8

    @inline(__always)
    private static func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
        var x = (h ^ w) &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 29
        return x
    }

    /// The checksum of `a` then `b` (a record's key and value). Parts of 32 bytes or more are read in
    /// four independent lanes of 8 bytes (a group of entries is ~1 KiB, and one lane's chain of
    /// multiplies ran at a quarter of the speed), then the rest 8 bytes at a time.
    static func of(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, seed: UInt64 = 0x243F_6A88_85A3_08D3) -> UInt64 {
        var h = absorb(seed, a)
        h = absorb(h, b)
        h ^= h >> 31
        h = h &* 0xBF58_476D_1CE4_E5B9
        return h ^ (h >> 32)
    }

    @inline(__always)
    private static func absorb(_ seed: UInt64, _ part: UnsafeRawBufferPointer) -> UInt64 {
        var h = seed
        var i = 0
        let n = part.count
        if n >= 32 {
            var l0 = h, l1 = h ^ 0x6A09_E667_F3BC_C908, l2 = h ^ 0xBB67_AE85_84CA_A73B, l3 = h ^ 0x3C6E_F372_FE94_F82B
            while i + 32 <= n {
                l0 = mix(l0, part.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                l1 = mix(l1, part.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self))
                l2 = mix(l2, part.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self))
                l3 = mix(l3, part.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self))
                i += 32
            }
            h = mix(mix(mix(mix(h, l0), l1), l2), l3)
        }
        while i + 8 <= n {
            h = mix(h, part.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(part[i]) << shift
            shift += 8
            i += 1
        }
        return mix(h, tail ^ (UInt64(n) << 56))
    }
}
