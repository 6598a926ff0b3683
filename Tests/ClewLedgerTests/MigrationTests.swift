import ClewCore
import Crypto
import Foundation
import Testing

@testable import ClewLedger

/// `clew migrate` on the ledger of format 1 in Fixtures/ledger-format1 (written by the format 1 code).
@Suite("Migration from format 1")
struct MigrationTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fixtures/ledger-format1")
        .standardized
    static let oldRoot = "5ad16424f54727956caf7a35ad3e5a515e7fd9a163797080494e425d3a1cc38e"

    /// A copy of the fixture ledger in a fresh directory.
    func copyOfFixture() throws -> (URL, URL) {
        let dir = temporaryDirectory()
        let url = dir.appendingPathComponent("ledger")
        try FileManager.default.copyItem(at: Self.fixture.appendingPathComponent("ledger"), to: url)
        return (dir, url)
    }

    static func bridge(_ facts: MigrationFacts) throws -> NewEvent {
        NewEvent(type: "ledger.migrated", stream: "ledger", actor: "test", payload: try JSONEncoder().encode(facts))
    }

    @Test("a format 1 ledger is refused on open with a pointer to clew migrate")
    func refusedOnOpen() throws {
        let (dir, url) = try copyOfFixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: LedgerError.self) { try Ledger.open(at: url) }
        #expect(error?.code == .unsupportedFormat)
        #expect(error?.message.contains("clew migrate") == true, "\(error?.message ?? "")")
    }

    @Test("migrate keeps every event and seq, records the old root and checkpoints, and the new log verifies")
    func migrates() async throws {
        let (dir, url) = try copyOfFixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        // What format 1 holds, read by the legacy reader (every record checked against its tag).
        let legacy = try LegacyLog(path: url.appendingPathComponent("log").path)
        var dictionaries: [UInt32: ZstdDictionary] = [:]
        let old = try legacy.records(from: 1, limit: .max, dictionaries: &dictionaries).map(\.event)
        let oldCheckpoints = try legacy.storedCheckpoints()
        legacy.close()
        #expect(old.count == 1_202)
        #expect(old.contains { $0.payload.count > 6_000 }, "the blob-stored payload")
        #expect(oldCheckpoints.map(\.treeSize) == [601, 1_202])

        let key = CheckpointSigningKey.generate()
        let report = try await Ledger.migrate(at: url, bridge: Self.bridge, signingKey: key)
        #expect(report.facts.oldTreeSize == 1_202)
        #expect(report.facts.oldRoot == Self.oldRoot)
        #expect(report.facts.oldCheckpoints == oldCheckpoints)
        #expect(report.bridgeSeq == 1_203 && report.treeSize == 1_203)
        #expect(FileManager.default.fileExists(atPath: url.appendingPathComponent("log.format1/data.mdb").path))

        let ledger = try Ledger.open(at: url)
        defer { ledger.close() }
        #expect(ledger.id == report.facts.newLedger && ledger.id != report.facts.oldLedger)
        let migrated = try ledger.events(1...1_202)
        #expect(migrated == old)
        let bridge = try #require(try ledger.event(at: 1_203))
        let facts = try JSONDecoder().decode(MigrationFacts.self, from: bridge.payload)
        #expect(facts.oldRoot == Self.oldRoot)
        // The old checkpoints still check: signed by the old key, for the old root at their sizes.
        let oldKey = try CheckpointPublicKey(contentsOf: Self.fixture.appendingPathComponent("checkpoint.pub"))
        #expect(facts.oldCheckpoints.allSatisfy { $0.hasValidSignature(trusting: oldKey) })
        #expect(facts.oldCheckpoints.last?.rootHash == Self.oldRoot)
        // The new log verifies, with its new checkpoint, and proves events as before.
        let verified = try ledger.verify(trusting: key.publicKey)
        #expect(verified.isValid, "\(verified.problems)")
        #expect(verified.events == 1_203 && verified.checkpointsChecked == 1 && verified.blobsChecked == 1)
        #expect(try ledger.inclusionProof(seq: 777).verify())
        #expect(try ledger.consistencyProof(from: 601).verify())
        // And it takes new events.
        #expect(try await ledger.append(NewEvent(type: "x.after", stream: "s")) == 1_204)
    }

    @Test("migrating a ledger of format 2 is refused; a tampered old record stops the migration with the old ledger unchanged")
    func refusals() async throws {
        let fresh = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: fresh) }
        try Ledger.create(at: fresh.appendingPathComponent("l")).close()
        let error = await #expect(throws: LedgerError.self) {
            try await Ledger.migrate(at: fresh.appendingPathComponent("l"), bridge: Self.bridge)
        }
        #expect(error?.message.contains("nothing to migrate") == true)

        let (dir, url) = try copyOfFixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = url.appendingPathComponent("log/data.mdb")
        let original = try Data(contentsOf: file)
        // Change one checkpoint's root: its signature no longer covers it.
        var bytes = original
        let at = try #require(bytes.firstRange(of: Data(#""root_hash":"5ad1"#.utf8)))
        bytes[at.upperBound - 1] = UInt8(ascii: "0")
        try bytes.write(to: file)
        let refused = await #expect(throws: LedgerError.self) { try await Ledger.migrate(at: url, bridge: Self.bridge) }
        #expect(refused?.code == .verificationFailed, "\(refused?.message ?? "")")
        #expect(try Data(contentsOf: file) == bytes, "the old log is untouched")
        #expect(!FileManager.default.fileExists(atPath: url.appendingPathComponent("log.format1").path))
        #expect(throws: LedgerError.self) { try Ledger.open(at: url) }
    }
}
