import ClewCore
import ClewModel
import ClewProjections
import Foundation

/// The OpenLineage spec's JSON Schemas (draft 2020-12), loaded from `OpenLineage.json` and `facets/*.json`,
/// and a validator for the keywords they use: `type`, `properties`, `required`, `additionalProperties`,
/// `items`, `enum`, `const`, `minimum`, `dependentRequired`, `not`, `allOf`, `anyOf`, `oneOf`, `$ref` (local and across files by `$id`) and the
/// `date-time`, `uri` and `uuid` formats. A facet whose key a facet schema declares is validated against
/// that schema too (what a consumer that knows the standard facets must do); unknown custom facets only
/// against the base facet. No Swift JSON Schema package is among the ones this machine offers, so this
/// compiles the spec's own files (``SchemaCompiler``) rather than hand-coding its rules.
final class OpenLineageSchema: Sendable {
    /// Every schema object of the spec, compiled once at load (see ``SchemaNode``).
    private let nodes: [SchemaNode]
    /// The node of `OpenLineage.json` itself (anyOf RunEvent, DatasetEvent, JobEvent).
    private let rootNode: Int
    /// Facet key → the node of the facet's definition, per facet family.
    private let runFacets: [String: Int]
    private let jobFacets: [String: Int]
    private let datasetFacets: [String: Int]
    private let inputFacets: [String: Int]
    private let outputFacets: [String: Int]

    /// The spec inside the executable (tools/embed_openlineage_spec.py writes it from Fixtures).
    static func embedded() throws -> OpenLineageSchema {
        let main = EmbeddedOpenLineageSpec.files.first { $0.path == "OpenLineage.json" }!
        let facets = EmbeddedOpenLineageSpec.files.filter { $0.path.hasPrefix("facets/") }
        return try OpenLineageSchema(
            main: Data(main.text.utf8), named: "the built-in OpenLineage.json",
            facets: facets.map { ($0.path, Data($0.text.utf8)) })
    }

    /// A spec directory holding `OpenLineage.json` and `facets/*.json` (`clew serve --openlineage-spec DIR`).
    convenience init(directory: URL) throws {
        let main = directory.appendingPathComponent("OpenLineage.json")
        guard let mainData = try? Data(contentsOf: main) else {
            throw SchemaLoadError(description: "OpenLineage spec not found at \(main.path) (--openlineage-spec names a directory with OpenLineage.json and facets/)")
        }
        let facetDir = directory.appendingPathComponent("facets")
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: facetDir.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        try self.init(
            main: mainData, named: main.path,
            facets: try files.map { ("facets/\($0)", try Data(contentsOf: facetDir.appendingPathComponent($0))) })
    }

    init(main mainData: Data, named mainName: String, facets: [(String, Data)]) throws {
        var docs: [String: JSONTree] = [:]
        let rootDoc = try JSONTree.parse(mainData)
        guard case .string(let rootID)? = rootDoc["$id"] else { throw SchemaLoadError(description: "\(mainName) has no $id") }
        let root = Self.strip(rootID)
        docs[root] = rootDoc
        // Facet key → (document, pointer of its definition), per family.
        var families: [String: [String: (String, String)]] = [:]
        for (_, data) in facets {
            let doc = try JSONTree.parse(data)
            guard case .string(let id)? = doc["$id"] else { continue }
            let docID = Self.strip(id)
            docs[docID] = doc
            guard case .object(let props)? = doc["properties"] else { continue }
            for (key, schema) in props {
                guard case .string(let ref)? = schema["$ref"], ref.hasPrefix("#") else { continue }
                let pointer = String(ref.dropFirst())
                guard let family = Self.family(of: Self.resolve(pointer: pointer, in: doc), in: doc) else { continue }
                families[family, default: [:]][key] = (docID, pointer)
            }
        }
        var compiler = SchemaCompiler(documents: docs)
        rootNode = compiler.node(doc: root, pointer: "")
        func compiled(_ family: String) -> [String: Int] {
            (families[family] ?? [:]).mapValues { compiler.node(doc: $0.0, pointer: $0.1) }
        }
        runFacets = compiled("RunFacet")
        jobFacets = compiled("JobFacet")
        datasetFacets = compiled("DatasetFacet")
        inputFacets = compiled("InputDatasetFacet")
        outputFacets = compiled("OutputDatasetFacet")
        nodes = compiler.nodes
    }

