import Foundation

/// The top-level members of a JSON object payload, found without parsing the values: each member's
/// value is kept as its raw bytes. Replay reads a recorded value this way (every other field through the
/// payload's type in the event schema), so the value stays byte-for-byte the canonical JSON it was
/// hashed as, and its digest needs no re-encoding.
struct PayloadFields {
    let bytes: [UInt8]
    private(set) var members: [String: Range<Int>] = [:]

    /// Nil when `data` is not a JSON object.
    init?(_ data: Data) {
        bytes = Array(data)
        var i = 0
        func skipSpace() { while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 } }
        func skipString() -> Bool {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return false }
            i += 1
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "\\"): i += 2
                case UInt8(ascii: "\""): i += 1; return true
                default: i += 1
                }
            }
            return false
        }
        func skipValue() -> Bool {
            guard i < bytes.count else { return false }
            switch bytes[i] {
            case UInt8(ascii: "\""): return skipString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while i < bytes.count {
                    switch bytes[i] {
                    case UInt8(ascii: "\""): if !skipString() { return false }; continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            default:
                while i < bytes.count, bytes[i] != UInt8(ascii: ","), bytes[i] != UInt8(ascii: "}") { i += 1 }
                while i > 0, bytes[i - 1] == 0x20 || bytes[i - 1] == 0x0A { i -= 1 }
                return true
            }
        }
        skipSpace()
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return }
        while i < bytes.count {
            skipSpace()
            let keyStart = i
            guard skipString() else { return nil }
            let keyBytes = bytes[(keyStart + 1)..<(i - 1)]
            let key = keyBytes.contains(UInt8(ascii: "\\"))
                ? ((try? JSONSerialization.jsonObject(with: Data(bytes[keyStart..<i]), options: .fragmentsAllowed)) as? String ?? "")
                : String(decoding: keyBytes, as: UTF8.self)
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            let valueStart = i
            guard skipValue() else { return nil }
            members[key] = valueStart..<i
            skipSpace()
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: "}") { return }
            guard bytes[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
        return nil
    }

    /// The raw JSON of a member (nil when absent or `null`).
    func raw(_ key: String) -> Data? {
        guard let r = members[key] else { return nil }
        let slice = bytes[r]
        if slice.elementsEqual("null".utf8) { return nil }
        return Data(slice)
    }
}
