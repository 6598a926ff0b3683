import ClewCore
import Foundation
import Testing

@testable import ClewLedger

@Suite("Backup and restore")
struct BackupTests {
    @Test("a backup taken while appends go on is a consistent prefix; restore verifies it and brings it back")
    func backupWhileAppending() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("live"))
        defer { ledger.close() }
        try await ledger.append(contentsOf: (0..<2_000).map { sampleEvent($0) })
        let key = CheckpointSigningKey.generate()
        try await ledger.checkpoint(signedWith: key)
        // Appends keep landing while the copy is taken.
        let writer = Task {
            for start in stride(from: 2_000, to: 12_000, by: 500) {
                try await ledger.append(contentsOf: (start..<start + 500).map { sampleEvent($0) })
            }
        }
        let report = try ledger.backup(to: dir.appendingPathComponent("copy"))
        try await writer.value
        #expect(report.treeSize >= 2_000 && report.treeSize <= 12_000)
        #expect(report.treeSize % 500 == 0, "a whole number of appends: \(report.treeSize)")
        // The copy's root is the live log's root at the same size: a prefix, not a mixture.
        #expect(try ledger.root(atSize: report.treeSize).hash.hex == report.rootHash)
        #expect(throws: LedgerError.self) { try ledger.backup(to: dir.appendingPathComponent("copy")) }

        let restored = try Ledger.restore(
            from: dir.appendingPathComponent("copy"), to: dir.appendingPathComponent("restored"), trusting: key.publicKey)
        #expect(restored.verify.isValid && restored.verify.events == report.treeSize)
        #expect(restored.trustedCheckpoint?.treeSize == 2_000)
        let back = try Ledger.open(at: dir.appendingPathComponent("restored"))
        defer { back.close() }
        #expect(back.id == ledger.id)
        #expect(try back.root().hash.hex == report.rootHash)
        #expect(try back.event(at: 1_999)?.payload == sampleEvent(1_998).payload)
        #expect(try await back.append(sampleEvent(0)) == report.treeSize + 1)
        // Restoring over a ledger is refused.
        let again = #expect(throws: LedgerError.self) {
            try Ledger.restore(from: dir.appendingPathComponent("copy"), to: dir.appendingPathComponent("restored"))
        }
        #expect(again?.code == .alreadyExists)
    }

    @Test("a backup with one flipped byte, or without a checkpoint by the trusted key, is refused and nothing is written")
    func refusals() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ledger = try Ledger.create(at: dir.appendingPathComponent("live"))
        try await ledger.append(contentsOf: (0..<300).map { sampleEvent($0) })
        try await ledger.checkpoint(signedWith: CheckpointSigningKey.generate())
        _ = try ledger.backup(to: dir.appendingPathComponent("copy"))
        let proof = try ledger.inclusionProof(seq: 137)
        ledger.close()

        let stranger = CheckpointSigningKey.generate().publicKey
        let untrusted = #expect(throws: LedgerError.self) {
            try Ledger.restore(from: dir.appendingPathComponent("copy"), to: dir.appendingPathComponent("r1"), trusting: stranger)
        }
        #expect(untrusted?.code == .verificationFailed)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("r1").path))

        // Event 137's hash tag (the first 4 bytes of its leaf hash) changed in the copy.
        let file = dir.appendingPathComponent("copy/log/data.mdb")
        var bytes = try Data(contentsOf: file)
        let tag = try #require(Hex.bytes(String(proof.leafHash.prefix(8))))
        let at = try #require(bytes.firstRange(of: Data(tag)))
        bytes[at.lowerBound] ^= 0x01
        try bytes.write(to: file)
        let damaged = #expect(throws: LedgerError.self) {
            try Ledger.restore(from: dir.appendingPathComponent("copy"), to: dir.appendingPathComponent("r2"))
        }
        #expect(damaged?.code == .verificationFailed)
        #expect(damaged?.message.contains("seq 137") == true, "\(damaged?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("r2").path))
    }
}
