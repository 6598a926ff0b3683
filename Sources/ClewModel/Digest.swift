public import Foundation
import Crypto

/// The lowercase hex digit of a nibble (0...15).
@inline(__always) func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x57 + nibble }

extension Sequence where Element == UInt8 {
    /// Lowercase hexadecimal.
    public var hex: String {
        var out: [UInt8] = []
        out.reserveCapacity(underestimatedCount * 2)
        for b in self {
            out.append(hexDigit(b >> 4))
            out.append(hexDigit(b & 15))
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-256 content digests as lowercase hex, the identifiers of values, chunks and definitions.
public enum ContentDigest {
    /// SHA-256 of `bytes`, 64 hex digits.
    public static func sha256<D: DataProtocol>(_ bytes: D) -> String { Array(SHA256.hash(data: bytes)).hex }

    /// SHA-256 of a file's bytes, read in 1 MiB pieces; nil when it cannot be read.
    public static func sha256(file url: URL) -> String? {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let piece: Data?
            do { piece = try handle.read(upToCount: 1 << 20) } catch { return nil }
            guard let piece, !piece.isEmpty else { break }
            hasher.update(data: piece)
        }
        return Array(hasher.finalize()).hex
    }
}
