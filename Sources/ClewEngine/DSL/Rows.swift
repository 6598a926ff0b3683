public import ClewModel
import Foundation

/// A collection read from a parent task's output (an array), whose helpers (`map`, `filter`, `group`)
/// keep which input rows produced each output row. Return it with ``TaskContext/output(_:)`` to record
/// that lineage as a step (kind `rows`), which `clew trace --row` follows across tasks.
///
/// ```swift
/// Op("by_customer", after: "orders") { ctx in
///     let orders = try ctx.rows("orders", as: Order.self)
///     let totals = orders.filter { $0.amount > 0 }
///         .group(by: \.customer) { customer, rows in Total(customer: customer, amount: rows.map(\.amount).reduce(0, +)) }
///     return try ctx.output(totals)
/// }
/// ```
public struct Rows<Element> {
    /// The rows.
    public let elements: [Element]
    /// Which source rows made each row.
    public let origin: RowOrigin
    /// The parent task the rows were read from, and its output's digest.
    public let source: RowSource?

    /// Rows with no lineage tracking (the same helpers, for comparison or when lineage is not wanted).
    public init(untracked elements: [Element]) {
        self.elements = elements
        origin = .untracked
        source = nil
    }

    /// Source rows, each its own origin.
    public init(_ elements: [Element], source: RowSource? = nil) {
        self.elements = elements
        origin = .identity(count: elements.count)
        self.source = source
    }

    init(elements: [Element], origin: RowOrigin, source: RowSource?) {
        self.elements = elements
        self.origin = origin
        self.source = source
    }

    public var count: Int { elements.count }

    /// Each row transformed; row i still comes from the source rows of row i.
    public func map<T>(_ transform: (Element) throws -> T) rethrows -> Rows<T> {
        Rows<T>(elements: try elements.map(transform), origin: origin, source: source)
    }

    /// The rows for which `isIncluded` holds, each keeping its source rows.
    public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> Rows<Element> {
        var kept: [Element] = []
        guard case .untracked = origin else {
            var index: [Int32] = []
            for (i, e) in elements.enumerated() where try isIncluded(e) {
                kept.append(e)
                index.append(Int32(truncatingIfNeeded: i))
            }
            return Rows(elements: kept, origin: compose(select: index), source: source)
        }
        for e in elements where try isIncluded(e) { kept.append(e) }
        return Rows(elements: kept, origin: .untracked, source: source)
    }

    /// One row per distinct key (in order of first appearance), made by `aggregate` from the group's rows;
    /// it comes from the source rows of every member.
    public func group<Key: Hashable, T>(by key: (Element) throws -> Key, _ aggregate: (Key, [Element]) throws -> T) rethrows -> Rows<T> {
        let tracked: Bool
        if case .untracked = origin { tracked = false } else { tracked = true }
        var slot: [Key: Int] = [:]
        var keys: [Key] = []
        var values: [[Element]] = []
        // Each row's group, in one flat array; the groups' member lists are laid out from it afterwards.
        var slotOfRow: [Int32] = []
        if tracked { slotOfRow.reserveCapacity(elements.count) }
        for e in elements {
            let k = try key(e)
            let s: Int
            if let existing = slot[k] {
                s = existing
            } else {
                s = keys.count
                slot[k] = s
                keys.append(k)
                values.append([])
            }
            values[s].append(e)
            if tracked { slotOfRow.append(Int32(truncatingIfNeeded: s)) }
        }
        var out: [T] = []
        out.reserveCapacity(keys.count)
        for (s, k) in keys.enumerated() { out.append(try aggregate(k, values[s])) }
        guard tracked else { return Rows<T>(elements: out, origin: .untracked, source: source) }
        return Rows<T>(elements: out, origin: compose(groups: slotOfRow, count: keys.count), source: source)
    }

    /// This origin followed by a selection of its rows.
    private func compose(select index: [Int32]) -> RowOrigin {
        switch origin {
        case .identity, .untracked: return .select(index)
        case .select(let inner): return .select(index.map { inner[Int($0)] })
        case .groups(let offsets, let inner):
            var o: [Int32] = [0]
            var flat: [Int32] = []
            for i in index {
                flat.append(contentsOf: inner[Int(offsets[Int(i)])..<Int(offsets[Int(i) + 1])])
                o.append(Int32(flat.count))
            }
            return .groups(offsets: o, index: flat)
        }
    }

    /// This origin followed by grouping its rows (`slots[i]`: row i's group): a counting sort into offsets
    /// and one flat member array, each member mapped to its own source rows.
    private func compose(groups slots: [Int32], count: Int) -> RowOrigin {
        var offsets = [Int32](repeating: 0, count: count + 1)
        switch origin {
        case .identity, .untracked, .select:
            for s in slots { offsets[Int(s) + 1] &+= 1 }
            for g in 0..<count { offsets[g + 1] &+= offsets[g] }
            var next = offsets
            var flat = [Int32](repeating: 0, count: slots.count)
            if case .select(let inner) = origin {
                for (i, s) in slots.enumerated() {
                    flat[Int(next[Int(s)])] = inner[i]
                    next[Int(s)] &+= 1
                }
            } else {
                for (i, s) in slots.enumerated() {
                    flat[Int(next[Int(s)])] = Int32(truncatingIfNeeded: i)
                    next[Int(s)] &+= 1
                }
            }
            return .groups(offsets: offsets, index: flat)
        case .groups(let o, let inner):
            var members = [[Int32]](repeating: [], count: count)
            for (i, s) in slots.enumerated() { members[Int(s)].append(contentsOf: inner[Int(o[i])..<Int(o[i + 1])]) }
            var flat: [Int32] = []
            for (g, m) in members.enumerated() {
                flat.append(contentsOf: m)
                offsets[g + 1] = Int32(truncatingIfNeeded: flat.count)
            }
            return .groups(offsets: offsets, index: flat)
        }
    }
}

extension TaskContext {
    /// The output of parent task `task` (an array) as ``Rows``, each row its own origin.
    public func rows<T: Decodable>(_ task: String, as type: T.Type = T.self) throws -> Rows<T> {
        let elements = try input(task, as: [T].self)
        return Rows(elements, source: inputs[task].map { RowSource(task: task, digest: $0.digest) })
    }

    /// The admitted chunk of `dataset` (a file holding a JSON array) as ``Rows``, each row its own origin.
    public func rows<T: Decodable>(chunk dataset: String, as type: T.Type = T.self) throws -> Rows<T> {
        guard let chunk = chunk(dataset), let url = chunk.url else {
            throw TaskContextError("task '\(taskID)' has no admitted chunk of \(dataset) with a file")
        }
        let elements = try JSONDecoder().decode([T].self, from: Data(contentsOf: url))
        return Rows(elements, source: RowSource(dataset: dataset, chunk: chunk.key, digest: chunk.digest ?? ""))
    }

    /// Records the rows' lineage as a step (kind `rows`, name `rows`) and returns the rows, to be the task's
    /// output: `return try ctx.output(totals)`.
    public func output<T>(_ rows: Rows<T>) throws -> [T] {
        if case .untracked = rows.origin { return rows.elements }
        let record = RowLineageRecord(source: rows.source, rows: rows.count, origin: rows.origin)
        let value = try RecordedValue(record, name: "rows")
        let step = try nextStep()
        sink.variable(step: step, name: "rows", kind: StepKind.rows, value: value)
        return rows.elements
    }
}
