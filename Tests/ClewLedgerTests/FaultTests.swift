import ClewCore
import Foundation
import Testing
@testable import ClewLedger

@Suite("Faults and bad input")
struct FaultTests {
    @Test("a directory that is not a ledger is refused with a clear error")
    func notALedger() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: LedgerError.self) { try Ledger.open(at: dir) }
        #expect(error?.code == .notALedger)
        #expect(error?.message.contains("clew init") == true)
        let missing = #expect(throws: LedgerError.self) { try Ledger.open(at: dir.appendingPathComponent("nope")) }
        #expect(missing?.code == .notALedger)
        try Data("{\"format\":\"something-else\",\"version\":1,\"id\":\"x\",\"created\":\"\"}".utf8)
            .write(to: dir.appendingPathComponent("LEDGER"))
        #expect(throws: LedgerError.self) { try Ledger.open(at: dir) }
    }

    @Test("ledger errors match by code with ~= and carry the category that decides exit and HTTP status")
    func errorCodes() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var matched = false
        do { _ = try Ledger.open(at: dir) } catch LedgerError.Code.alreadyExists {
            Issue.record("matched the wrong code")
        } catch LedgerError.Code.notALedger {
            matched = true
        }
        #expect(matched)
        let categories: [(LedgerError.Code, ErrorCategory)] = [
            (.notALedger, .notFound), (.alreadyExists, .conflict), (.mapFull, .insufficientStorage), (.corrupted, .corrupted),
            (.invalidInput, .invalidInput), (.verificationFailed, .verificationFailed), (.closed, .unavailable), (.outOfRange, .notFound),
        ]
        for (code, category) in categories {
            #expect(LedgerError(code, "x").category == category, "\(code)")
            #expect(ErrorCategory.of(LedgerError(code, "x")) == category)
        }
        #expect(LedgerError(.verificationFailed, "x").category.exitStatus == 2)
        #expect(LMDBError.mapFull.category == .insufficientStorage && LMDBError.corrupted.category == .storage)
        struct Other: Error {}
        #expect(ErrorCategory.of(Other()) == .internal && ErrorCategory.internal.httpStatus == 500)
    }

    @Test("creating over an existing ledger is refused and leaves it intact")
    func createTwice() async throws {
        try await withTemporaryLedger { ledger, url in
            try await ledger.append(sampleEvent(0))
            let error = #expect(throws: LedgerError.self) { try Ledger.create(at: url) }
            #expect(error?.code == .alreadyExists)
            #expect(try ledger.lastSeq == 1)
        }
    }

    @Test("a full map grows on demand")
    func mapGrows() async throws {
        var options = Ledger.Options()
        options.mapSize = 256 << 10
        try await withTemporaryLedger(options: options) { ledger, _ in
            for start in stride(from: 0, to: 20_000, by: 2_000) {
                try await ledger.append(contentsOf: (start..<start + 2_000).map { sampleEvent($0) })
            }
            #expect(try ledger.lastSeq == 20_000)
            #expect(try ledger.store.env.mapInfo().mapSize > 256 << 10)
            #expect(try ledger.verify().isValid)
        }
    }

    @Test("a map at its limit fails the append cleanly and keeps every earlier event")
    func mapLimit() async throws {
        var options = Ledger.Options()
        options.mapSize = 1 << 20
        options.maxMapSize = 1 << 20
        try await withTemporaryLedger(options: options) { ledger, url in
            try await ledger.append(contentsOf: (0..<100).map { sampleEvent($0) })
            let error = await #expect(throws: LedgerError.self) {
                for start in stride(from: 100, to: 200_000, by: 5_000) {
                    try await ledger.append(contentsOf: (start..<start + 5_000).map { sampleEvent($0) })
                }
            }
            #expect(error?.code == .mapFull)
            #expect(error?.message.contains("nothing of the failed append was written") == true)
            let last = try ledger.lastSeq
            #expect(last >= 100 && last % 5_000 == 100 % 5_000)
            #expect(try ledger.event(at: 100)?.payload == sampleEvent(99).payload)
            #expect(try ledger.verify().isValid)
            // Reopening with a higher limit lets appends continue.
            ledger.close()
            var bigger = Ledger.Options()
            bigger.maxMapSize = 64 << 20
            let reopened = try Ledger.open(at: url, options: bigger)
            defer { reopened.close() }
            try await reopened.append(contentsOf: (0..<5_000).map { sampleEvent($0) })
            #expect(try reopened.lastSeq == last + 5_000)
        }
    }

    /// Appends 300 events, flips one byte of the block record holding event 137 (at `offset(record,
    /// first, decodes)` into it, where `decodes` says whether a changed record still decodes to entries),
    /// and returns the reopened ledger with the block's first and last seq.
    func flipping(_ offset: ([UInt8], UInt64, ([UInt8]) -> Bool) -> Int) async throws -> (Ledger, ClosedRange<UInt64>, URL) {
        let dir = temporaryDirectory()
        let url = dir.appendingPathComponent("l")
        let ledger = try Ledger.create(at: url)
        try await ledger.append(contentsOf: (0..<300).map { sampleEvent($0) })
        let (first, count, record, at) = try ledger.store.env.read { txn in
            var reader = BlockReader(store: ledger.store, txn: txn)
            _ = try #require(try reader.locate(137))
            let first = reader.first
            let record = Array(try #require(try txn.get(ledger.store.blocks, first)))
            var probe = BlockReader(store: ledger.store, txn: txn)
            let at = offset(record, first) { changed in changed.withUnsafeBytes { (try? probe.load(record: $0, first: first)) != nil } }
            return (first, reader.count, record, at)
        }
        ledger.close()
        let file = url.appendingPathComponent("log/data.mdb")
        var bytes = try Data(contentsOf: file)
        let range = try #require(bytes.firstRange(of: Data(record)))
        #expect(bytes[range.upperBound...].firstRange(of: Data(record)) == nil, "the block's bytes are unique in the file")
        bytes[range.lowerBound + at] ^= 0x40
        try bytes.write(to: file)
        let reopened = try Ledger.open(at: url, options: { var o = Ledger.Options(); o.readOnly = true; return o }())
        return (reopened, first...first + UInt64(count) - 1, dir)
    }

    @Test("a flipped byte in a block's compressed body is found by verify: exactly the seqs whose bytes changed, when the block still decodes")
    func flippedByte() async throws {
        // Whether zstd still decodes a flip into a body whose entries parse depends on which byte it hits
        // (a raw literal of an envelope or payload: yes; a sequence, a length or a Huffman-coded literal:
        // no), so the first byte from three quarters into the record backwards whose flip still decodes is
        // the one flipped. That a flip which does not decode is named by its block is the next test.
        var found = false
        let (ledger, block, dir) = try await flipping { record, _, decodes in
            for at in stride(from: record.count - record.count / 4, to: record.count / 4, by: -1) {
                var changed = record
                changed[at] ^= 0x40
                if decodes(changed) {
                    found = true
                    return at
                }
            }
            return record.count - 1
        }
        defer {
            ledger.close()
            try? FileManager.default.removeItem(at: dir)
        }
        try #require(found, "no byte of the record's middle half could be flipped and still decode")
        #expect(block.contains(137))
        let report = try ledger.verify()
        #expect(!report.isValid)
        let bad = try #require(report.firstBadSeq)
        #expect(!report.problems.contains(where: { $0.message.contains("the block of events") }), "\(report.problems)")
        // zstd decoded this flip into different bytes of some events (one, or more when a later match
        // copies the changed bytes): verify names exactly those, by seq, and nothing else.
        let changed = Set(try block.filter { seq in
            guard let e = try? ledger.event(at: seq) else { return true }
            let want = sampleEvent(Int(seq) - 1)
            return e.type != want.type || e.stream != want.stream || e.actor != want.actor || e.payload != want.payload
                || e.timestampMicros != want.timestampMicros || !e.unknownFields.isEmpty
        }.map { Optional($0) })
        #expect(!changed.isEmpty && block.contains(bad), "\(report.problems)")
        #expect(Set(report.problems.map(\.seq)) == changed, "\(report.problems)")
        #expect(report.problems.contains { $0.kind == "tag" || $0.kind == "record" }, "\(report.problems)")
        #expect(Set(report.problems.map(\.kind)).isSubset(of: ["tag", "payload", "record", "index"]), "\(report.problems)")
        #expect(try ledger.event(at: 1)?.payload == sampleEvent(0).payload)
        #expect(try ledger.event(at: 300)?.payload == sampleEvent(299).payload)
    }

    @Test("a block that no longer decodes is named by its seq range; other blocks still read")
    func undecodableBlock() async throws {
        // The zstd frame header follows the count, the tags and the codec word.
        let (ledger, block, dir) = try await flipping { record, _, _ in
            let countSize = record[0] < 0x80 ? 1 : 2
            let count = record[0] < 0x80 ? Int(record[0]) : Int(record[0] & 0x7f) | Int(record[1]) << 7
            let codecSize = record[countSize + 4 * count] < 0x80 ? 1 : 2
            return countSize + 4 * count + codecSize
        }
        defer {
            ledger.close()
            try? FileManager.default.removeItem(at: dir)
        }
        let report = try ledger.verify()
        #expect(report.firstBadSeq == block.lowerBound, "\(report.problems)")
        #expect(
            report.problems.contains { $0.kind == "record" && $0.message.contains("\(block.lowerBound)-\(block.upperBound)") },
            "\(report.problems)")
        #expect(try ledger.event(at: 1)?.payload == sampleEvent(0).payload)
        #expect(try ledger.event(at: 300)?.payload == sampleEvent(299).payload)
        let error = #expect(throws: LedgerError.self) { try ledger.event(at: 137) }
        #expect(error?.code == .corrupted)
    }

    @Test("a changed hash tag is named by its exact seq")
    func flippedTag() async throws {
        // Tags follow the varint count at the start of the record: event 137's is at 1 + 4 × (137 − first).
        let (ledger, block, dir) = try await flipping { _, first, _ in 1 + 4 * Int(137 - first) }
        defer {
            ledger.close()
            try? FileManager.default.removeItem(at: dir)
        }
        #expect(block.count < 128)
        let report = try ledger.verify()
        #expect(report.firstBadSeq == 137, "\(report.problems)")
        #expect(report.problems.map(\.kind) == ["tag"], "\(report.problems)")
        #expect(try ledger.event(at: 137)?.payload == sampleEvent(136).payload)
    }

    @Test("a truncated data file is refused on open instead of faulting")
    func truncatedFile() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("l")
        let ledger = try Ledger.create(at: url)
        try await ledger.append(contentsOf: (0..<3_000).map { sampleEvent($0) })
        ledger.close()
        let file = url.appendingPathComponent("log/data.mdb")
        let size = try #require(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int)
        let handle = try FileHandle(forWritingTo: file)
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        let error = #expect(throws: LedgerError.self) { try Ledger.open(at: url) }
        #expect(error?.code == .corrupted)
        #expect(error?.message.contains("truncated") == true)
        // Truncated below its meta pages, too.
        let h2 = try FileHandle(forWritingTo: file)
        try h2.truncate(atOffset: 100)
        try h2.close()
        #expect(throws: LedgerError.self) { try Ledger.open(at: url) }
    }
}

