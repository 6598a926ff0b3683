import ClewCore
import Crypto
import Foundation
import Testing
@testable import ClewLedger

@Suite("Append and read")
struct AppendReadTests {
    @Test("single and batched appends get consecutive seqs and read back exactly")
    func roundTrip() async throws {
        try await withTemporaryLedger { ledger, _ in
            let one = try await ledger.append(sampleEvent(0))
            #expect(one == 1)
            let batch = try await ledger.append(contentsOf: (1..<10).map { sampleEvent($0) })
            #expect(batch == 2..<11)
            #expect(try ledger.lastSeq == 10)
            for i in 0..<10 {
                let e = try #require(try ledger.event(at: UInt64(i + 1)))
                let expected = sampleEvent(i)
                #expect(e.seq == UInt64(i + 1))
                #expect(e.type == expected.type)
                #expect(e.stream == expected.stream)
                #expect(e.actor == expected.actor)
                #expect(e.timestampMicros == expected.timestampMicros)
                #expect(e.payload == expected.payload)
                #expect(e.schemaVersion == 1)
            }
            #expect(try ledger.event(at: 11) == nil)
            #expect(try ledger.event(at: 0) == nil)
        }
    }

    @Test("an empty batch appends nothing")
    func emptyBatch() async throws {
        try await withTemporaryLedger { ledger, _ in
            let r = try await ledger.append(contentsOf: [])
            #expect(r.isEmpty)
            #expect(try ledger.lastSeq == 0)
        }
    }

