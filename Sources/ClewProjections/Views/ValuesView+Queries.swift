import ClewLedger
import ClewModel
import Foundation

extension Views {
    // MARK: values

    /// Recorded values by name (and task: `dag/task` or a task name), matching `match`, in log order
    /// within a value. As of a seq: values recorded by then.
    public func values(name: String?, task: String? = nil, match: ValueMatch, asOf: UInt64? = nil, limit: Int = 100) throws -> [ValueHit] {
        try read(.values) { store, txn in
            var out: [ValueHit] = []
            let table: String
            var prefix: [UInt8]
            let taskFilter = task
            if case .digest(let d) = match {
                table = "by_digest"
                prefix = KeyBuilder().digest(d).bytes
            } else {
                guard let name else { throw ViewError(.invalidInput, view: "values", "a value search needs a name (or a digest)") }
                table = "by_name"
                prefix = KeyBuilder().string(ValuesProjection.indexed(name: name)).bytes
            }
            var start: [UInt8]? = nil
            var upper: [UInt8]? = nil
            switch match {
            case .equals(let v):
                guard let e = ValuesProjection.encode(v) else {
                    throw ViewError(.invalidInput, view: "values", "only numbers, strings and booleans are indexed by value; search records by digest")
                }
                prefix += e
            case .range(let lo, let hi):
                let base = prefix + [UInt8(ascii: "n")]
                start = base + KeyBuilder().double(lo ?? -.infinity).bytes
                upper = base + KeyBuilder().double(hi ?? .infinity).bytes + [0xff]
                prefix = base
            case .prefix(let p):
                prefix += [UInt8(ascii: "s")] + Array(p.utf8.prefix(ValuesProjection.stringKeyBytes))
            case .digest, .any:
                break
            }
            var runs = RunNumbers(store: store, txn: txn)
            try GroupedTable.scan(txn, store.table(table), prefix: prefix, from: start, view: "values", table: table) { k, v in
                if let upper, !Array(k).lexicographicallyPrecedes(upper) { return false }
                let seq = UnsafeRawBufferPointer(rebasing: k[(k.count - 8)...]).bigEndianUInt64Value
                if let asOf, seq > asOf { return true }
                var r = KeyReader(UnsafeRawBufferPointer(rebasing: k[..<(k.count - 8)]))
                let hit: ValueHit
                if table == "by_digest" {
                    hit = try ValuesProjection.decodeHit(v, seq: seq, digest: r.digest(), runs: &runs)
                } else {
                    let name = r.string()
                    hit = try ValuesProjection.decodeHit(
                        v, seq: seq, name: name, encoded: UnsafeRawBufferPointer(rebasing: k[(k.startIndex + r.offset)..<(k.count - 8)]),
                        runs: &runs)
                }
                if let t = taskFilter, hit.task != t, "\(hit.dag)/\(hit.task)" != t { return true }
                if case .equals(.string(let s)) = match, s.utf8.count > ValuesProjection.stringKeyBytes, hit.value != JSON.quote(s) { return true }
                out.append(hit)
                return out.count < limit
            }
            return out
        }
    }
}