@Suite("Checkpoints")
struct CheckpointTests {
    @Test("checkpoints are signed, stored, and checked by verify against a trusted key")
    func signedCheckpoints() async throws {
        try await withTemporaryLedger { ledger, _ in
            let key = CheckpointSigningKey.generate()
            try await ledger.append(contentsOf: (0..<50).map { sampleEvent($0) })
            let first = try await ledger.checkpoint(signedWith: key)
            #expect(first.treeSize == 50)
            #expect(first.hasValidSignature(trusting: key.publicKey))
            try await ledger.append(contentsOf: (50..<90).map { sampleEvent($0) })
            let second = try await ledger.checkpoint(signedWith: key)
            #expect(try ledger.checkpoints() == [first, second])
            let proof = try ledger.consistencyProof(from: first.treeSize, to: second.treeSize)
            #expect(proof.oldRoot == first.rootHash && proof.newRoot == second.rootHash && proof.verify())

            let report = try ledger.verify(trusting: key.publicKey)
            #expect(report.isValid)
            #expect(report.checkpointsChecked == 2)

            let stranger = CheckpointSigningKey.generate().publicKey
            let untrusted = try ledger.verify(trusting: stranger)
            #expect(!untrusted.isValid)
            #expect(untrusted.problems.contains { $0.kind == "checkpoint" && $0.message.contains("not the trusted key") })

            var forged = second
            forged.rootHash = first.rootHash
            #expect(!forged.hasValidSignature())
        }
    }

