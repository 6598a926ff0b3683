import ClewLedger
import ClewModel
import Foundation
import Testing
@testable import ClewProjections

@Suite("Views: damage is found and repaired from the log")
struct ViewFaultTests {
    static func dataFile(_ ledger: Ledger, _ view: ViewName) throws -> URL {
        let link = ledger.directory.appendingPathComponent("views").appendingPathComponent(view.rawValue)
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
        return ledger.directory.appendingPathComponent("views").appendingPathComponent(target).appendingPathComponent("data.mdb")
    }

    @Test("open views that meet an erasure (by any process) fold again without the erased payloads")
    func erasureRebuilds() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            let notices = Notices()
            let views = try Views.open(ledger: ledger, options: notices.options())
            let before = try views.digests()
            // A value the values view indexed, erased as `clew erase` does.
            let value = try #require(try ledger.events(1...(try ledger.lastSeq)).first { $0.type == EventType.variableRecorded })
            _ = try await ledger.erasePayloads(of: [value.seq]) {
                NewEvent(
                    type: EventType.payloadsErased, stream: "ledger", actor: "test",
                    payload: PayloadsErased(seqs: [value.seq], stream: nil, reason: "test").payloadData)
            }
            try views.catchUp()
            #expect(notices.all.contains { $0.contains("payloads were erased") }, "\(notices.all)")
            #expect(try views.digests() != before)
            #expect(try views.verify().allSatisfy(\.equal))
        }
    }

    @Test("deleted or truncated views are rebuilt on open with a notice naming them, and equal a fresh fold")
    func deletedAndTruncated() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            let fresh = try Views.open(ledger: ledger).digests()
            // The whole views directory gone.
            try FileManager.default.removeItem(at: ledger.directory.appendingPathComponent("views"))
            var notices = Notices()
            #expect(try Views.open(ledger: ledger, options: notices.options()).digests() == fresh)
            #expect(notices.all.contains { $0.contains("building them from the log") }, "\(notices.all)")
            // One view's generation directory gone (the symlink dangles).
            try FileManager.default.removeItem(at: try Self.dataFile(ledger, .lineage).deletingLastPathComponent())
            notices = Notices()
            #expect(try Views.open(ledger: ledger, options: notices.options()).digests() == fresh)
            #expect(notices.all == ["views: view lineage is missing; rebuilding lineage from the log (\(try ledger.lastSeq) events)"])
            // A truncated data file.
            for view in [ViewName.runs, .values] {
                let file = try Self.dataFile(ledger, view)
                let size = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as! Int
                #expect(truncate(file.path, off_t(size / 2)) == 0)
                notices = Notices()
                #expect(try Views.open(ledger: ledger, options: notices.options()).digests() == fresh)
                #expect(notices.all.count == 1 && notices.all[0].contains("rebuilding \(view.rawValue)"), "\(notices.all)")
            }
        }
    }

    @Test("flipped bytes anywhere in a views file never reach an answer: found on open, or harmless")
    func flippedBytes() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            let fresh = try Views.open(ledger: ledger).digests()
            var rng = SplitMix64(seed: 2026)
            var detected = 0
            for trial in 0..<40 {
                let view = ViewName.allCases[trial % 4]
                let file = try Self.dataFile(ledger, view)
                var bytes = try [UInt8](Data(contentsOf: file))
                // Past LMDB's two meta pages (page size 4096): flips there are LMDB's own recovery business.
                for _ in 0..<4 {
                    let at = 8192 + Int(rng.next(below: UInt64(bytes.count - 8192)))
                    bytes[at] ^= UInt8(1 << rng.next(below: 8))
                }
                try Data(bytes).write(to: file)
                let notices = Notices()
                let views = try Views.open(ledger: ledger, options: notices.options())
                if !notices.all.isEmpty { detected += 1 }
                // Whatever was hit, what the views now hold is a fresh fold of the log.
                #expect(try views.digests() == fresh, "trial \(trial) (\(view)): \(notices.all)")
            }
            #expect(detected == 40, "every flip is found by the seal, before LMDB reads a page (\(detected) of 40)")
        }
    }

    @Test("a flipped byte in a record is caught when read, even without the open-time scan, and repaired")
    func checksumOnRead() async throws {
        try await DemoLedger.withCopy { ledger, _ in
            let first = try Views.open(ledger: ledger)
            let truth = try first.runs(RunQuery(limit: 1000))
            first.close()
            let file = try Self.dataFile(ledger, .runs)
            var bytes = try [UInt8](Data(contentsOf: file))
            // A byte inside a run record as stored (its binary form, found by its bytes, wherever the
            // table's pages lie): the last byte of its run id.
            func occurrences(_ what: [UInt8]) -> [Int] {
                bytes.indices.filter { i in bytes[i..<min(i + what.count, bytes.count)].elementsEqual(what) }
            }
            let record = try #require(truth.first { occurrences($0.encoded()).count == 1 })
            let stored = record.encoded()
            let at = try #require(occurrences(stored).first)
            var w = RecordWriter(optionals: RunRecord.optionals)
            w.string(record.dag)
            w.string(record.run)
            bytes[at + w.bytes.count - 1] ^= 0x20
            try Data(bytes).write(to: file)
            let notices = Notices()
            var options = notices.options(scanLimit: 0)
            options.checkSeals = false
            let views = try Views.open(ledger: ledger, options: options)
            #expect(notices.all.isEmpty, "not scanned on open")
            let verify = try views.verify([.runs])
            #expect(verify.first?.equal == false)
            #expect(verify.first?.firstDifference?.contains("table runs") == true, "\(verify)")
            #expect(try views.runs(RunQuery(limit: 1000)) == truth)
            #expect(notices.all.contains { $0.contains("fails its checksum") && $0.contains("rebuilding runs") }, "\(notices.all)")
            views.close()  // one Views per ledger per process: LMDB must not open an environment twice
            let after = try Views.openForVerify(ledger: ledger).verify().filter { !$0.equal }
            #expect(after.isEmpty, "\(after)")
        }
    }

    @Test("views from another ledger, or ahead of the log, are not trusted")
    func foreignViews() async throws {
        try await DemoLedger.withCopy { ledger, dir in
            _ = try Views.open(ledger: ledger)
            let other = try await prefixLedger(of: ledger, through: 100, in: dir)
            defer { other.close() }
            try FileManager.default.copyItem(
                at: ledger.directory.appendingPathComponent("views"), to: other.directory.appendingPathComponent("views"))
            let notices = Notices()
            let views = try Views.open(ledger: other, options: notices.options())
            #expect(notices.all.count == 4 && notices.all.allSatisfy { $0.contains("belongs to ledger") }, "\(notices.all)")
            #expect(views.checkpoints().values.allSatisfy { $0 == 100 })
        }
    }
}
