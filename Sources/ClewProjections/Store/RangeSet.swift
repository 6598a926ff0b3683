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
        var next = bounds.lowerBound
        for r in ranges where r.upperBound >= bounds.lowerBound {
            if r.lowerBound > bounds.upperBound { break }
            if r.lowerBound > next { out.append(next...(r.lowerBound - 1)) }
            if r.upperBound == .max { return out }
            next = max(next, r.upperBound + 1)
        }
        if next <= bounds.upperBound { out.append(next...bounds.upperBound) }
        return out
    }
}
