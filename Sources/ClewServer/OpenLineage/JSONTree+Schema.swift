import ClewModel
import Foundation

/// What the OpenLineage validator asks of a value: its JSON Schema type, and how to name it in a message.
extension JSONTree {
    func isType(_ type: String) -> Bool {
        switch (type, self) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null), ("number", .number): return true
        case ("integer", .number(let d)): return d.rounded() == d
        default: return false
        }
    }

    var typeName: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .bool: return "a boolean"
        case .null: return "null"
        case .number: return "a number"
        }
    }

    /// Compact JSON for messages (cut at 80 characters).
    var compact: String {
        let t = text
        return t.count > 80 ? String(t.prefix(77)) + "..." : t
    }
}
