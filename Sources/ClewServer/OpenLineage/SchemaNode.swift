import ClewModel
import ClewProjections
import Foundation

/// One schema object of the OpenLineage spec, compiled at load: each keyword the validator knows read
/// once into a field, and every `$ref` resolved to the index of its target node. Validation then walks
/// nodes by index instead of looking up fifteen keywords in a dictionary per visit (that lookup, hashing
/// keyword strings, was most of validation's time in a profile). A schema that is not an object (`true`)
/// compiles to a node with no checks, as before.
final class SchemaNode: Sendable {
    /// What `additionalProperties` asks of members the node's `properties` do not name.
    enum Additional: Sendable {
        /// Absent (or `true`): anything goes.
        case unchecked
        /// `false`.
        case forbidden
        /// A schema each such member must match.
        case schema(Int)
    }

    /// The node a `$ref` points to.
    let ref: Int?
    /// A `$ref` whose document is not in the loaded spec: reported when the node is used.
    let unresolved: String?
    /// `type` as bits of ``JSONTree/kinds`` (nil without a `type` keyword), and its names for messages.
    let types: UInt8?
    let typeNames: [String]
    let typeIsList: Bool
    let enumValues: [JSONTree]?
    let const: JSONTree?
    let format: String?
    /// The `not` schema's node, and its source for the message.
    let not: (node: Int, source: JSONTree)?
    let required: [String]
    /// `properties`, as a list to walk and a table to ask.
    let propertyList: [(String, Int)]
    let properties: [String: Int]
    let additional: Additional
    let dependentRequired: [(String, [String])]
    let minimum: Double?
    let items: Int?
    let allOf: [Int]
    let anyOf: [Int]?
    let oneOf: [Int]?

    init(
        ref: Int? = nil, unresolved: String? = nil, types: UInt8? = nil, typeNames: [String] = [], typeIsList: Bool = false,
        enumValues: [JSONTree]? = nil, const: JSONTree? = nil, format: String? = nil, not: (node: Int, source: JSONTree)? = nil,
        required: [String] = [], propertyList: [(String, Int)] = [], additional: Additional = .unchecked,
        dependentRequired: [(String, [String])] = [], minimum: Double? = nil, items: Int? = nil,
        allOf: [Int] = [], anyOf: [Int]? = nil, oneOf: [Int]? = nil
    ) {
        self.ref = ref
        self.unresolved = unresolved
        self.types = types
        self.typeNames = typeNames
        self.typeIsList = typeIsList
        self.enumValues = enumValues
        self.const = const
        self.format = format
        self.not = not
        self.required = required
        self.propertyList = propertyList
        self.properties = Dictionary(propertyList, uniquingKeysWith: { _, last in last })
        self.additional = additional
        self.dependentRequired = dependentRequired
        self.minimum = minimum
        self.items = items
        self.allOf = allOf
        self.anyOf = anyOf
        self.oneOf = oneOf
    }

    /// The message for a value of the wrong type.
    func typeMessage(_ value: JSONTree) -> String {
        if typeIsList { return "must be \(typeNames.joined(separator: " or ")), got \(value.typeName)" }
        let type = typeNames.first ?? ""
        return "must be \(type == "object" || type == "array" || type == "integer" ? "an" : "a") \(type), got \(value.typeName)"
    }

    /// The bit of each JSON Schema type name (`integer` is a number with no fraction).
    static func kind(_ name: String) -> UInt8 {
        switch name {
        case "null": return 1
        case "boolean": return 2
        case "object": return 4
        case "array": return 8
        case "number": return 16
        case "string": return 32
        case "integer": return 64
        default: return 0
        }
    }
}

extension JSONTree {
    /// The JSON Schema types this value is, as ``SchemaNode/kind(_:)`` bits.
    var kinds: UInt8 {
        switch self {
        case .null: return 1
        case .bool: return 2
        case .object: return 4
        case .array: return 8
        case .number(let d): return d.rounded() == d ? 16 | 64 : 16
        case .string: return 32
        }
    }
}

