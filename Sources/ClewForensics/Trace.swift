public import ClewProjections
import Foundation

/// One node reached by a trace: its id, kind and how many data-flow steps from the start.
public struct TraceNode: Sendable, Hashable, Codable {
    public var id: String
    /// dataset, task, chunk, attempt, value or run.
    public var kind: String
    public var depth: Int
}

/// The lineage of a node, backward or forward, as nodes (by depth) and the edges between them.
public struct TraceGraph: Sendable, Codable {
    public var root: String
    public var direction: LineageDirection
    public var depth: Int
    /// The seq the graph is as of (nil: everything recorded).
    public var asOf: UInt64?
    public var nodes: [TraceNode]
    public var edges: [LineageEdge]
    /// Whether the edge limit cut the trace short.
    public var truncated: Bool
}

/// How to print a trace.
public enum TraceFormat: String, Sendable, CaseIterable {
    case text, json, dot, mermaid
}

extension Forensics {
    /// The lineage of `node` (a node id, see ``node(_:)``) up to `depth` data-flow steps (`Int.max`: all),
    /// as of a seq. Content-addressed value nodes are one node for identical bytes, so a trace through a value
    /// reaches every attempt, in any run, that produced or read those bytes.
    public func trace(_ node: String, direction: LineageDirection, depth: Int = .max, asOf: UInt64? = nil, limit: Int = 100_000) throws -> TraceGraph {
        var edges = try views.lineage(node: node, direction: direction, depth: depth, asOf: asOf, limit: limit)
        var adjacent: [String: [String]] = [:]
        // A run or task is traced through its attempts (its members).
        if node.hasPrefix("run:") || node.hasPrefix("task:") {
            let members = try views.lineage(node: node, direction: .up, depth: 1, asOf: asOf).filter { $0.kind == "part_of" }
            var seen = Set(edges)
            for m in members {
                if direction == .down { edges.append(m) }
                adjacent[node, default: []].append(m.from)
                for e in try views.lineage(node: m.from, direction: direction, depth: depth, asOf: asOf, limit: limit) where seen.insert(e).inserted {
                    edges.append(e)
                }
            }
        }
        // Depths: breadth-first over the edges, following data flow and triggers only.
        var depthOf: [String: Int] = [node: 0]
        var frontier = [node]
        for e in edges {
            let (from, to) = direction == .up ? (e.to, e.from) : (e.from, e.to)
            adjacent[from, default: []].append(to)
        }
        var d = 0
        while !frontier.isEmpty {
            d += 1
            var next: [String] = []
            for n in frontier {
                for m in adjacent[n] ?? [] where depthOf[m] == nil {
                    depthOf[m] = d
                    next.append(m)
                }
            }
            frontier = next
        }
        let nodes = depthOf.map { TraceNode(id: $0.key, kind: Self.kind(of: $0.key), depth: $0.value) }
            .sorted { ($0.depth, $0.id) < ($1.depth, $1.id) }
        return TraceGraph(root: node, direction: direction, depth: depth, asOf: asOf, nodes: nodes, edges: edges, truncated: edges.count >= limit)
    }

    static func kind(of node: String) -> String {
        guard let colon = node.firstIndex(of: ":") else { return "?" }
        return String(node[..<colon])
    }
}

extension TraceGraph {
    /// The graph in a format: an indented tree (text), JSON, Graphviz dot or a Mermaid flowchart.
    public func rendered(_ format: TraceFormat) throws -> String {
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        case .dot:
            var out = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontname=\"monospace\"];"]
            for n in nodes {
                out.append("  \(Self.dotQuote(n.id)) [label=\(Self.dotQuote(Self.label(n.id))), shape=\(Self.dotShape(n.kind))\(n.id == root ? ", style=bold" : "")];")
            }
            for e in edges { out.append("  \(Self.dotQuote(e.from)) -> \(Self.dotQuote(e.to)) [label=\(Self.dotQuote(e.kind))];") }
            out.append("}")
            return out.joined(separator: "\n")
        case .mermaid:
            var ids: [String: String] = [:]
            for (i, n) in nodes.enumerated() { ids[n.id] = "n\(i)" }
            func id(_ node: String) -> String {
                if let i = ids[node] { return i }
                ids[node] = "n\(ids.count)"
                return ids[node]!
            }
            var out = ["flowchart LR"]
            for n in nodes { out.append("  \(id(n.id))[\"\(Self.mermaidEscape(n.kind + ": " + Self.label(n.id)))\"]") }
            for e in edges { out.append("  \(id(e.from)) -->|\(e.kind)| \(id(e.to))") }
            return out.joined(separator: "\n")
        case .text:
            // Each node once, in breadth-first order, with its edges in the direction of the trace.
            var out = ["\(direction == .up ? "upstream of" : "downstream of") \(root)\(asOf.map { "  (as of seq \($0))" } ?? "")"]
            var from: [String: [(String, LineageEdge)]] = [:]
            for e in edges {
                let (parent, child) = direction == .up ? (e.to, e.from) : (e.from, e.to)
                if e.kind == "part_of", Self.isMember(e.from, of: root) {
                    from[root, default: []].append((e.from, e))
                } else {
                    from[parent, default: []].append((child, e))
                }
            }
            let arrow = direction == .up ? "←" : "→"
            for n in nodes {
                let list = from[n.id] ?? []
                if n.id != root && list.isEmpty { continue }
                out.append("\(n.id == root ? "" : "[\(n.depth)] ")\(n.id)")
                for (c, e) in list.sorted(by: { ($0.1.kind, $0.0) < ($1.1.kind, $1.0) }) {
                    out.append("    \(e.kind == "part_of" ? "·" : arrow) \(e.kind.padding(toLength: 10, withPad: " ", startingAt: 0)) \(c)   (seq \(e.firstSeq))")
                }
            }
            let counts = Dictionary(grouping: nodes.filter { $0.id != root }, by: \.kind).map { "\($0.value.count) \($0.key)" }.sorted()
            out.append("\(nodes.count - 1) nodes (\(counts.joined(separator: ", "))), \(edges.count) edges\(truncated ? ", cut at the limit" : "")")
            return out.joined(separator: "\n")
        }
    }

    /// Whether `child` is an attempt of the run or task `root`.
    static func isMember(_ child: String, of root: String) -> Bool {
        guard child.hasPrefix("attempt:") else { return false }
        if root.hasPrefix("run:") { return child.hasPrefix("attempt:" + root.dropFirst(4) + "/") }
        if root.hasPrefix("task:"), let a = AttemptRef(node: child) { return "task:\(a.dag)/\(a.task)" == root }
        return false
    }

    static func label(_ id: String) -> String {
        guard let colon = id.firstIndex(of: ":") else { return id }
        let rest = String(id[id.index(after: colon)...])
        return id.hasPrefix("value:") ? String(rest.prefix(12)) + "…" : rest
    }

    static func dotQuote(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
    static func mermaidEscape(_ s: String) -> String { s.replacingOccurrences(of: "\"", with: "#quot;") }
    static func dotShape(_ kind: String) -> String {
        switch kind {
        case "dataset": return "cylinder"
        case "chunk": return "folder"
        case "value": return "note"
        case "run": return "doubleoctagon"
        case "task": return "component"
        default: return "box"
        }
    }
}
