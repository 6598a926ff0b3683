public import ClewCore
import Foundation

/// The stdout line protocol of command tasks (docs/command-tasks.md), modelled on GitHub Actions'
/// workflow commands: `::command key=value,key=value::message`. Every other line is plain output.
///
/// ```
/// ::set-variable name=row_count::1200
/// ::set-variable name=total,kind=variable,at=etl.py%3A12,count=100000::4512.5
/// ::set-output name=path::/data/out.json
/// ::expect name=no_nulls passed=true::0 nulls in 1200 rows
/// ::branch::load_fast,notify
/// ::chunk dataset=sales key=2026-11-21::sales.json
/// ```
/// In values, `%25` is `%`, `%0A` a newline and `%0D` a carriage return; in properties also `%3A` is `:`
/// and `%2C` is `,`.
public enum LineCommand: Sendable, Hashable {
    /// A step: `kind` is variable (the default), now or side_effect; `at` the source line
    /// (`file:line`) that made it; `count` how many times the variable changed there, when a loop was summarized.
    case variable(name: String, value: String, kind: String = "variable", at: String? = nil, count: Int? = nil)
    case output(name: String, value: String)
    case expect(name: String, passed: Bool, message: String)
    case branch([String])
    case chunk(dataset: String, key: String, path: String)

    /// Parses one stdout line: nil for plain output; a thrown error for a malformed command.
    public static func parse(_ line: String) throws -> LineCommand? {
        guard line.hasPrefix("::") else { return nil }
        let body = line.dropFirst(2)
        guard let sep = body.range(of: "::") else {
            throw LineProtocolError("'\(line.prefix(80))' starts with '::' but has no closing '::'")
        }
        let head = body[..<sep.lowerBound]
        let message = unescape(String(body[sep.upperBound...]), property: false)
        let name: Substring
        var props: [String: String] = [:]
        if let space = head.firstIndex(of: " ") {
            name = head[..<space]
            for item in head[head.index(after: space)...].split(whereSeparator: { $0 == "," || $0 == " " }) {
                guard let eq = item.firstIndex(of: "=") else {
                    throw LineProtocolError("'\(line.prefix(80))': property '\(item)' has no '='")
                }
                props[String(item[..<eq]).trimmingCharacters(in: .whitespaces)] = unescape(String(item[item.index(after: eq)...]), property: true)
            }
        } else {
            name = head
        }
        func required(_ key: String) throws -> String {
            guard let v = props[key], !v.isEmpty else {
                throw LineProtocolError("'::\(name)' needs \(key)=… (line '\(line.prefix(80))')")
            }
            return v
        }
        switch name {
        case "set-variable", "record":
            let kind = props["kind"] ?? "variable"
            guard Self.stepKinds.contains(kind) else {
                throw LineProtocolError("'::\(name)' kind=\(kind) is not one of \(Self.stepKinds.sorted().joined(separator: ", "))")
            }
            var count: Int?
            if let c = props["count"] {
                guard let n = Int(c), n > 0 else { throw LineProtocolError("'::\(name)' count=\(c) is not a positive whole number") }
                count = n
            }
            return .variable(name: try required("name"), value: message, kind: kind, at: props["at"].flatMap { $0.isEmpty ? nil : $0 }, count: count)
        case "set-output": return .output(name: try required("name"), value: message)
        case "expect":
            let passed = try required("passed").lowercased()
            guard ["true", "false", "pass", "fail"].contains(passed) else {
                throw LineProtocolError("'::expect' passed= must be true or false, not '\(passed)'")
            }
            return .expect(name: try required("name"), passed: passed == "true" || passed == "pass", message: message)
        case "branch":
            return .branch(message.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        case "chunk":
            return .chunk(dataset: try required("dataset"), key: try required("key"), path: message)
        default:
            throw LineProtocolError("unknown command '::\(name)' (known: set-variable, set-output, expect, branch, chunk)")
        }
    }

    /// The step kinds a command may report (a Python task's `clew.now()` and `clew.side_effect`).
    static let stepKinds: Set<String> = ["variable", "now", "side_effect"]

    static func unescape(_ s: String, property: Bool) -> String {
        guard s.contains("%") else { return s }
        var out = s.replacingOccurrences(of: "%0D", with: "\r").replacingOccurrences(of: "%0A", with: "\n")
        if property {
            out = out.replacingOccurrences(of: "%3A", with: ":").replacingOccurrences(of: "%2C", with: ",").replacingOccurrences(of: "%20", with: " ")
        }
        return out.replacingOccurrences(of: "%25", with: "%")
    }
}

/// A malformed line-protocol command.
public struct LineProtocolError: ClewError {
    public var description: String
    init(_ description: String) { self.description = description }
    public var category: ErrorCategory { .invalidInput }
}

/// Keeps the first and last `half` bytes of a stream and counts the rest.
struct BoundedText: Sendable {
    let half: Int
    var head = ""
    var tail: [String] = []
    var tailBytes = 0
    var total = 0
    var dropped = 0

    init(limit: Int) { half = limit / 2 }

    mutating func append(_ line: String) {
        total += line.utf8.count + 1
        if head.utf8.count < half {
            head += line + "\n"
            return
        }
        tail.append(line)
        tailBytes += line.utf8.count + 1
        while tailBytes > half, tail.count > 1 {
            tailBytes -= tail.removeFirst().utf8.count + 1
            dropped += 1
        }
    }

    var text: String {
        if dropped == 0 { return head + tail.map { $0 + "\n" }.joined() }
        return head + "… \(dropped) lines left out …\n" + tail.map { $0 + "\n" }.joined()
    }
}
