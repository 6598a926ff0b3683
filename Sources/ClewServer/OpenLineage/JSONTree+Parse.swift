import ClewProjections
import Foundation

extension JSONTree {
    /// Parses JSON text (Foundation's parser, which is faster than decoding through Codable); numbers
    /// become doubles, `true`/`false` booleans.
    static func parse(_ data: Data) throws -> JSONTree {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw SchemaViolation(path: "$", message: "is not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"))")
        }
        return from(object)
    }

    static func from(_ any: Any) -> JSONTree {
        switch any {
        case let s as String: return .string(s)
        case let n as NSNumber:
            // Foundation parses true/false into boolean NSNumbers, whose type code is "c" (numbers never are).
            if String(cString: n.objCType) == "c" { return .bool(n.boolValue) }
            return .number(n.doubleValue)
        case let a as [Any]: return .array(a.map(from))
        case let o as [String: Any]: return .object(o.mapValues(from))
        default: return .null
        }
    }

    subscript(key: String) -> JSONTree? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var array: [JSONTree] {
        if case .array(let a) = self { return a }
        return []
    }

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
