public import Foundation

/// Encodes an event payload (any `Encodable`) as the compact JSON the ledger stores.
///
/// Members are written in the order the type encodes them (its properties' declaration order for a
/// synthesized `Encodable`), absent optionals are left out, the keys of a `[String: …]` dictionary are
/// sorted, and a value that already is JSON (``JSONTree``, ``JSONFragment``, ``JSON/Value``, a
/// ``DAGSpec``'s canonical definition) is inserted as its own bytes. So the same payload value always
/// gives the same bytes, integers stay integers (no trip through `Double`), and a recorded value's text
/// is stored exactly as it was digested.
///
/// It is the writing half of the event schema (``EventPayload``): emitters build a payload type and
/// never spell a field name.
public enum PayloadEncoder {
    /// The payload as a JSON value.
    public static func value<T: Encodable>(_ payload: T) -> JSON.Value {
        let root = Node()
        do {
            try root.encode(payload, path: [])
        } catch {
            // The containers below never throw; only a type's own `encode(to:)` could, and no payload
            // type's does.
            preconditionFailure("PayloadEncoder: \(T.self) failed to encode: \(error)")
        }
        return root.value
    }

    /// The payload as compact JSON bytes.
    public static func data<T: Encodable>(_ payload: T) -> Data {
        Data(value(payload).bytes)
    }
}

extension EventPayload {
    /// The payload's stored bytes (``PayloadEncoder``).
    public var payloadData: Data { PayloadEncoder.data(self) }
}

/// A JSON value that a payload field holds as is: parsed for readers, and written back as the exact text
/// it was made from (a recorded task value, whose digest is of that text).
public struct JSONFragment: Codable, Sendable, Hashable, JSONWritable {
    /// The value, parsed.
    public let tree: JSONTree
    private let original: String?

    /// A fragment of already-encoded JSON text, kept byte for byte.
    /// - Throws: ``JSONParseError`` when `text` is not one JSON value.
    public init(text: String) throws {
        tree = try JSONTree.parse(Data(text.utf8))
        original = text
    }

    public init(_ tree: JSONTree) {
        self.tree = tree
        original = nil
    }

    /// The JSON text: as given, or the tree's canonical text.
    public var text: String { original ?? tree.text }

    public init(from decoder: any Decoder) throws {
        tree = try JSONTree(from: decoder)
        original = nil
    }

    public func encode(to encoder: any Encoder) throws { try tree.encode(to: encoder) }

    func write(to out: inout [UInt8]) {
        if let original { out.append(contentsOf: original.utf8) } else { tree.write(to: &out) }
    }

    public static func == (a: JSONFragment, b: JSONFragment) -> Bool { a.tree == b.tree }
    public func hash(into hasher: inout Hasher) { hasher.combine(tree) }
}

extension DAGSpec: JSONWritable {
    /// The registered definition is the canonical text the version hash is taken of.
    func write(to out: inout [UInt8]) { out.append(contentsOf: canonicalJSON) }
}

// MARK: - The encoder

/// A `[String: V]` whose members can be listed in key order (dictionaries iterate in a per-process order).
private protocol StringKeyedMembers {
    func sortedMembers() -> [(String, any Encodable)]
}

extension Dictionary: StringKeyedMembers where Key == String, Value: Encodable {
    fileprivate func sortedMembers() -> [(String, any Encodable)] {
        sorted { $0.key < $1.key }.map { ($0.key, $0.value as any Encodable) }
    }
}

/// One value under construction; containers write into it.
private final class Node {
    enum Kind {
        case empty
        case leaf(JSON.Value)
        case object([(String, Node)])
        case array([Node])
    }

    var kind: Kind = .empty

    var value: JSON.Value {
        switch kind {
        case .empty: .object([])
        case .leaf(let v): v
        case .object(let members): .object(members.map { ($0.0, $0.1.value) })
        case .array(let items): .array(items.map(\.value))
        }
    }

