public import ClewModel
import ClewProjections
import Foundation

/// A condition or watch expression over a recorded step, e.g. `task == "clean" && rows < 10`.
///
/// Names: `task`, `attempt`, `step` (the attempt's step number), `pos` (1-based position in the run),
/// `name`, `kind` and `value` (the current step's), and any variable in scope (`rows`, `avg.temp-a`,
/// `input.extract`, `param.batch`); a path into a structured value follows (`output.total`,
/// `kg[0]`). Operators: `== != < <= > >=`, `&& || !`, `contains`, parentheses; literals: numbers,
/// `"strings"`, `true`, `false`, `null`. A name not in scope is null, and any comparison with null but
/// `==`/`!=` is false.
public indirect enum Expression: Sendable, CustomStringConvertible {
    case literal(JSONTree)
    case name(String, path: [PathPart])
    case not(Expression)
    case binary(String, Expression, Expression)

    public enum PathPart: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    /// Parses an expression.
    /// - Throws: ``ReplayError`` naming the position and what was expected.
    public init(parsing text: String) throws {
        var p = ExpressionParser(text)
        self = try p.parseAll()
    }

    public var description: String {
        switch self {
        case .literal(let t): return t.text
        case .name(let n, let path): return n + path.map { if case .key(let k) = $0 { return ".\(k)" } else if case .index(let i) = $0 { return "[\(i)]" }; return "" }.joined()
        case .not(let e): return "!\(e)"
        case .binary(let op, let a, let b): return "(\(a) \(op) \(b))"
        }
    }

    /// Evaluates against `lookup` (a name's value, or nil when not in scope).
    public func evaluate(_ lookup: (String) -> JSONTree?) -> JSONTree {
        switch self {
        case .literal(let t): return t
        case .name(let n, let path):
            // The longest dotted prefix that is in scope is the variable; the rest is a path into it.
            var parts = n.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            var rest: [PathPart] = []
            while !parts.isEmpty {
                if let v = lookup(parts.joined(separator: ".")) { return Self.follow(v, rest + path) }
                rest.insert(.key(parts.removeLast()), at: 0)
            }
            return .null
        case .not(let e): return .bool(!e.evaluate(lookup).truthy)
        case .binary(let op, let a, let b):
            if op == "&&" { return .bool(a.evaluate(lookup).truthy && b.evaluate(lookup).truthy) }
            if op == "||" { return .bool(a.evaluate(lookup).truthy || b.evaluate(lookup).truthy) }
            let x = a.evaluate(lookup)
            let y = b.evaluate(lookup)
            switch op {
            case "==": return .bool(x == y)
            case "!=": return .bool(x != y)
            case "contains":
                switch (x, y) {
                case (.string(let s), .string(let t)): return .bool(s.contains(t))
                case (.array(let list), _): return .bool(list.contains(y))
                case (.object(let o), .string(let k)): return .bool(o[k] != nil)
                default: return .bool(false)
                }
            default:
                let order: Int?
                switch (x, y) {
                case (.number(let l), .number(let r)): order = l < r ? -1 : l > r ? 1 : 0
                case (.string(let l), .string(let r)): order = l < r ? -1 : l > r ? 1 : 0
                default: order = nil
                }
                guard let order else { return .bool(false) }
                switch op {
                case "<": return .bool(order < 0)
                case "<=": return .bool(order <= 0)
                case ">": return .bool(order > 0)
                default: return .bool(order >= 0)
                }
            }
        }
    }

    static func follow(_ v: JSONTree, _ path: [PathPart]) -> JSONTree {
        var v = v
        for part in path {
            switch (part, v) {
            case (.key(let k), .object(let o)): v = o[k] ?? .null
            case (.index(let i), .array(let a)): v = i >= 0 && i < a.count ? a[i] : .null
            case (.key("count"), .array(let a)): v = .number(Double(a.count))
            default: return .null
            }
        }
        return v
    }
}

