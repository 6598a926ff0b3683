import ClewProjections
import Foundation

extension JSONTree {
    nonisolated(unsafe) static let decoder = JSONDecoder()

    /// Parses JSON text; numbers become doubles. (Through JSONDecoder: Foundation's JSONSerialization on
    /// Linux bridges every value through NSDictionary/NSNumber, which profiled at 18% of ingest.)
    static func parse(_ data: Data) throws -> JSONTree {
        do { return try decoder.decode(JSONTree.self, from: data) } catch let DecodingError.dataCorrupted(ctx) {
            throw SchemaViolation(path: "$", message: "is not valid JSON (\(ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription))")
        } catch {
            throw SchemaViolation(path: "$", message: "is not valid JSON (\(error))")
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