    func encode<T: Encodable>(_ value: T, path: [any CodingKey]) throws {
        switch value {
        case let w as any JSONWritable:
            var bytes: [UInt8] = []
            w.write(to: &bytes)
            kind = .leaf(.raw(String(decoding: bytes, as: UTF8.self)))
        case let s as String: kind = .leaf(.string(s))
        case let b as Bool: kind = .leaf(.bool(b))
        case let i as Int: kind = .leaf(.int(Int64(i)))
        case let i as Int64: kind = .leaf(.int(i))
        case let i as Int32: kind = .leaf(.int(Int64(i)))
        case let u as UInt64: kind = .leaf(u <= UInt64(Int64.max) ? .int(Int64(u)) : .raw(String(u)))
        case let d as Double: kind = .leaf(.double(d))
        case let m as any StringKeyedMembers:
            kind = .object(
                try m.sortedMembers().map { key, member in
                    let child = Node()
                    try child.encode(member, path: path + [PayloadKey(key)])
                    return (key, child)
                })
        default:
            try value.encode(to: PayloadEncoding(node: self, codingPath: path))
        }
    }

    func append(_ key: String, _ child: Node) {
        if case .object(var members) = kind {
            kind = .empty
            members.append((key, child))
            kind = .object(members)
        } else {
            kind = .object([(key, child)])
        }
    }

    func append(_ child: Node) {
        if case .array(var items) = kind {
            kind = .empty
            items.append(child)
            kind = .array(items)
        } else {
            kind = .array([child])
        }
    }
}

private struct PayloadKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

private struct PayloadEncoding: Encoder {
    let node: Node
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = node.kind {} else { node.kind = .object([]) }
        return KeyedEncodingContainer(Keyed<Key>(node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = node.kind {} else { node.kind = .array([]) }
        return Unkeyed(node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { Single(node: node, codingPath: codingPath) }
}

private struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let node: Node
    let codingPath: [any CodingKey]

    private func child(_ key: Key) -> Node {
        let c = Node()
        node.append(key.stringValue, c)
        return c
    }

    mutating func encodeNil(forKey key: Key) throws { child(key).kind = .leaf(.null) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try child(key).encode(value, path: codingPath + [key])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        PayloadEncoding(node: child(key), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        PayloadEncoding(node: child(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        PayloadEncoding(node: child(Key(stringValue: "super")!), codingPath: codingPath)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        PayloadEncoding(node: child(key), codingPath: codingPath + [key])
    }
}

private struct Unkeyed: UnkeyedEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    var count: Int {
        if case .array(let items) = node.kind { return items.count }
        return 0
    }

    private func child() -> Node {
        let c = Node()
        node.append(c)
        return c
    }

    mutating func encodeNil() throws { child().kind = .leaf(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try child().encode(value, path: codingPath + [PayloadKey(intValue: count)!])
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        PayloadEncoding(node: child(), codingPath: codingPath).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        PayloadEncoding(node: child(), codingPath: codingPath).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { PayloadEncoding(node: child(), codingPath: codingPath) }
}

private struct Single: SingleValueEncodingContainer {
    let node: Node
    let codingPath: [any CodingKey]

    mutating func encodeNil() throws { node.kind = .leaf(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { try node.encode(value, path: codingPath) }
    mutating func encode(_ value: Bool) throws { node.kind = .leaf(.bool(value)) }
    mutating func encode(_ value: String) throws { node.kind = .leaf(.string(value)) }
    mutating func encode(_ value: Double) throws { node.kind = .leaf(.double(value)) }
    mutating func encode(_ value: Float) throws { node.kind = .leaf(.double(Double(value))) }
    mutating func encode(_ value: Int) throws { node.kind = .leaf(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { node.kind = .leaf(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { node.kind = .leaf(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { node.kind = .leaf(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { node.kind = .leaf(.int(value)) }
    mutating func encode(_ value: UInt) throws { try encode(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { node.kind = .leaf(.int(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { node.kind = .leaf(.int(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { node.kind = .leaf(.int(Int64(value))) }
    mutating func encode(_ value: UInt64) throws {
        node.kind = .leaf(value <= UInt64(Int64.max) ? .int(Int64(value)) : .raw(String(value)))
    }
}