    @Test("scan visits ranges in order and stops when asked")
    func scanRanges() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(contentsOf: (0..<100).map { sampleEvent($0) })
            #expect(try ledger.events(10...19).map(\.seq) == Array(10...19))
            #expect(try ledger.events(95...500).map(\.seq) == Array(95...100))
            #expect(try ledger.events(1...100, limit: 3).map(\.seq) == [1, 2, 3])
            var seen: [UInt64] = []
            try ledger.scan { e in
                seen.append(e.seq)
                return e.seq < 42
            }
            #expect(seen == Array(1...42))
        }
    }

    @Test("the stream index returns exactly a stream's events, in order")
    func streamIndex() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(contentsOf: (0..<60).map { sampleEvent($0) })
            let stream = sampleEvent(1).stream
            let events = try ledger.events(inStream: stream)
            #expect(events.count == 20)
            #expect(events.allSatisfy { $0.stream == stream })
            #expect(events.map(\.seq) == events.map(\.seq).sorted())
            #expect(try ledger.seqs(inStream: stream, after: events[4].seq).first == events[5].seq)
            #expect(try ledger.events(inStream: "run/none").isEmpty)
            let streams = try ledger.streams()
            #expect(streams.count == 3)
            #expect(streams.map(\.events).reduce(0, +) == 60)
        }
    }

    @Test("invalid events are rejected with the field named, and nothing of the batch is written")
    func invalidInput() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(sampleEvent(0))
            let cases: [(NewEvent, String)] = [
                (NewEvent(type: "", stream: "s"), "type"),
                (NewEvent(type: "t", stream: ""), "stream"),
                (NewEvent(type: "t", stream: String(repeating: "x", count: 256)), "stream"),
                (NewEvent(type: "t\n", stream: "s"), "type"),
                (NewEvent(type: "t", stream: "s", actor: "a\u{85}b"), "actor"),
            ]
            for (bad, field) in cases {
                let error = await #expect(throws: LedgerError.self) {
                    try await ledger.append(contentsOf: [sampleEvent(1), bad, sampleEvent(2)])
                }
                #expect(error?.code == .invalidInput)
                #expect(error?.message.contains(field) == true)
                #expect(error?.message.contains("event 2 of 3") == true)
            }
            #expect(try ledger.lastSeq == 1)
        }
    }

    @Test("concurrent appenders are grouped without gaps or duplicates")
    func concurrentAppends() async throws {
        try await withTemporaryLedger { ledger, _ in
            let ranges = try await withThrowingTaskGroup(of: [Range<UInt64>].self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var mine: [Range<UInt64>] = []
                        for i in 0..<25 {
                            mine.append(try await ledger.append(contentsOf: [sampleEvent(worker * 100 + i), sampleEvent(worker * 100 + i)]))
                        }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let seqs = ranges.flatMap { Array($0) }.sorted()
            #expect(seqs == Array(1...400))
            #expect(ranges.allSatisfy { $0.count == 2 })
            // Each batch's two events are consecutive and identical in payload.
            for r in ranges {
                let pair = try ledger.events(r.lowerBound...r.upperBound - 1)
                #expect(pair[0].payload == pair[1].payload)
            }
            #expect(try ledger.verify().isValid)
        }
    }

    @Test("large payloads go to the blob table, deduplicated, and read back intact")
    func blobs() async throws {
        try await withTemporaryLedger { ledger, _ in
            var rng = SystemRandomNumberGenerator()
            let noise = (0..<6_000).map { _ in String(UInt32.random(in: 0...UInt32.max, using: &rng), radix: 36) }
            let big = Data(#"{"rows":[\#(noise.map { "\"\($0)\"" }.joined(separator: ","))]}"#.utf8)
            let event = NewEvent(type: "value.produced", stream: "run/big/1", payload: big)
            try await ledger.append(contentsOf: [event, event, sampleEvent(3)])
            #expect(try ledger.event(at: 1)?.payload == big)
            #expect(try ledger.event(at: 2)?.payload == big)
            let stats = try ledger.stats()
            #expect(stats.blobs == 1)
            // The records themselves stay small.
            #expect(stats.eventTableBytes < 3 * 4096)
            let report = try ledger.verify()
            #expect(report.isValid)
            #expect(report.blobsChecked == 2)
        }
    }

    @Test("a zstd dictionary is trained from the log and old records stay readable")
    func dictionaryTraining() async throws {
        var options = Ledger.Options()
        options.dictionaryTrainingPoints = [500, 1_500]
        try await withTemporaryLedger(options: options) { ledger, _ in
            for start in stride(from: 0, to: 2_000, by: 250) {
                try await ledger.append(contentsOf: (start..<start + 250).map { sampleEvent($0) })
                ledger.writer.waitForIdle()
            }
            let stats = try ledger.stats()
            #expect(stats.dictionaries == 2)
            #expect(try ledger.events(1...2_000).map { $0.payload } == (0..<2_000).map { sampleEvent($0).payload })
            #expect(try ledger.verify().isValid)
        }
    }

    @Test("events keep envelope fields from a newer writer through a read and re-write")
    func unknownFieldsSurvive() async throws {
        try await withTemporaryLedger { ledger, _ in
            var future = sampleEvent(7).draft(withUnknown: [0x78, 0x2a, 0xa2, 0x01, 0x03, 0x61, 0x62, 0x63])  // field 15 = 42, field 20 = "abc"
            future.type = "future.type.v9"
            try await ledger.append(future)
            let read = try #require(try ledger.event(at: 1))
            #expect(read.unknownFields == [0x78, 0x2a, 0xa2, 0x01, 0x03, 0x61, 0x62, 0x63])
            #expect(read.type == "future.type.v9")
            try await ledger.append(read.draft)
            let again = try #require(try ledger.event(at: 2))
            #expect(again.unknownFields == read.unknownFields)
            #expect(again.payload == read.payload)
            #expect(again.timestampMicros == read.timestampMicros)
        }
    }

    @Test("an inline payload's SHA-256 is left out of the stored envelope and computed again; with unknown fields it is stored")
    func impliedDigest() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(sampleEvent(1).draft(withUnknown: [0x78, 0x2a]))
            try await ledger.append(sampleEvent(2))
            let stored = try ledger.store.env.read { txn in
                var reader = BlockReader(store: ledger.store, txn: txn)
                return try (UInt64(1)...2).map { seq in
                    let i = try #require(try reader.locate(seq))
                    return (reader.spans[i].state, reader.withStoredEnvelope(i) { Array($0) }, reader.withEnvelope(i) { Array($0) })
                }
            }
            // With unknown fields after field 8, the envelope is stored whole.
            #expect(stored[0].0 == .inline && stored[0].1 == stored[0].2)
            // Without, it is stored without its last 34 bytes: field 8, the payload's SHA-256.
            let digest = Array(SHA256.hash(data: sampleEvent(2).payload))
            #expect(stored[1].0 == .inlineDigestImplied)
            #expect(stored[1].2 == stored[1].1 + [0x42, 0x20] + digest)
            for seq: UInt64 in 1...2 {
                let canonical = try ledger.canonicalEvent(seq: seq)
                #expect(canonical.leafHash.hex == (try ledger.inclusionProof(seq: seq).leafHash))
            }
            #expect(try ledger.canonicalEvent(seq: 2).payloadSHA256 == digest.hex)
            #expect(try ledger.event(at: 2)?.payload == sampleEvent(2).payload)
            #expect(try ledger.verify().isValid)
        }
    }

    @Test("follow yields new events as they are committed")
    func follow() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(sampleEvent(0))
            let collected = Task {
                var seqs: [UInt64] = []
                for try await e in ledger.follow(after: 0, pollInterval: .seconds(5)) {
                    seqs.append(e.seq)
                    if seqs.count == 4 { break }
                }
                return seqs
            }
            try await Task.sleep(for: .milliseconds(100))
            try await ledger.append(contentsOf: [sampleEvent(1), sampleEvent(2)])
            try await Task.sleep(for: .milliseconds(50))
            try await ledger.append(sampleEvent(3))
            #expect(try await collected.value == [1, 2, 3, 4])
        }
    }

    @Test("compare-and-append: of concurrent appenders that read the same stream state, exactly one appends; the rest are told the stream's last seq")
    func compareAndAppend() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(sampleEvent(0, stream: "other"))
            let lease = "lease/sales/2026-11-21"
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<6 {
                    group.addTask {
                        do {
                            try await ledger.append(contentsOf: [sampleEvent(i, stream: lease)], ifStream: lease, lastSeqIs: 0)
                            return true
                        } catch let error as LedgerError where error.code == .conflict {
                            #expect(error.message.contains("last event is seq"))
                            return false
                        }
                    }
                }
                var won = 0
                for try await o in group where o { won += 1 }
                return won
            }
            #expect(outcomes == 1)
            let seqs = try ledger.seqs(inStream: lease)
            #expect(seqs.count == 1)
            #expect(try ledger.lastSeq == 2)
            // From what it reads now, the next append succeeds; a stale expectation does not.
            try await ledger.append(contentsOf: [sampleEvent(7, stream: lease)], ifStream: lease, lastSeqIs: seqs[0])
            await #expect(throws: LedgerError.self) {
                try await ledger.append(contentsOf: [sampleEvent(8, stream: lease)], ifStream: lease, lastSeqIs: seqs[0])
            }
            #expect(try ledger.seqs(inStream: lease).count == 2)
            #expect(try ledger.verify().isValid)
        }
    }

    @Test("compare-and-append over several streams: every expectation must hold; the first that does not is named, and nothing is written")
    func compareAndAppendSeveral() async throws {
        try await withTemporaryLedger { ledger, _ in
            let fence = "attempt/etl/r1/load/1", dataset = "dataset/sales"
            let claim = try await ledger.append(sampleEvent(0, stream: fence))
            let chunk = try await ledger.append(sampleEvent(1, stream: dataset))
            // Both hold: the batch (into a third stream) lands.
            let both = [StreamExpectation(stream: fence, lastSeq: claim), StreamExpectation(stream: dataset, lastSeq: chunk)]
            try await ledger.append(contentsOf: [sampleEvent(2, stream: "run/etl/r1")], expecting: both)
            // The dataset moves: the same expectations fail on it, named, and nothing is written.
            try await ledger.append(sampleEvent(3, stream: dataset))
            let before = try ledger.lastSeq
            await #expect {
                try await ledger.append(contentsOf: [sampleEvent(4, stream: "run/etl/r1")], expecting: both)
            } throws: { error in
                (error as? LedgerError)?.code == .conflict && (error as? LedgerError)?.stream == dataset
            }
            #expect(try ledger.lastSeq == before)
            // The lease is expired: the fence fails first.
            try await ledger.append(sampleEvent(5, stream: fence))
            await #expect {
                try await ledger.append(contentsOf: [sampleEvent(6, stream: "run/etl/r1")], expecting: both)
            } throws: { error in
                (error as? LedgerError)?.stream == fence
            }
            #expect(try ledger.seqs(inStream: "run/etl/r1").count == 1)
        }
    }
}

extension NewEvent {
    func draft(withUnknown bytes: [UInt8]) -> NewEvent {
        var copy = self
        copy.unknownFields = bytes
        return copy
    }
}