    @Test("a checkpoint for more events than the log holds reveals lost events")
    func rollbackDetected() async throws {
        try await withTemporaryLedger { ledger, _ in
            let key = CheckpointSigningKey.generate()
            try await ledger.append(contentsOf: (0..<20).map { sampleEvent($0) })
            var c = try await ledger.checkpoint(signedWith: key)
            // Pretend the log once had 25 events: a correctly signed checkpoint for size 25.
            c.treeSize = 25
            c.signature = try key.sign(Data(c.body.utf8)).base64EncodedString()
            let json = try JSONEncoder().encode(c)
            _ = try ledger.store.env.write { txn in
                try withUnsafeBytes(of: UInt64(25).bigEndian) { k in try json.withUnsafeBytes { try txn.put(ledger.store.checkpoints, k, $0) } }
            }
            let report = try ledger.verify(trusting: key.publicKey)
            #expect(!report.isValid)
            #expect(report.firstBadSeq == 21)
            #expect(report.problems.contains { $0.message.contains("were lost") })
        }
    }

    @Test("signing keys round-trip through files and refuse to be overwritten")
    func keyFiles() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("signing.key")
        let key = CheckpointSigningKey.generate()
        try key.write(to: url)
        #expect(try CheckpointSigningKey(contentsOf: url).publicKey == key.publicKey)
        #expect(try CheckpointPublicKey(contentsOf: url.appendingPathExtension("pub")) == key.publicKey)
        #expect(throws: LedgerError.self) { try key.write(to: url) }
        try Data("garbage".utf8).write(to: dir.appendingPathComponent("bad.key"))
        #expect(throws: LedgerError.self) { try CheckpointSigningKey(contentsOf: dir.appendingPathComponent("bad.key")) }
    }

    @Test("a record's zstd header claiming more than its bytes could decode to is refused before any allocation")
    func implausibleFrameSize() throws {
        let codec = ZstdCodec(level: 3)
        var frame: [UInt8] = []
        let text = Array(String(repeating: "clew ", count: 200).utf8)
        try text.withUnsafeBytes { try codec.compress($0, dictionary: nil, into: &frame) }
        var out: [UInt8] = []
        try frame.withUnsafeBytes { try codec.decompress($0, dictionary: nil, into: &out) }
        #expect(out == text)
        // Magicless header: single segment, 8-byte content size (1 GiB), then one 1-byte RLE block.
        let lie: [UInt8] = [0xE0] + (0..<8).map { UInt8(truncatingIfNeeded: UInt64(1 << 30) >> (8 * $0)) } + [0x13, 0x00, 0x00, 0x41]
        #expect(ZstdCodec.plausibleSize(compressed: lie.count) < 1 << 20)
        #expect { try lie.withUnsafeBytes { try codec.decompress($0, dictionary: nil, into: &out) } } throws: {
            "\($0)".contains("frame header is malformed")
        }
    }
}
