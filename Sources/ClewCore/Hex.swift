extension Sequence where Element == UInt8 {
    /// Lowercase hexadecimal (digests, ids).
    public var hex: String {
        var out: [UInt8] = []
        out.reserveCapacity(underestimatedCount * 2)
        for b in self {
            out.append(Hex.digit(b >> 4))
            out.append(Hex.digit(b & 15))
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Hexadecimal digits.
public enum Hex {
    /// The lowercase hex digit (ASCII) of a nibble, 0...15.
    @inline(__always) public static func digit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x57 + nibble }
}
