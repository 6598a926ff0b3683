import ClewModel

/// The keys moved into a spill of ``DeferredInserts``, as a Bloom filter: it says a key is certainly
/// not there for nearly every key that is not, and never for one that is. A lookup that misses memory
/// then skips the spill's B-tree unless the filter lets the key through.
///
/// Why: a fold asks for each new lineage node whether its `ids` home is taken (a miss) and then adds it
/// (a second miss). At 100M events the spill holds tens of millions of random keys, and those probes,
/// nearly all misses, took 3.7% of a rebuild's processor time late in the fold against 1.6% at 10M: the
/// largest part of the rebuild's growth from 10M to 100M (docs/benchmarks.md).
///
/// Split blocks (as Parquet's): a key sets one bit in each of the eight words of one 64-byte block, so
/// a query reads one cache line. The filter grows by levels, each twice the capacity of the one before,
/// so it need not know how many keys will come; a query asks every level (five at 100M events), so
/// false positives add up: 2.9% of absent keys get through eight levels (the unit test). Memory: 12 bits
/// a key of capacity, at most twice the keys added (~75 MB for the 40M `ids` of 100M events).
struct SpillFilter {
    /// Bits a key is given in a level: 12 (about 0.5% false positives a level when full).
    static let bitsPerKey = 12
    static let wordsPerBlock = 8
    /// Odd constants that pick a key's bit in each word of its block (Parquet's split-block salts).
    private static let salts: [UInt32] = [0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31]

    private struct Level {
        var words: [UInt64]
        var blocks: Int
        var capacity: Int
        var count = 0

        init(capacity: Int) {
            self.capacity = capacity
            blocks = max(1, (capacity * SpillFilter.bitsPerKey + 511) / 512)
            words = [UInt64](repeating: 0, count: blocks * SpillFilter.wordsPerBlock)
        }
    }

    private var levels: [Level] = []
    private let firstCapacity: Int

    /// A filter whose first level takes `capacity` keys (later ones twice the last).
    init(capacity: Int) {
        firstCapacity = max(capacity, 64)
    }

    /// Keys added.
    var count: Int { levels.reduce(0) { $0 + $1.count } }

    /// Bytes the filter holds.
    var bytes: Int { levels.reduce(0) { $0 + $1.words.count * 8 } }

    /// A well-mixed hash of `key` (SplitMix64's first output from it as the seed): keys may be near one
    /// another (homes of one kind of node probe the next slot), which must not land in neighbouring blocks.
    private static func hash(_ key: UInt64) -> UInt64 {
        var mix = SplitMix64(seed: key)
        return mix.nextValue()
    }

    /// The first word of the key's block in a level of `blocks` blocks, and the key's 32 bits that pick
    /// its bits.
    @inline(__always)
    private static func place(_ h: UInt64, blocks: Int) -> (start: Int, bits: UInt32) {
        let block = Int(((h >> 32) &* UInt64(blocks)) >> 32)
        return (block * wordsPerBlock, UInt32(truncatingIfNeeded: h))
    }

    @inline(__always)
    private static func bit(_ bits: UInt32, _ i: Int) -> UInt64 {
        UInt64(1) << UInt64((bits &* salts[i]) >> 26)
    }

    /// Adds `key`.
    mutating func add(_ key: UInt64) {
        if levels.isEmpty || levels[levels.count - 1].count >= levels[levels.count - 1].capacity {
            levels.append(Level(capacity: levels.last.map { $0.capacity * 2 } ?? firstCapacity))
        }
        let last = levels.count - 1
        let (start, bits) = Self.place(Self.hash(key), blocks: levels[last].blocks)
        levels[last].words.withUnsafeMutableBufferPointer { w in
            for i in 0..<Self.wordsPerBlock { w[start + i] |= Self.bit(bits, i) }
        }
        levels[last].count += 1
    }

    /// False when `key` was certainly never added; true when it was, and for a few keys that were not.
    func mayContain(_ key: UInt64) -> Bool {
        let h = Self.hash(key)
        for level in levels {
            let (start, bits) = Self.place(h, blocks: level.blocks)
            let found = level.words.withUnsafeBufferPointer { w in
                (0..<Self.wordsPerBlock).allSatisfy { w[start + $0] & Self.bit(bits, $0) != 0 }
            }
            if found { return true }
        }
        return false
    }
}