    /// Validates one event; the error names the first field that breaks the spec, as a JSON path.
    func validate(_ event: JSONTree) throws {
        guard case .object = event else { throw SchemaViolation(path: "$", message: "an event must be a JSON object") }
        var path = SchemaPath()
        try check(event, against: rootNode, path: &path, explain: true)
        try checkFacets(event["run"]?["facets"], runFacets, ["run", "facets"])
        try Self.checkClewSteps(event["run"]?["facets"]?["clew_steps"])
        try checkFacets(event["job"]?["facets"], jobFacets, ["job", "facets"])
        for (list, specific) in [("inputs", inputFacets), ("outputs", outputFacets)] {
            guard case .array(let items)? = event[list] else { continue }
            let facetKey = list == "inputs" ? "inputFacets" : "outputFacets"
            for (i, d) in items.enumerated() {
                try checkFacets(d["facets"], datasetFacets, [list, "[\(i)]", "facets"])
                try checkFacets(d[facetKey], specific, [list, "[\(i)]", facetKey])
            }
        }
    }

    /// Clew's own run facet (docs/python.md#clew_steps): `steps`, an array of objects with a non-empty
    /// `name`, a `value`, a `kind` of variable/now/side_effect when given, a string `source` and a
    /// positive whole `count` when given.
    static func checkClewSteps(_ facet: JSONTree?) throws {
        guard let facet else { return }
        let at = "$.run.facets.clew_steps"
        guard case .array(let steps)? = facet["steps"] else { throw SchemaViolation(path: "\(at).steps", message: "must be an array of steps") }
        if let call = facet["call"] {
            for key in ["file", "function"] where call[key]?.string?.isEmpty != false {
                throw SchemaViolation(path: "\(at).call.\(key)", message: "must be a non-empty string")
            }
            guard case .object? = call["arguments"] else { throw SchemaViolation(path: "\(at).call.arguments", message: "must be an object (name → JSON)") }
        }
        for (i, step) in steps.enumerated() {
            let here = "\(at).steps[\(i)]"
            guard case .object = step else { throw SchemaViolation(path: here, message: "must be an object") }
            guard case .string(let name)? = step["name"], !name.isEmpty else { throw SchemaViolation(path: "\(here).name", message: "must be a non-empty string") }
            if step["value"] == nil { throw SchemaViolation(path: "\(here).value", message: "is required") }
            if let kind = step["kind"], !["variable", "now", "side_effect"].contains(kind.string ?? "") {
                throw SchemaViolation(path: "\(here).kind", message: "must be one of \"variable\", \"now\", \"side_effect\", got \(kind.compact)")
            }
            if let source = step["source"], source.string == nil { throw SchemaViolation(path: "\(here).source", message: "must be a string (file:line)") }
            if let count = step["count"] {
                guard case .number(let n) = count, n >= 1, n == n.rounded(), n < 1e15 else {
                    throw SchemaViolation(path: "\(here).count", message: "must be a whole number of at least 1, got \(count.compact)")
                }
            }
        }
    }

    private func checkFacets(_ facets: JSONTree?, _ known: [String: Int], _ at: [String]) throws {
        guard case .object(let members)? = facets else { return }
        for (key, value) in members {
            guard let node = known[key] else { continue }
            if case .bool(true)? = value["_deleted"] { continue }
            // (A memo of facets already found valid cost more to hash than the compiled check it saved.)
            var path = SchemaPath(at + [key])
            try check(value, against: node, path: &path, explain: true)
        }
    }

    // MARK: Validation