/// Compiles the spec's documents into ``SchemaNode``s, each schema object once (keyed by its document and
/// JSON pointer, so recursive references end).
struct SchemaCompiler {
    let documents: [String: JSONTree]
    private(set) var nodes: [SchemaNode] = []
    private var index: [String: Int] = [:]

    init(documents: [String: JSONTree]) { self.documents = documents }

    /// The node at `pointer` in document `doc` (a missing pointer is a node with no checks).
    mutating func node(doc: String, pointer: String) -> Int {
        let key = "\(doc)#\(pointer)"
        if let i = index[key] { return i }
        let tree = documents[doc].map { OpenLineageSchema.resolve(pointer: pointer, in: $0) } ?? .null
        return compile(tree, doc: doc, key: key)
    }

    private mutating func compile(_ tree: JSONTree, doc: String, key: String) -> Int {
        if let i = index[key] { return i }
        let i = nodes.count
        index[key] = i
        nodes.append(SchemaNode())  // a placeholder, so a reference back to this node finds its index
        guard case .object(let s) = tree else { return i }
        func child(_ sub: JSONTree, _ suffix: String) -> Int { compile(sub, doc: doc, key: key + "/" + suffix) }
        func escaped(_ name: String) -> String { name.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1") }
        func list(_ keyword: String) -> [Int]? {
            guard case .array(let subs)? = s[keyword] else { return nil }
            return subs.enumerated().map { child($1, "\(keyword)/\($0)") }
        }

        var ref: Int?
        var unresolved: String?
        if case .string(let text)? = s["$ref"] {
            let parts = text.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let base = parts[0].isEmpty ? doc : OpenLineageSchema.strip(String(parts[0]))
            if documents[base] != nil {
                ref = node(doc: base, pointer: parts.count > 1 ? String(parts[1]) : "")
            } else {
                unresolved = "schema reference \(text) is not in the loaded spec"
            }
        }
        var types: UInt8?
        var typeNames: [String] = []
        var typeIsList = false
        if case .array(let names)? = s["type"] {
            typeNames = names.compactMap(\.string)
            typeIsList = true
        } else if case .string(let name)? = s["type"] {
            typeNames = [name]
        }
        if s["type"]?.string != nil || typeIsList { types = typeNames.reduce(0) { $0 | SchemaNode.kind($1) } }
        var enumValues: [JSONTree]?
        if case .array(let options)? = s["enum"] { enumValues = options }
        var not: (node: Int, source: JSONTree)?
        if let negated = s["not"] { not = (child(negated, "not"), negated) }
        var required: [String] = []
        if case .array(let names)? = s["required"] { required = names.compactMap(\.string) }
        var properties: [(String, Int)] = []
        if case .object(let p)? = s["properties"] {
            properties = p.sorted { $0.key < $1.key }.map { ($0.key, child($0.value, "properties/" + escaped($0.key))) }
        }
        var additional = SchemaNode.Additional.unchecked
        switch s["additionalProperties"] {
        case .bool(false)?: additional = .forbidden
        case let extra? where extra.isObject: additional = .schema(child(extra, "additionalProperties"))
        default: break
        }
        var dependent: [(String, [String])] = []
        if case .object(let d)? = s["dependentRequired"] {
            dependent = d.sorted { $0.key < $1.key }.map { ($0.key, $0.value.array.compactMap(\.string)) }
        }
        var minimum: Double?
        if case .number(let n)? = s["minimum"] { minimum = n }
        let items = s["items"].map { child($0, "items") }
        let format = s["format"]?.string
        nodes[i] = SchemaNode(
            ref: ref, unresolved: unresolved, types: types, typeNames: typeNames, typeIsList: typeIsList,
            enumValues: enumValues, const: s["const"], format: format, not: not, required: required,
            propertyList: properties, additional: additional, dependentRequired: dependent, minimum: minimum,
            items: items, allOf: list("allOf") ?? [], anyOf: list("anyOf"), oneOf: list("oneOf"))
        return i
    }
}

extension JSONTree {
    fileprivate var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}
