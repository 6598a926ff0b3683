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

    /// The value of a hex digit (either case), or nil.
    @inline(__always) public static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The bytes `text` spells in hex (two digits a byte), or nil when it is not hex of even length.
    public static func bytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let hi = nibble(digits[i]), let lo = nibble(digits[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }

    /// The 32 bytes of a SHA-256 written as exactly 64 lowercase hex digits, or nil for any other text
    /// (so the bytes spell the text back exactly).
    public static func sha256Bytes(lowercase text: String) -> [UInt8]? {
        let u = text.utf8
        guard u.count == 64, u.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return bytes(text)
    }
}
