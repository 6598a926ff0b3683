import ClewLedger
import ClewModel
import Foundation

extension Views {
    // MARK: --as-of

    /// The seq `text` names: a seq number (`1234`) or a UTC time (`2026-11-21T10:00:00Z`, with optional
    /// fraction, or a date): the last event recorded at or before it.
    public func seq(asOf text: String) throws -> UInt64 {
        let last = try ledger.lastSeq
        if let n = UInt64(text) {
            guard n <= last else {
                throw ViewError(.invalidInput, view: nil, "--as-of \(text): the log has \(last) events")
            }
            return n
        }
        guard let micros = Self.parseTime(text) else {
            throw ViewError(.invalidInput, view: nil, "--as-of \(text): not a seq number or a UTC time such as 2026-11-21T10:00:00Z")
        }
        // Event times follow the log up to the skew between writers (a task's time is taken before its
        // event is appended): binary search, then look ahead through the skew window for later events
        // that are still at or before the time.
        var lo: UInt64 = 0
        var hi = last
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2
            if let e = try ledger.event(at: mid), e.timestampMicros <= micros { lo = mid } else { hi = mid - 1 }
        }
        if lo < last {
            try ledger.scan((lo + 1)...last) { e in
                if e.timestampMicros <= micros { lo = e.seq }
                return e.timestampMicros <= micros + Self.clockSkewMicros
            }
        }
        return lo
    }

    /// How far out of order event times may be (writers stamp events before the append).
    static let clockSkewMicros: Int64 = 10_000_000

    package static func parseTime(_ text: String) -> Int64? {
        if let m = PartitionKey.parse(text) { return m }
        // 2026-11-21T10:00:00.123456Z
        guard text.hasSuffix("Z"), let dot = text.firstIndex(of: ".") else { return nil }
        guard let base = PartitionKey.parse(String(text[..<dot]) + "Z") else { return nil }
        let fraction = text[text.index(after: dot)..<text.index(before: text.endIndex)]
        guard !fraction.isEmpty, fraction.count <= 6, fraction.allSatisfy(\.isNumber), let f = Int64(fraction) else { return nil }
        var scale: Int64 = 1
        for _ in fraction.count..<6 { scale *= 10 }
        return base + f * scale
    }
}
