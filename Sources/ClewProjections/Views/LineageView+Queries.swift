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
            var names = LineageNames(store: store, txn: txn)
            var out: [LineageEdge] = []
            var seenEdges: Set<LineageEdge> = []
            // Frontier entries: a node, and for a value entered from an attempt, that attempt's run prefix.
            var seen: Set<String> = [node]
            var frontier: [(String, String?)] = [(node, nil)]
            var level = 0
            while !frontier.isEmpty, level < depth, out.count < limit {
                var next: [(String, String?)] = []
                for (n, scope) in frontier {
                    guard let number = try names.number(of: n) else { continue }
                    let prefix = KeyBuilder().u64(number).bytes
                    try GroupedTable.scan(txn, store.table(table), prefix: prefix, view: "lineage", table: table) { k, v in
                        let e = try EdgeEntry.decode(key: k, value: v, table: table)
                        if let asOf, e.seq > asOf { return true }
                        let other = try names.id(of: e.other)
                        if let scope, other.hasPrefix("attempt:"), !other.hasPrefix(scope) { return true }
                        let edge = direction == .down
                            ? LineageEdge(from: n, to: other, kind: e.kind.description, firstSeq: e.seq)
                            : LineageEdge(from: other, to: n, kind: e.kind.description, firstSeq: e.seq)
                        guard seenEdges.insert(edge).inserted else { return true }
                        out.append(edge)
                        if e.kind != .partOf {
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

    /// The direct neighbours of `node` one way whose ids start with `prefix` (`task:`, `dataset:` …): for a
    /// kind's prefix a range scan of exactly those keys (neighbours sort by kind), so a dataset's million
    /// chunks are not read to find its jobs.
    public func lineageNeighbors(of node: String, direction: LineageDirection, prefix: String, limit: Int = 10_000) throws -> [LineageEdge] {
        try read(.lineage) { store, txn in
            let table = direction == .down ? "fwd" : "bwd"
            var names = LineageNames(store: store, txn: txn)
            guard let number = try names.number(of: node) else { return [] }
            let start = KeyBuilder().u64(number).bytes
            let kind = NodeKind(exactPrefix: prefix)
            var out: [LineageEdge] = []
            // Neighbours sort by kind: a kind's prefix reads exactly its edges.
            try GroupedTable.scan(txn, store.table(table), prefix: start + (kind.map { [$0.rawValue] } ?? []), view: "lineage", table: table) { k, v in
                let e = try EdgeEntry.decode(key: k, value: v, table: table)
                let other = try names.id(of: e.other)
                guard other.hasPrefix(prefix) else { return true }
                out.append(direction == .down
                    ? LineageEdge(from: node, to: other, kind: e.kind.description, firstSeq: e.seq)
                    : LineageEdge(from: other, to: node, kind: e.kind.description, firstSeq: e.seq))
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
            try LineageNames(store: store, txn: txn).number(of: id) != nil
        }
    }

    /// Lineage node ids starting with `prefix`, in order, at most `limit`.
    ///
    /// Numbers are not in id order, so this reads every node of the prefix's kind (every node when the
    /// prefix names no kind), except for values: their homes sort by digest, so `value:` and hex digits
    /// read only the values whose digests start with them, up to `limit` in digest order (where two
    /// digests' first 7 bytes are the same, the later one may come a place late).
    public func lineageNodes(prefix: String, limit: Int = 100) throws -> [String] {
        try read(.lineage) { store, txn in
            var names = LineageNames(store: store, txn: txn)
            var out: [String] = []
            let kind = NodeKind.prefixes.first { prefix.hasPrefix($0.0) }?.1
            if kind == .value, let (low, high) = NodeName.valueRange(prefix.dropFirst(NodeKind.value.prefix.count)) {
                // Digest order, and on past `high` along a run of taken homes (collisions move a value on).
                var last: UInt64?
                try GroupedTable.scan(txn, store.table("ids"), prefix: [NodeKind.value.rawValue], from: KeyBuilder().u64(low).bytes, view: "lineage", table: "ids") { k, v in
                    let home = k.bigEndianUInt64Value
                    if home > high, last.map({ home != $0 &+ 1 }) ?? true { return false }
                    last = home
                    let id = try names.id(of: NodeName.number(home: home, counter: v))
                    if id.hasPrefix(prefix) { out.append(id) }
                    return out.count < limit
                }
                return out.sorted()
            }
            try GroupedTable.scan(txn, store.table("names"), prefix: kind.map { [$0.rawValue] } ?? [], view: "lineage", table: "names") { k, v in
                let id = NodeName.id(number: k.bigEndianUInt64Value, stored: v)
                if id.hasPrefix(prefix) { out.append(id) }
                return true
            }
            return Array(out.sorted().prefix(limit))
        }
    }

    /// How many nodes the lineage graph has.
    public func lineageNodeCount() throws -> Int {
        try read(.lineage) { store, txn in Int(try NodeName.count(txn, store)) }
    }

    /// The physical floor of a trace: one read transaction scanning the backward edges of `nodes` without
    /// decoding them or naming their ends (benchmarks compare traces with it). Returns the edges read.
    public func lineageReadFloor(_ nodes: [String]) throws -> Int {
        try read(.lineage) { store, txn in
            var n = 0
            let names = LineageNames(store: store, txn: txn)
            for node in nodes {
                guard let number = try names.number(of: node) else { continue }
                try GroupedTable.scan(txn, store.table("bwd"), prefix: KeyBuilder().u64(number).bytes, view: "lineage", table: "bwd") { _, _ in
                    n += 1
                    return true
                }
            }
            return n
        }
    }
}

/// Node ids and their interned numbers in one read of the lineage view, each looked up once.
struct LineageNames {
    let store: ViewStore
    let txn: Transaction
    private var ids: [UInt64: String] = [:]

    init(store: ViewStore, txn: Transaction) {
        self.store = store
        self.txn = txn
    }

    /// The number of node `id`, nil when the graph has no such node.
    func number(of id: String) throws -> UInt64? {
        guard case .found(let n) = try NodeName(id).find(txn, store) else { return nil }
        return n
    }

    /// The id of node `number`.
    mutating func id(of number: UInt64) throws -> String {
        if let id = ids[number] { return id }
        guard let bytes = try GroupedTable.get(KeyBuilder().u64(number).bytes, txn, store.table("names"), view: "lineage", table: "names") else {
            throw ViewError(.corrupt, view: "lineage", "view lineage: an edge names node number \(number), which the view does not have")
        }
        let id = bytes.withUnsafeBytes { NodeName.id(number: number, stored: $0) }
        ids[number] = id
        return id
    }
}
