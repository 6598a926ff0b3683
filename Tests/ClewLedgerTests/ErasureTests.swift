import ClewCore
import Foundation
import Testing

@testable import ClewLedger

@Suite("Erasure")
struct ErasureTests {
    static func record(_ seqs: [UInt64]) -> NewEvent {
        NewEvent(type: "ledger.payloads_erased", stream: "ledger", actor: "dpo", payload: Data(#"{"seqs":\#(seqs),"reason":"request 17"}"#.utf8))
    }

    @Test("erased payloads leave every leaf, proof and checkpoint as it was; verify counts them; a shared blob goes with its last user")
    func eraseKeepsProofs() async throws {
        try await withTemporaryLedger { ledger, _ in
            let big = Data((#"{"blob":""# + String(repeating: "x", count: 2_000) + #""}"#).utf8)
            var events = (0..<300).map { sampleEvent($0) }
            events[49] = NewEvent(type: "value.stored", stream: "value/a", payload: big)
            events[199] = NewEvent(type: "value.stored", stream: "value/b", payload: big)  // the same blob
            try await ledger.append(contentsOf: events)
            let key = CheckpointSigningKey.generate()
            let checkpoint = try await ledger.checkpoint(signedWith: key)
            let before = try ledger.inclusionProof(seq: 137, treeSize: 300)
            let canonical = try ledger.canonicalEvent(seq: 137)
            let neighbour = try #require(try ledger.event(at: 138))

            let report = try await ledger.erasePayloads(of: [137, 50]) { Self.record([50, 137]) }
            #expect(report.erased == [50, 137] && report.recordSeq == 301)
            #expect(report.blobsDeleted == 0, "event 200 still keeps its payload in the blob")
            #expect(report.bytes == sampleEvent(136).payload.count)

            let erased = try #require(try ledger.event(at: 137))
            #expect(erased.payloadErased && erased.payload.isEmpty)
            #expect(erased.stream == sampleEvent(136).stream && erased.type == sampleEvent(136).type)
            #expect(try ledger.event(at: 138) == neighbour)
            #expect(try ledger.event(at: 200)?.payload == big)
            #expect(try ledger.canonicalEvent(seq: 137) == canonical)
            let after = try ledger.inclusionProof(seq: 137, treeSize: 300)
            #expect(after.leafHash == before.leafHash && after.rootHash == checkpoint.rootHash && after.verify())
            #expect(try ledger.consistencyProof(from: 300).verify())
            let verified = try ledger.verify(trusting: key.publicKey)
            #expect(verified.isValid, "\(verified.problems)")
            #expect(verified.erasedPayloads == 2 && verified.checkpointsChecked == 1)

            // The blob goes once no event keeps its payload there; erasing again changes nothing more.
            let second = try await ledger.erasePayloads(of: [200, 137]) { Self.record([137, 200]) }
            #expect(second.blobsDeleted == 1)
            let again = try ledger.verify()
            #expect(again.isValid && again.erasedPayloads == 3 && again.blobsChecked == 0, "\(again.problems)")
            #expect(try ledger.stats().blobs == 0)
        }
    }

    @Test("erasing an event the log does not have is refused, and nothing is recorded or removed")
    func refused() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(contentsOf: (0..<10).map { sampleEvent($0) })
            let error = await #expect(throws: LedgerError.self) { try await ledger.erasePayloads(of: [3, 11]) { Self.record([3, 11]) } }
            #expect(error?.code == .outOfRange)
            #expect(try ledger.lastSeq == 10)
            #expect(try ledger.event(at: 3)?.payloadErased == false)
        }
    }
}