    /// Checks `value` against node `index`. The path is a stack of segments, joined into text only when a
    /// check fails; with `explain` false (probing the branches of `anyOf`, `oneOf` and `not`) a failure
    /// throws ``SchemaViolation/mismatch`` without formatting a message, since most probes fail.
    private func check(_ value: JSONTree, against index: Int, path: inout SchemaPath, explain: Bool, depth: Int = 0) throws {
        func fail(_ message: @autoclosure () -> String) -> SchemaViolation {
            explain ? SchemaViolation(path: path.text, message: message()) : .mismatch
        }
        guard depth < 64 else { throw SchemaViolation(path: path.text, message: "schema nesting too deep") }
        let s = nodes[index]
        if let problem = s.unresolved { throw SchemaViolation(path: "$", message: problem) }
        if let ref = s.ref { try check(value, against: ref, path: &path, explain: explain, depth: depth + 1) }
        if let types = s.types, types & value.kinds == 0 { throw fail(s.typeMessage(value)) }
        if let options = s.enumValues, !options.contains(value) {
            throw fail("must be one of \(options.map(\.compact).joined(separator: ", ")), got \(value.compact)")
        }
        if let c = s.const, c != value { throw fail("must be \(c.compact), got \(value.compact)") }
        if let format = s.format, case .string(let text) = value, let problem = Self.formatProblem(format, text) { throw fail(problem) }
        // `not` before the members: it is cheap, and it is what rejects an event as the wrong kind (a
        // RunEvent probed as a JobEvent fails on `not: {required: [run]}`) before its inputs and outputs
        // would be walked a second time.
        if let negated = s.not {
            if (try? check(value, against: negated.node, path: &path, explain: false, depth: depth + 1)) != nil {
                throw fail("must not match \(negated.source.compact)")
            }
        }
        if case .object(let members) = value {
            for name in s.required where members[name] == nil {
                path.push(name)
                defer { path.pop() }
                throw fail("is required")
            }
            for (name, sub) in s.propertyList {
                guard let v = members[name] else { continue }
                path.push(name)
                defer { path.pop() }
                try check(v, against: sub, path: &path, explain: explain, depth: depth + 1)
            }
            switch s.additional {
            case .unchecked: break
            case .forbidden, .schema:
                for (name, v) in members where s.properties[name] == nil {
                    path.push(name)
                    defer { path.pop() }
                    guard case .schema(let extra) = s.additional else { throw fail("is not allowed here") }
                    try check(v, against: extra, path: &path, explain: explain, depth: depth + 1)
                }
            }
            for (name, needs) in s.dependentRequired where members[name] != nil {
                for other in needs where members[other] == nil {
                    path.push(other)
                    defer { path.pop() }
                    throw fail("is required when '\(name)' is given")
                }
            }
        }
        if let min = s.minimum, case .number(let n) = value, n < min {
            throw fail("must be at least \(JSONTree.number(min).text), got \(value.text)")
        }
        if let itemNode = s.items, case .array(let items) = value {
            for (i, item) in items.enumerated() {
                path.push(index: i)
                defer { path.pop() }
                try check(item, against: itemNode, path: &path, explain: explain, depth: depth + 1)
            }
        }
        for sub in s.allOf { try check(value, against: sub, path: &path, explain: explain, depth: depth + 1) }
        if let anyOf = s.anyOf {
            let matched = anyOf.contains { (try? check(value, against: $0, path: &path, explain: false, depth: depth + 1)) != nil }
            if !matched {
                // Explain with the first branch's own failure.
                if explain, let first = anyOf.first { try check(value, against: first, path: &path, explain: true, depth: depth + 1) }
                throw fail("matches none of the allowed shapes")
            }
        }
        if let oneOf = s.oneOf {
            var matches = 0
            for sub in oneOf where (try? check(value, against: sub, path: &path, explain: false, depth: depth + 1)) != nil { matches += 1 }
            if matches == 0 {
                if explain, let first = oneOf.first { try check(value, against: first, path: &path, explain: true, depth: depth + 1) }
                throw fail("matches none of the allowed shapes")
            }
            if matches > 1 { throw fail("matches \(matches) of the shapes where exactly one is allowed") }
        }
    }

    /// What is wrong with `text` for a string format (`uuid`, `date-time`, `uri`), or nil. Checked on
    /// the UTF-8 bytes: every facet carries a `_producer` and `_schemaURL`, so this runs many times per event.
    static func formatProblem(_ format: String, _ text: String) -> String? {
        switch format {
        case "uuid":
            return isUUID(text) ? nil : "must be a UUID, got \"\(text)\""
        case "date-time":
            return isDateTime(text) ? nil : "must be an RFC 3339 date-time, got \"\(text)\""
        case "uri":
            return isAbsoluteURI(text) ? nil : "must be an absolute URI, got \"\(text)\""
        default: return nil
        }
    }

