import ClewModel
import Foundation

/// Records each binding of a DSL closure as a step of the attempt, with its source line, with no
/// calls in the body: `let`/`var` declarations with a value, `for` loop variables and assignments to
/// names (`x = …`, `x += …`), in the closure's own body and the blocks nested in it.
///
/// ```swift
/// Op("total", after: "extract", body: #traced { ctx in
///     let orders = try ctx.input("extract", as: [Order].self)
///     var total = 0.0
///     for order in orders { total += order.amount }   // first 3 runs, then the last value and count
///     return total
/// })
/// ```
/// A binding that runs many times (a loop) is recorded for its first ``TracedSites/samples`` runs,
/// then once more with its last value and how many times it ran when the closure returns or throws.
/// Values that are `Encodable` are recorded as JSON, others by their description. Nested closures and
/// functions are left as written (trace them with a `#traced` of their own).
@freestanding(expression)
public macro traced<Output>(
    _ body: @escaping @Sendable (TaskContext) async throws -> Output
) -> @Sendable (TaskContext) async throws -> Output = #externalMacro(module: "ClewMacros", type: "TracedMacro")

extension TaskContext {
    /// The sites a `#traced` closure records (what the macro expands to; not called directly).
    public func traced(sites: [(String, String)]) -> TracedSites { TracedSites(context: self, sites: sites) }

    /// Records a traced binding: the value as JSON when it is `Encodable`, else its description.
    func recordTraced(_ name: String, _ value: Any, source: String, count: Int?) {
        let recorded: RecordedValue
        if let encodable = value as? any Encodable, let v = try? RecordedValue(encodable, name: name) {
            recorded = v
        } else if let v = try? RecordedValue(String(describing: value), name: name) {
            recorded = v
        } else {
            return
        }
        // After the attempt ended there is nothing to record to: the binding itself goes on.
        guard let step = try? nextStep() else { return }
        sink.variable(step: step, name: name, kind: StepKind.variable, value: recorded, source: source, count: count)
    }
}

/// The bindings of one run of a `#traced` closure: how many times each ran, and the last value of
/// those that ran more often than ``samples`` (recorded by ``finish()``).
public struct TracedSites {
    /// How many runs of one binding are recorded before the rest are summarized.
    public static let samples = 3

    @usableFromInline let context: TaskContext
    @usableFromInline let sites: [(String, String)]
    @usableFromInline var counts: [Int]
    @usableFromInline var last: [Any?]

    init(context: TaskContext, sites: [(String, String)]) {
        self.context = context
        self.sites = sites
        counts = Array(repeating: 0, count: sites.count)
        last = Array(repeating: nil, count: sites.count)
    }

    /// Binding `site` ran with `value`.
    @inlinable
    public mutating func hit<T>(_ site: Int, _ value: T) {
        counts[site] &+= 1
        if counts[site] <= Self.samples {
            record(site, value, count: nil)
        } else {
            last[site] = value
        }
    }

    @usableFromInline
    func record(_ site: Int, _ value: Any, count: Int?) {
        context.recordTraced(sites[site].0, value, source: sites[site].1, count: count)
    }

    /// Records the last value and count of each binding that ran more than ``samples`` times.
    public mutating func finish() {
        for site in counts.indices where counts[site] > Self.samples {
            if let value = last[site] { record(site, value, count: counts[site]) }
        }
    }
}
