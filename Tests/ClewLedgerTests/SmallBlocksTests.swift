import Foundation
import Testing

@testable import ClewLedger

/// A ledger whose blocks were written before blocks filled an overflow page (Fixtures/ledger-small-blocks,
/// written by 2d92598): it reads and verifies as it was, and appends to it write blocks of the new size and
/// Merkle nodes in its own key layout.
@Suite("Ledgers of the smaller blocks")
struct SmallBlocksTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Fixtures/ledger-small-blocks/ledger").standardized
    static let root = "e11503be46cf2b1d3f19e7360b9d448f0d3864345a5095407f8ba711ac8a9d36"

    /// The number of events of each block, in log order.
    static func blockSizes(_ ledger: Ledger) throws -> [Int] {
        try ledger.store.env.read { txn in
            try txn.withCursor(ledger.store.blocks) { c in
                var sizes: [Int] = []
                var e = try c.first()
                while let entry = e {
                    sizes.append(try Block.parse(entry.value, first: entry.key.bigEndianUInt64).count)
                    e = try c.next()
                }
                return sizes
            }
        }
    }

    @Test("a ledger of the smaller blocks verifies with its old root and checkpoint, and appends to it write blocks of the new size")
    func readsAndGrows() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ledger")
        try FileManager.default.copyItem(at: Self.fixture, to: url)
        let ledger = try Ledger.open(at: url)
        defer { ledger.close() }

        // Its Merkle nodes were written by level and index: it keeps that layout.
        #expect(ledger.store.nodeKeys == .levelIndex)
        let old = try Self.blockSizes(ledger)
        #expect(old.reduce(0, +) == 900)
        #expect(old.count >= 8 && old.allSatisfy { $0 <= 128 }, "the fixture holds the smaller blocks: \(old)")
        let before = try ledger.verify()
        #expect(before.isValid, "\(before.problems)")
        #expect(before.events == 900 && before.rootHash == Self.root && before.checkpointsChecked == 1)

        // The same 900 events appended again, in one batch, by this code.
        let events = try ledger.events(1...900)
        try await ledger.append(contentsOf: events.map(\.draft))
        let sizes = try Self.blockSizes(ledger)
        #expect(sizes.reduce(0, +) == 1_800)
        let new = sizes.dropFirst(old.count)
        // Without a dictionary (the first is trained at 1,000 events) the old blocks held 11-27 of these
        // events; the new ones grow to ~100 as the block target follows the compression ratio.
        #expect(new.count * 2 < old.count && new.max()! > 3 * old.max()!, "the appended blocks are of the new size: \(Array(new)) against \(old)")

        let after = try ledger.verify()
        #expect(after.isValid, "\(after.problems)")
        #expect(after.events == 1_800 && after.checkpointsChecked == 1)
        #expect(try ledger.root(atSize: 900).hash.hex == Self.root)
        let again = try ledger.events(901...1_800)
        #expect(again.count == 900)
        for (a, b) in zip(events, again) {
            #expect(a.type == b.type && a.stream == b.stream && a.actor == b.actor && a.payload == b.payload && a.timestampMicros == b.timestampMicros)
        }
        #expect(try ledger.seqs(inStream: events[0].stream).count == 2 * events.filter { $0.stream == events[0].stream }.count)

        // A new ledger of the same 1,800 events keeps its nodes in the order they complete; its roots
        // and proofs are the same, node for node.
        #expect(ledger.store.nodeKeys == .levelIndex)
        let copy = try Ledger.create(at: dir.appendingPathComponent("copy"))
        defer { copy.close() }
        #expect(copy.store.nodeKeys == .completion)
        try await copy.append(contentsOf: try ledger.events(1...1_800).map(\.draft))
        for size in [16, 900, 1_024, 1_800] as [UInt64] {
            #expect(try copy.root(atSize: size).hash == ledger.root(atSize: size).hash, "root at \(size)")
        }
        for seq in [1, 17, 450, 901, 1_800] as [UInt64] {
            #expect(try copy.inclusionProof(seq: seq) == ledger.inclusionProof(seq: seq), "inclusion of \(seq)")
        }
        #expect(try copy.consistencyProof(from: 900, to: 1_800) == ledger.consistencyProof(from: 900, to: 1_800))
        #expect(try copy.verify().isValid)
    }
}
