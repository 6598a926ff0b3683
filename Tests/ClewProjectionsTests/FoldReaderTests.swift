import ClewLedger
import ClewModel
import Foundation
import Synchronization
import Testing
@testable import ClewProjections

@Suite("Views: the fold's reader thread")
struct FoldReaderTests {
    struct Stop: Error, Equatable { var at: Int }

    static func reader(_ ledger: Ledger, batch: Int) -> FoldReader {
        FoldReader(ledger: ledger, batchEvents: batch) { _, _ in .all }
    }

    /// Seqs and a summary of each fact, batch by batch.
    static func collect(_ run: ((DecodedBatch) throws -> Void) throws -> Void) rethrows -> [[String]] {
        var out: [[String]] = []
        try run { batch in
            #expect(batch.headers.count == batch.facts.count)
            out.append(zip(batch.headers, batch.facts).map { "\($0.seq) \($0.type) \(String(describing: $1).prefix(60))" })
        }
        return out
    }

    @Test("batches read on the reader thread arrive in order and equal those read inline")
    func pipelinedEqualsInline() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            let last = try ledger.lastSeq
            #expect(last > 1_000)
            for batch in [1, 7, 500, Int(last) + 1] {
                let reader = Self.reader(ledger, batch: batch)
                let inline = try Self.collect { try reader.inline(2...last, body: $0) }
                let pipelined = try Self.collect { try reader.pipelined(2...last, ahead: 2, body: $0) }
                #expect(inline == pipelined, "batch \(batch)")
                #expect(inline.count == (Int(last) - 1 + batch - 1) / batch)
                #expect(inline.flatMap { $0 }.map { UInt64($0.prefix { $0 != " " })! } == Array(2...last))
            }
        }
    }

    @Test("a write that fails stops the reader thread, and the error is the write's")
    func writeErrorStopsTheReader() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            let last = try ledger.lastSeq
            let reader = Self.reader(ledger, batch: 10)
            var seen = 0
            #expect(throws: Stop(at: 3)) {
                try reader.pipelined(1...last, ahead: 4) { _ in
                    seen += 1
                    if seen == 3 { throw Stop(at: 3) }
                }
            }
            #expect(seen == 3)
            // The reader ended its read transactions: the ledger still reads and appends.
            let again = try Self.collect { try reader.pipelined(1...last, body: $0) }
            #expect(again.count == (Int(last) + 9) / 10)
            _ = try await ledger.append(contentsOf: [NewEvent(type: "test.after", stream: "test/after")])
            #expect(try ledger.lastSeq == last + 1)
        }
    }

    @Test("the handoff keeps order, hands over the producer's error after its items, and a cancel frees a producer waiting for room")
    func handoff() throws {
        let queue = Handoff<Int>(capacity: 2)
        let producer = Thread {
            for i in 0..<100 { _ = queue.put(i) }
            queue.finish(Stop(at: 100))
        }
        producer.start()
        var got: [Int] = []
        #expect(throws: Stop(at: 100)) {
            while let i = try queue.take() { got.append(i) }
        }
        #expect(got == Array(0..<100))

        let blocked = Handoff<Int>(capacity: 1)
        let puts = Mutex<[Bool]>([])
        let stuck = Thread {
            for i in 0..<3 { let ok = blocked.put(i); puts.withLock { $0.append(ok) } }
            blocked.finish(nil)
        }
        stuck.start()
        #expect(try blocked.take() == 0)
        blocked.cancelAndWait()  // returns only once the producer has finished
        let results = puts.withLock { $0 }
        #expect(results.first == true && results.last == false && results.count == 3, "\(results)")
    }
}
