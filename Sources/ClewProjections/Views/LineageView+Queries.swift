import ClewLedger
import ClewModel
import Foundation

/// Which way to follow lineage.
public enum LineageDirection: String, Sendable, Codable {
    /// Where it came from (backward edges).
    case up
    /// What it reached (forward edges).
    case down
}

extension Views {
    // MARK: lineage

    /// Edges reachable from `node` following data flow (`used`, `generated`) and triggers up to `depth`
    /// steps; membership edges (`part_of`) are listed but not followed. As of a seq: edges first seen by then.
    ///
    /// Values are content-addressed, so identical bytes made in different runs are one node. Values flow
    /// only along a run's own edges, so a trace that enters a value from an attempt of one run leaves it
    /// only through attempts of that run (a value where the trace starts is followed into every run).
    public func lineage(node: String, direction: LineageDirection, depth: Int = 10, asOf: UInt64? = nil, limit: Int = 10_000) throws -> [LineageEdge] {
        try read(.lineage) { store, txn in
            let table = direction == .down ? "fwd" : "bwd"
            var out: [LineageEdge] = []
            var seenEdges: Set<LineageEdge> = []
            // Frontier entries: a node, and for a value entered from an attempt, that attempt's run prefix.
            var seen: Set<String> = [node]
            var frontier: [(String, String?)] = [(node, nil)]
            var level = 0
            while !frontier.isEmpty, level < depth, out.count < limit {
                var next: [(String, String?)] = []
                for (n, scope) in frontier {
                    let prefix = KeyBuilder().string(n).bytes
                    try ViewTxn.scan(txn, store.table(table), prefix: prefix, view: "lineage", table: table) { k, v in
                        let other = String(decoding: k[prefix.count...], as: UTF8.self)
                        let seq = v.bigEndianUInt64Value
                        let kind = EdgeKind(rawValue: v[8]) ?? .used
                        if let asOf, seq > asOf { return true }
                        if let scope, other.hasPrefix("attempt:"), !other.hasPrefix(scope) { return true }
                        let edge = direction == .down
                            ? LineageEdge(from: n, to: other, kind: kind.description, firstSeq: seq)
                            : LineageEdge(from: other, to: n, kind: kind.description, firstSeq: seq)
                        guard seenEdges.insert(edge).inserted else { return true }
                        out.append(edge)
                        if kind != .partOf {
                            let nextScope = other.hasPrefix("value:") ? Self.runScope(of: n) : nil
                            if seen.insert(nextScope.map { other + "\u{0}" + $0 } ?? other).inserted { next.append((other, nextScope)) }
                        }
                        return out.count < limit
                    }
                }
                frontier = next
                level += 1
            }
            return out
        }
    }

    /// The direct neighbours of `node` one way whose ids start with `prefix` (`task:`, `dataset:` …): a
    /// range scan of exactly those keys, so a dataset's million chunks are not read to find its jobs.
    public func lineageNeighbors(of node: String, direction: LineageDirection, prefix: String, limit: Int = 10_000) throws -> [LineageEdge] {
        try read(.lineage) { store, txn in
            let table = direction == .down ? "fwd" : "bwd"
            let base = KeyBuilder().string(node).bytes
            var out: [LineageEdge] = []
            try ViewTxn.scan(txn, store.table(table), prefix: base + Array(prefix.utf8), view: "lineage", table: table) { k, v in
                let other = String(decoding: k[base.count...], as: UTF8.self)
                let kind = (EdgeKind(rawValue: v[8]) ?? .used).description
                out.append(direction == .down
                    ? LineageEdge(from: node, to: other, kind: kind, firstSeq: v.bigEndianUInt64Value)
                    : LineageEdge(from: other, to: node, kind: kind, firstSeq: v.bigEndianUInt64Value))
                return out.count < limit
            }
            return out
        }
    }

    /// `attempt:DAG/RUN/` of an attempt node (the prefix of its run's attempts), else nil.
    static func runScope(of node: String) -> String? {
        guard node.hasPrefix("attempt:") else { return nil }
        var parts = node.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4 else { return nil }
        parts.removeLast(2)
        return parts.joined(separator: "/") + "/"
    }

    /// Whether the lineage graph has node `id`.
    public func lineageNodeExists(_ id: String) throws -> Bool {
        try read(.lineage) { store, txn in
            let key = Array(id.utf8)
            return try key.withUnsafeBytes { try txn.get(store.table("nodes"), $0) } != nil
        }
    }

    /// Lineage node ids starting with `prefix`, in order, at most `limit`.
    public func lineageNodes(prefix: String, limit: Int = 100) throws -> [String] {
        try read(.lineage) { store, txn in
            var out: [String] = []
            try ViewTxn.scan(txn, store.table("nodes"), prefix: Array(prefix.utf8), view: "lineage", table: "nodes") { k, _ in
                out.append(String(decoding: k, as: UTF8.self))
                return out.count < limit
            }
            return out
        }
    }

    /// How many nodes the lineage graph has.
    public func lineageNodeCount() throws -> Int {
        try read(.lineage) { store, txn in
            var n = 0
            try ViewTxn.scan(txn, store.table("nodes"), prefix: [], view: "lineage", table: "nodes") { _, _ in
                n += 1
                return true
            }
            return n
        }
    }

    /// The physical floor of a trace: one read transaction scanning the backward edges of `nodes` without
    /// decoding anything (benchmarks compare traces with it). Returns the entries read.
    public func lineageReadFloor(_ nodes: [String]) throws -> Int {
        try read(.lineage) { store, txn in
            var n = 0
            for node in nodes {
                try ViewTxn.scan(txn, store.table("bwd"), prefix: KeyBuilder().string(node).bytes, view: "lineage", table: "bwd") { _, _ in
                    n += 1
                    return true
                }
            }
            return n
        }
    }
}
