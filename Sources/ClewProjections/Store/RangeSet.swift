/// A set of integers stored as sorted, disjoint, non-adjacent closed ranges: a million chunks in one status
/// are one range when their ordinals are contiguous.
///
/// The ranges are kept in blocks of at most ``blockLimit``, so a range inserted or split in the middle of a
/// set of many ranges shifts one block, not every range after it. A chunk set with scattered failures has
/// a range per failure; at 100M events (datasets of 12M chunks) one flat array made every such insert a
/// copy of the set's tail, 0.54 µs per event of a rebuild (docs/benchmarks.md).
public struct RangeSet: Sendable {
    /// Never an empty block; the ranges of block b all come before those of block b + 1.
    private var blocks: [[ClosedRange<UInt64>]] = []

    /// The most ranges a block holds; a fuller one is split in two.
    static let blockLimit = 256

    public init() {}

    public init(ranges: [ClosedRange<UInt64>]) {
        for r in ranges { insert(r) }
    }

    /// The ranges in order (a copy: ``forEachRange(_:)`` reads them in place, and can stop early).
    public var ranges: [ClosedRange<UInt64>] { Array(blocks.joined()) }

    /// How many ranges there are.
    public var rangeCount: Int { blocks.reduce(0) { $0 + $1.count } }

    /// Calls `body` with each range in order until it returns false.
    public func forEachRange(_ body: (ClosedRange<UInt64>) throws -> Bool) rethrows {
        for block in blocks {
            for r in block where try !body(r) { return }
        }
    }

    public var isEmpty: Bool { blocks.isEmpty }
    public var count: UInt64 { blocks.reduce(0) { $0 + $1.reduce(0) { $0 + ($1.upperBound - $1.lowerBound + 1) } } }

    /// The block and index of the first range whose upper bound is >= x (`blocks.count`, 0 when none is).
    private func position(reaching x: UInt64) -> (block: Int, index: Int) {
        var lo = 0
        var hi = blocks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if blocks[mid][blocks[mid].count - 1].upperBound < x { lo = mid + 1 } else { hi = mid }
        }
        guard lo < blocks.count else { return (blocks.count, 0) }
        let block = blocks[lo]
        var i = 0
        var j = block.count
        while i < j {
            let mid = (i + j) / 2
            if block[mid].upperBound < x { i = mid + 1 } else { j = mid }
        }
        return (lo, i)
    }

    public func contains(_ x: UInt64) -> Bool {
        let (b, i) = position(reaching: x)
        return b < blocks.count && blocks[b][i].contains(x)
    }

    public mutating func insert(_ x: UInt64) { insert(x...x) }

    public mutating func insert(_ r: ClosedRange<UInt64>) {
        var lo = r.lowerBound
        var hi = r.upperBound
        // Ranges touching or overlapping [lo, hi] (adjacent ones merge too), from (b, i) to (eb, ei).
        let (b, i) = position(reaching: lo == 0 ? 0 : lo - 1)
        guard b < blocks.count else {
            if blocks.isEmpty || blocks[blocks.count - 1].count >= Self.blockLimit {
                blocks.append([lo...hi])
            } else {
                blocks[blocks.count - 1].append(lo...hi)
            }
            return
        }
        var eb = b
        var ei = i
        while eb < blocks.count {
            let next = blocks[eb][ei]
            guard hi == .max || next.lowerBound <= hi + 1 else { break }
            lo = min(lo, next.lowerBound)
            hi = max(hi, next.upperBound)
            ei += 1
            if ei == blocks[eb].count {
                eb += 1
                ei = 0
            }
        }
        if eb == b {
            if ei == i {
                blocks[b].insert(lo...hi, at: i)
            } else {
                blocks[b][i] = lo...hi
                blocks[b].removeSubrange((i + 1)..<ei)
            }
        } else {
            // The merged ranges run past block b: b keeps what came before them and the merged range,
            // the blocks they covered go, and the block they ended in loses what they took of it.
            if eb < blocks.count { blocks[eb].removeFirst(ei) }
            blocks[b].removeSubrange(i...)
            blocks[b].append(lo...hi)
            blocks.removeSubrange((b + 1)..<eb)
            if b + 1 < blocks.count, blocks[b + 1].isEmpty { blocks.remove(at: b + 1) }
        }
        splitIfFull(b)
    }

    public mutating func remove(_ x: UInt64) {
        let (b, i) = position(reaching: x)
        guard b < blocks.count, blocks[b][i].contains(x) else { return }
        let r = blocks[b][i]
        switch (r.lowerBound < x, x < r.upperBound) {
        case (true, true):
            blocks[b][i] = r.lowerBound...(x - 1)
            blocks[b].insert((x + 1)...r.upperBound, at: i + 1)
            splitIfFull(b)
        case (true, false):
            blocks[b][i] = r.lowerBound...(x - 1)
        case (false, true):
            blocks[b][i] = (x + 1)...r.upperBound
        case (false, false):
            blocks[b].remove(at: i)
            if blocks[b].isEmpty { blocks.remove(at: b) }
        }
    }

    private mutating func splitIfFull(_ b: Int) {
        guard blocks[b].count > Self.blockLimit else { return }
        let half = blocks[b].count / 2
        let tail = Array(blocks[b][half...])
        blocks[b].removeSubrange(half...)
        blocks.insert(tail, at: b + 1)
    }

    /// The gaps of this set inside `bounds`.
    public func complement(in bounds: ClosedRange<UInt64>) -> [ClosedRange<UInt64>] {
        var out: [ClosedRange<UInt64>] = []
        var walk = GapWalk(in: bounds)
        forEachRange { r in
            let (gap, more) = walk.feed(r)
            if let gap { out.append(gap) }
            return more
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

extension RangeSet: Equatable {
    /// The same ranges, however they are split in blocks.
    public static func == (a: RangeSet, b: RangeSet) -> Bool {
        a.rangeCount == b.rangeCount && a.blocks.joined().elementsEqual(b.blocks.joined())
    }
}
