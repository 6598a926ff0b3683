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

    static func of(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, seed: UInt64 = 0x243F_6A88_85A3_08D3) -> UInt64 {
        var h = seed
        for part in [a, b] {
            var i = 0
            let n = part.count
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
            h = mix(h, tail ^ (UInt64(n) << 56))
        }
        h ^= h >> 31
        h = h &* 0xBF58_476D_1CE4_E5B9
        return h ^ (h >> 32)
    }
}
