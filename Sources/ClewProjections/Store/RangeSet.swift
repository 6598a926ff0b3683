/// A set of integers stored as sorted, disjoint, non-adjacent closed ranges: a million chunks in one status
/// are one range when their ordinals are contiguous.
public struct RangeSet: Equatable, Sendable {
    public private(set) var ranges: [ClosedRange<UInt64>] = []

    public init() {}

    public init(ranges: [ClosedRange<UInt64>]) {
        for r in ranges { insert(r) }
    }

    public var isEmpty: Bool { ranges.isEmpty }
    public var count: UInt64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound + 1) } }

    /// Index of the first range whose upper bound is >= x.
    private func firstIndex(reaching x: UInt64) -> Int {
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func contains(_ x: UInt64) -> Bool {
        let i = firstIndex(reaching: x)
        return i < ranges.count && ranges[i].contains(x)
    }

    public mutating func insert(_ x: UInt64) { insert(x...x) }

    public mutating func insert(_ r: ClosedRange<UInt64>) {
        var lo = r.lowerBound
        var hi = r.upperBound
        // Ranges touching or overlapping [lo, hi] (adjacent ones merge too).
        var i = firstIndex(reaching: lo == 0 ? 0 : lo - 1)
        var j = i
        while j < ranges.count, hi == .max || ranges[j].lowerBound <= hi + 1 {
            lo = min(lo, ranges[j].lowerBound)
            hi = max(hi, ranges[j].upperBound)
            j += 1
        }
        if i > ranges.count { i = ranges.count }
        ranges.replaceSubrange(i..<j, with: [lo...hi])
    }

    public mutating func remove(_ x: UInt64) {
        let i = firstIndex(reaching: x)
        guard i < ranges.count, ranges[i].contains(x) else { return }
        let r = ranges[i]
        var parts: [ClosedRange<UInt64>] = []
        if r.lowerBound < x { parts.append(r.lowerBound...(x - 1)) }
        if x < r.upperBound { parts.append((x + 1)...r.upperBound) }
        ranges.replaceSubrange(i...i, with: parts)
    }

    /// The gaps of this set inside `bounds`.
    public func complement(in bounds: ClosedRange<UInt64>) -> [ClosedRange<UInt64>] {
        var out: [ClosedRange<UInt64>] = []
        var walk = GapWalk(in: bounds)
        for r in ranges {
            let (gap, more) = walk.feed(r)
            if let gap { out.append(gap) }
            if !more { break }
        }
        if let tail = walk.tail { out.append(tail) }
        return out
    }

    /// The gaps that sorted, disjoint ranges, fed one at a time, leave inside `bounds`: so a set stored
    /// as records is read only as far as the gaps wanted.
    struct GapWalk {
        let bounds: ClosedRange<UInt64>
        private var next: UInt64
        private var closed = false

        init(in bounds: ClosedRange<UInt64>) {
            self.bounds = bounds
            next = bounds.lowerBound
        }

        /// The gap before `r` inside the bounds, if any, and whether a later range can still matter.
        mutating func feed(_ r: ClosedRange<UInt64>) -> (gap: ClosedRange<UInt64>?, more: Bool) {
            if closed || r.lowerBound > bounds.upperBound { return (nil, false) }
            if r.upperBound < next { return (nil, true) }
            let gap = r.lowerBound > next ? next...(r.lowerBound - 1) : nil
            if r.upperBound >= bounds.upperBound {
                closed = true
                return (gap, false)
            }
            next = r.upperBound + 1
            return (gap, true)
        }

        /// The gap after the last range fed, up to the end of the bounds.
        var tail: ClosedRange<UInt64>? { !closed && next <= bounds.upperBound ? next...bounds.upperBound : nil }
    }
}