    /// 8-4-4-4-12 hex digits.
    static func isUUID(_ s: String) -> Bool {
        var n = 0
        for b in s.utf8 {
            if n == 8 || n == 13 || n == 18 || n == 23 {
                guard b == UInt8(ascii: "-") else { return false }
            } else {
                guard (b >= 48 && b <= 57) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102) else { return false }
            }
            n += 1
            if n > 36 { return false }
        }
        return n == 36
    }

    /// A scheme (a letter, then letters, digits, `+`, `-`, `.`), a `:`, and no spaces.
    static func isAbsoluteURI(_ s: String) -> Bool {
        var sawColon = false
        var first = true
        for b in s.utf8 {
            if b == 0x20 { return false }
            if sawColon { continue }
            let letter = (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
            if first {
                guard letter else { return false }
                first = false
            } else if b == UInt8(ascii: ":") {
                sawColon = true
            } else if !(letter || (b >= 48 && b <= 57) || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")) {
                return false
            }
        }
        return sawColon
    }

    /// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
    static func isDateTime(_ s: String) -> Bool {
        let c = Array(s.utf8)
        func digits(_ r: Range<Int>) -> Bool { r.upperBound <= c.count && r.allSatisfy { c[$0] >= 48 && c[$0] <= 57 } }
        guard c.count >= 20, digits(0..<4), c[4] == 45, digits(5..<7), c[7] == 45, digits(8..<10),
              c[10] == 84 || c[10] == 116 || c[10] == 32, digits(11..<13), c[13] == 58, digits(14..<16), c[16] == 58, digits(17..<19)
        else { return false }
        // RFC 3339's ranges, not only its shape: month 13 or hour 99 was accepted and mapped to another time.
        func value(_ r: Range<Int>) -> Int { r.reduce(0) { $0 * 10 + Int(c[$1] - 48) } }
        guard (1...12).contains(value(5..<7)), (1...31).contains(value(8..<10)), value(11..<13) <= 23,
              value(14..<16) <= 59, value(17..<19) <= 60
        else { return false }
        var i = 19
        if c[i] == 46 {
            i += 1
            let start = i
            while i < c.count, c[i] >= 48, c[i] <= 57 { i += 1 }
            guard i > start else { return false }
        }
        guard i < c.count else { return false }
        if c[i] == 90 || c[i] == 122 { return i == c.count - 1 }
        guard c[i] == 43 || c[i] == 45, c.count == i + 6, digits(i + 1..<i + 3), c[i + 3] == 58, digits(i + 4..<i + 6) else { return false }
        return value(i + 1..<i + 3) <= 23 && value(i + 4..<i + 6) <= 59
    }

    // MARK: References

    static func resolve(pointer: String, in doc: JSONTree) -> JSONTree {
        var node = doc
        for part in pointer.split(separator: "/") {
            let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let next = node[key] else { return .null }
            node = next
        }
        return node
    }

    /// Which facet family a facet definition extends (`RunFacet`, `JobFacet`, `DatasetFacet`, …),
    /// following its `allOf` and local `$ref`s.
    static func family(of def: JSONTree, in doc: JSONTree, depth: Int = 0) -> String? {
        guard depth < 8 else { return nil }
        if case .string(let ref)? = def["$ref"] {
            if let hash = ref.firstIndex(of: "#"), ref[..<hash].hasSuffix("OpenLineage.json") {
                return ref.split(separator: "/").last.map(String.init)
            }
            if ref.hasPrefix("#") { return family(of: resolve(pointer: String(ref.dropFirst()), in: doc), in: doc, depth: depth + 1) }
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if case .array(let subs)? = def[key] {
                for sub in subs { if let f = family(of: sub, in: doc, depth: depth + 1) { return f } }
            }
        }
        return nil
    }

    static func strip(_ id: String) -> String {
        id.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? id
    }
}

/// An event that breaks the OpenLineage spec: the JSON path of the field and what is wrong with it.
struct SchemaViolation: ClewError {
    var path: String
    var message: String
    var description: String { "\(path) \(message)" }
    var category: ErrorCategory { .invalidInput }

    /// A failed probe (a branch of `anyOf`/`oneOf`/`not`): no path or message is formatted for it.
    static let mismatch = SchemaViolation(path: "", message: "")
}

/// Where a check is in the event, as a stack of segments: pushed and popped as the check descends, and
/// joined into `$.inputs[0].facets.schema` only when a check fails.
struct SchemaPath {
    private var parts: [String]

    init(_ parts: [String] = []) { self.parts = parts }

    mutating func push(_ key: String) { parts.append(key) }
    mutating func push(index: Int) { parts.append("[\(index)]") }
    mutating func pop() { parts.removeLast() }

    var text: String {
        parts.reduce("$") { $1.hasPrefix("[") ? $0 + $1 : $0 + "." + $1 }
    }
}

struct SchemaLoadError: ClewError {
    var description: String
    var category: ErrorCategory { .invalidInput }
}