extension JSONTree {
    /// false, null, 0 and "" are false; everything else is true.
    var truthy: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .number(let n): return n != 0
        case .string(let s): return !s.isEmpty
        default: return true
        }
    }
}

struct ExpressionParser {
    let chars: [Character]
    var i = 0

    init(_ text: String) { chars = Array(text) }

    func fail(_ what: String) -> ReplayError {
        ReplayError("expression: \(what) at column \(i + 1) of '\(String(chars))'")
    }

    mutating func space() { while i < chars.count, chars[i].isWhitespace { i += 1 } }

    mutating func eat(_ s: String) -> Bool {
        space()
        let c = Array(s)
        guard i + c.count <= chars.count, Array(chars[i..<(i + c.count)]) == c else { return false }
        if s.first!.isLetter, i + c.count < chars.count, chars[i + c.count].isLetter || chars[i + c.count].isNumber { return false }
        i += c.count
        return true
    }

    mutating func parseAll() throws -> Expression {
        let e = try parseOr()
        space()
        guard i == chars.count else { throw fail("unexpected '\(chars[i])'") }
        return e
    }

    mutating func parseOr() throws -> Expression {
        var e = try parseAnd()
        while eat("||") { e = .binary("||", e, try parseAnd()) }
        return e
    }

    mutating func parseAnd() throws -> Expression {
        var e = try parseComparison()
        while eat("&&") { e = .binary("&&", e, try parseComparison()) }
        return e
    }

    mutating func parseComparison() throws -> Expression {
        let e = try parseUnary()
        for op in ["==", "!=", "<=", ">=", "<", ">", "contains"] where eat(op) {
            return .binary(op, e, try parseUnary())
        }
        return e
    }

    mutating func parseUnary() throws -> Expression {
        if eat("!") { return .not(try parseUnary()) }
        return try parsePrimary()
    }

    mutating func parsePrimary() throws -> Expression {
        space()
        guard i < chars.count else { throw fail("expected a value, found the end") }
        let c = chars[i]
        if c == "(" {
            i += 1
            let e = try parseOr()
            guard eat(")") else { throw fail("expected ')'") }
            return e
        }
        if c == "\"" {
            // A JSON string, escapes and all: what a literal prints as (its JSON text) parses back to it.
            // (Taking `\x` as `x` turned a printed "\u0001" into "u0001"; found by the fuzzer.)
            let start = i
            i += 1
            while i < chars.count, chars[i] != "\"" {
                if chars[i] == "\\", i + 1 < chars.count { i += 1 }
                i += 1
            }
            guard i < chars.count else { throw fail("unterminated string") }
            i += 1
            let literal = String(chars[start..<i])
            guard let s = (try? JSONSerialization.jsonObject(with: Data(literal.utf8), options: .fragmentsAllowed)) as? String else {
                throw fail("bad string \(literal): escapes are JSON's (\\\" \\\\ \\n \\t \\uXXXX …)")
            }
            return .literal(.string(s))
        }
        if c.isNumber || c == "-" {
            let start = i
            i += 1
            while i < chars.count, chars[i].isNumber || chars[i] == "." || chars[i] == "e" || chars[i] == "E" { i += 1 }
            guard let n = Double(String(chars[start..<i])) else { throw fail("bad number '\(String(chars[start..<i]))'") }
            return .literal(.number(n))
        }
        if c.isLetter || c == "_" {
            let start = i
            while i < chars.count, chars[i].isLetter || chars[i].isNumber || "_.-".contains(chars[i]) { i += 1 }
            let word = String(chars[start..<i])
            switch word {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "null": return .literal(.null)
            default: break
            }
            var path: [Expression.PathPart] = []
            while i < chars.count, chars[i] == "[" {
                i += 1
                let s = i
                while i < chars.count, chars[i].isNumber { i += 1 }
                guard let n = Int(String(chars[s..<i])), i < chars.count, chars[i] == "]" else { throw fail("expected [INDEX]") }
                i += 1
                path.append(.index(n))
            }
            return .name(word, path: path)
        }
        throw fail("unexpected '\(c)'")
    }
}
