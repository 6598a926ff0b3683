import ClewPostgres
import ClewTestSupport
import Foundation
import Testing

@testable import ClewLedger

@Suite("PostgreSQL shared log: erasure and checkpoints")
struct SharedErasureTests {
    /// The record `clew erase` appends (its payload's shape does not matter to the ledger).
    static func record(_ seqs: [UInt64], type: String = Ledger.erasureRecordType) -> NewEvent {
        NewEvent(type: type, stream: "ledger", actor: "dpo", payload: Data(#"{"seqs":\#(seqs),"reason":"request 17"}"#.utf8))
    }

    @Test("an erasure on one host removes the payloads from the server's rows and from every replica, old and new; every root and proof holds")
    func erasureReachesEveryHost() async throws {
        try await withTwoHosts { a, b in
            var events = (0..<12).map { event($0, stream: "run/etl/\($0 % 3)") }
            events[4].payload = Data(("{\"blob\":\"" + String(repeating: "x", count: 4_000) + "\"}").utf8)  // stored as a blob
            try await a.append(contentsOf: events)
            try await b.pull()
            let before = try a.root()
            let checkpointKey = CheckpointSigningKey.generate()
            try await a.checkpoint(signedWith: checkpointKey)

            let report = try await a.erasePayloads(of: [2, 5, 9]) { Self.record([2, 5, 9]) }
            #expect(report.erased == [2, 5, 9])
            #expect(report.recordSeq == 13)
            #expect(report.blobsDeleted == 1)
            #expect(report.bytes > 0)

            // The erasing host at once; the other when it copies the record.
            for host in [a, b] {
                try await host.pull()
                for seq: UInt64 in [2, 5, 9] {
                    let e = try #require(try host.event(at: seq))
                    #expect(e.payloadErased, "seq \(seq)")
                    #expect(e.payload.isEmpty)
                }
                #expect(try host.event(at: 3)?.payloadErased == false)
                #expect(try host.root(atSize: 12).hash == before.hash)
                let verified = try host.verify()
                #expect(verified.isValid, "\(verified.problems)")
                #expect(verified.erasedPayloads == 3)
            }
            #expect(try a.root().hash == b.root().hash)

            let shared = try await b.verifyShared()
            #expect(shared.isValid, "\(shared.problems)")
            #expect(shared.erasedPayloads == 3)
            #expect(shared.checkpointsChecked == 1)
        }
    }

    @Test("a replica created after an erasure copies the erased rows, and the checkpoints signed on other hosts")
    func newReplicaAfterErasure() async throws {
        try await TestServer.withDatabase { url in
            try await withTemporaryDirectory { dir in
                let a = try await openHost(url, dir.appendingPathComponent("a"), create: true)
                defer { a.close() }
                try await a.append(contentsOf: (0..<8).map { event($0) })
                let key = CheckpointSigningKey.generate()
                let signed = try await a.checkpoint(signedWith: key)
                #expect(signed.treeSize == 8)
                _ = try await a.erasePayloads(of: [1, 7]) { Self.record([1, 7]) }
                try await a.append(contentsOf: (8..<10).map { event($0) })
                let later = try await a.checkpoint(signedWith: key)

                let c = try await openHost(url, dir.appendingPathComponent("c"))
                defer { c.close() }
                #expect(try c.lastSeq == 11)
                #expect(try c.event(at: 1)?.payloadErased == true)
                #expect(try c.event(at: 7)?.payloadErased == true)
                #expect(try c.event(at: 2)?.payloadErased == false)
                #expect(try c.root().hash == a.root().hash)
                #expect(try c.checkpoints() == [signed, later])
                let verified = try c.verify(trusting: key.publicKey)
                #expect(verified.isValid, "\(verified.problems)")
                #expect(verified.checkpointsChecked == 2)
                #expect(verified.erasedPayloads == 2)
            }
        }
    }

    @Test("bad erasures and checkpoints are refused with nothing changed; rows and checkpoints changed on the server are caught")
    func refusedAndTampered() async throws {
        try await TestServer.withDatabase { url in
            try await withTemporaryDirectory { dir in
                let a = try await openHost(url, dir.appendingPathComponent("a"), create: true)
                defer { a.close() }
                try await a.append(contentsOf: (0..<6).map { event($0) })
                let log = try #require(a.sharedLog)

                await #expect { _ = try await a.erasePayloads(of: [3, 99]) { Self.record([3, 99]) } } throws: {
                    ($0 as? LedgerError)?.code == .outOfRange && "\($0)".contains("no event 99")
                }
                await #expect { _ = try await a.erasePayloads(of: [3]) { Self.record([3], type: "run.note") } } throws: {
                    ($0 as? LedgerError)?.code == .invalidInput && "\($0)".contains(Ledger.erasureRecordType)
                }
                // The server refuses a seq beyond the log on its own (another client's bug).
                let stray = try Ledger.sharedRecords([Self.record([40])], now: 1_800_000_000_000_000)
                await #expect { _ = try await log.append(stray, batch: UUID(), expecting: [], erasing: [40]) } throws: {
                    ($0 as? LedgerError)?.code == .outOfRange
                }
                #expect(try await log.head().size == 6)
                #expect(try a.event(at: 3)?.payloadErased == false)

                let key = CheckpointSigningKey.generate()
                var beyond = try await a.checkpoint(signedWith: key)
                beyond.treeSize = 50
                await #expect { try await log.storeCheckpoint(beyond) } throws: { ($0 as? LedgerError)?.code == .outOfRange }
                #expect(try await a.verifyShared().isValid)

                // A payload removed on the server with no erasure recording it.
                try await TestServer.query(url, "UPDATE clew_events SET payload = NULL WHERE seq = 2")
                // A checkpoint's root changed on the server.
                try await TestServer.query(
                    url, "UPDATE clew_checkpoints SET checkpoint = replace(checkpoint, '\"root_hash\":\"', '\"root_hash\":\"00') WHERE tree_size = 6")
                let report = try await a.verifyShared()
                #expect(report.problems.contains { $0.contains("event 2's payload is gone, but no erasure's record names it") }, "\(report.problems)")
                #expect(report.problems.contains { $0.contains("checkpoint at size 6") }, "\(report.problems)")
                // This host's replica, copied before, still holds and proves the payload.
                #expect(try a.event(at: 2)?.payloadErased == false)
                #expect(try a.verify().isValid)
            }
        }
    }

    @Test("a shared log created before erasure and shared checkpoints gains their tables when a host connects")
    func olderLogUpgraded() async throws {
        try await TestServer.withDatabase { url in
            try await withTemporaryDirectory { dir in
                let a = try await openHost(url, dir.appendingPathComponent("a"), create: true)
                try await a.append(contentsOf: (0..<4).map { event($0) })
                a.close()
                try await TestServer.query(url, "DROP TABLE clew_erasures, clew_checkpoints")
                try await TestServer.query(url, "ALTER TABLE clew_events ALTER COLUMN payload SET NOT NULL")
                let b = try await openHost(url, dir.appendingPathComponent("b"))
                defer { b.close() }
                _ = try await b.erasePayloads(of: [2]) { Self.record([2]) }
                try await b.checkpoint(signedWith: CheckpointSigningKey.generate())
                let report = try await b.verifyShared()
                #expect(report.isValid, "\(report.problems)")
                #expect(report.erasedPayloads == 1)
                #expect(report.checkpointsChecked == 1)
            }
        }
    }
}
