import Foundation
import Testing
@testable import ClewLedger
import ClewCore
import Crypto

@Suite("Merkle tree")
struct MerkleTests {
    /// The RFC 6962 reference vectors (certificate-transparency's test data): eight leaves and the
    /// root after each one.
    static let leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    @Test("the frontier reproduces the RFC 6962 reference roots")
    func referenceVectors() throws {
        #expect(Merkle.emptyRoot.hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var frontier = MerkleFrontier()
        for (i, leaf) in Self.leaves.enumerated() {
            frontier.append(Merkle.leafHash(Data(hex: leaf))) { _, _, _ in }
            #expect(frontier.root.hex == Self.roots[i], "root after \(i + 1) leaves")
        }
    }

    @Test("proof generation and verification agree for every index and every pair of sizes")
    func proofsExhaustive() throws {
        let leaves = (0..<40).map { Merkle.leafHash(Data("leaf \($0)".utf8)) }
        let subtree = { (lo: UInt64, hi: UInt64) in naiveRoot(Array(leaves[Int(lo)..<Int(hi)])) }
        for n in 1...UInt64(leaves.count) {
            let root = subtree(0, n)
            for i in 0..<n {
                let path = Merkle.inclusionPath(index: i, lo: 0, hi: n, subtree: subtree)
                #expect(Merkle.verifyInclusion(leaf: leaves[Int(i)], index: i, treeSize: n, path: path, root: root))
                // The wrong leaf, index or root fails.
                #expect(!Merkle.verifyInclusion(leaf: leaves[Int((i + 1) % n)], index: i, treeSize: n, path: path, root: root) || n == 1)
                #expect(!Merkle.verifyInclusion(leaf: leaves[Int(i)], index: i, treeSize: n, path: path, root: leaves[0]) || n == 1)
            }
            for m in 1...n {
                let path = m == n ? [] : Merkle.consistencyPath(m: m, lo: 0, hi: n, complete: true, subtree: subtree)
                #expect(Merkle.verifyConsistency(oldSize: m, newSize: n, oldRoot: subtree(0, m), newRoot: root, path: path))
                if m < n {
                    let forged = Merkle.leafHash(Data("forged".utf8))
                    #expect(!Merkle.verifyConsistency(oldSize: m, newSize: n, oldRoot: forged, newRoot: root, path: path))
                }
            }
        }
    }

    @Test("a new ledger keeps its Merkle nodes in the order they complete, each over the leaves its key names")
    func nodesInCompletionOrder() async throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("test.ledger")
        let ledger = try Ledger.create(at: url)
        #expect(ledger.store.nodeKeys == .completion)
        // Batches that end inside and on the edges of 16- and 32-leaf subtrees.
        var n = 0
        for size in [1, 15, 16, 1, 31, 64, 7, 122] {
            try await ledger.append(contentsOf: (n..<n + size).map { sampleEvent($0) })
            n += size
        }
        let leaves = try (UInt64(1)...UInt64(n)).map { try MerkleHash(hex: ledger.inclusionProof(seq: $0).leafHash) }
        let nodes = try ledger.store.env.read { txn in
            try txn.withCursor(ledger.store.merkle) { c in
                var out: [(key: [UInt8], end: UInt64, level: Int, hash: MerkleHash)] = []
                var e = try c.first()
                while let entry = e {
                    #expect(entry.key.count == 9)
                    out.append((Array(entry.key), entry.key.bigEndianUInt64, Int(entry.key[8]), try MerkleHash(bytes: entry.value)))
                    e = try c.next()
                }
                return out
            }
        }
        var expected: [(end: UInt64, level: Int)] = []
        for end in 1...UInt64(n) {
            for level in LogStore.storedMinLevel..<64 where end % (1 << UInt64(level)) == 0 { expected.append((end, level)) }
        }
        #expect(nodes.map(\.end) == expected.map(\.end) && nodes.map(\.level) == expected.map(\.level))
        for node in nodes {
            let width = 1 << node.level
            #expect(node.hash == naiveRoot(Array(leaves[Int(node.end) - width..<Int(node.end)])), "node of level \(node.level) ending at \(node.end)")
        }
        #expect(zip(nodes, nodes.dropFirst()).allSatisfy { $0.key.lexicographicallyPrecedes($1.key) })
        #expect(try ledger.verify().isValid)
        ledger.close()

        // The layout is recorded: a reopened ledger (read-only too) keeps it, and a layout this version
        // does not know is refused by name.
        let again = try Ledger.open(at: url)
        #expect(again.store.nodeKeys == .completion)
        #expect(try again.root(atSize: UInt64(n)).hash == naiveRoot(leaves))
        try again.store.env.write { txn in
            _ = try LogStore.nodeKeysKey.withUnsafeBytes { k in try [UInt8(9)].withUnsafeBytes { try txn.put(again.store.meta, k, $0) } }
        }
        again.close()
        #expect {
            try Ledger.open(at: url)
        } throws: { error in
            (error as? LedgerError)?.code == .corrupted && "\(error)".contains("Merkle key layout")
        }
    }

    @Test("the ledger's roots and proofs match the tree rebuilt naively from its events")
    func ledgerProofs() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(contentsOf: (0..<70).map { sampleEvent($0) })
            var leaves: [MerkleHash] = []
            for seq in UInt64(1)...70 {
                let proof = try ledger.inclusionProof(seq: seq)
                #expect(proof.verify())
                leaves.append(try MerkleHash(hex: proof.leafHash))
            }
            for n in UInt64(1)...70 {
                #expect(try ledger.root(atSize: n).hash == naiveRoot(Array(leaves[..<Int(n)])))
            }
            for (m, n) in [(1, 70), (16, 17), (17, 64), (33, 70), (64, 70), (70, 70)] as [(UInt64, UInt64)] {
                let p = try ledger.consistencyProof(from: m, to: n)
                #expect(p.verify(), "consistency \(m) -> \(n)")
            }
            let p = try ledger.inclusionProof(seq: 5, treeSize: 20)
            #expect(p.verify())
            #expect(p.rootHash == naiveRoot(Array(leaves[..<20])).hex)
            #expect(throws: LedgerError.self) { try ledger.inclusionProof(seq: 71) }
            #expect(throws: LedgerError.self) { try ledger.inclusionProof(seq: 5, treeSize: 71) }
            #expect(throws: LedgerError.self) { try ledger.consistencyProof(from: 30, to: 20) }
        }
    }

    @Test("a leaf is SHA-256 of 0x00 and the canonical bytes, which protobuf tools decode as clew.v1.Event")
    func canonicalBytes() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(sampleEvent(5))
            let event = try ledger.canonicalEvent(seq: 1)
            let canonical = Array(event.bytes)
            #expect(Merkle.leafHash(canonical).hex == (try ledger.inclusionProof(seq: 1).leafHash))
            // The leaf commits to the payload through its SHA-256, which the canonical bytes carry instead of it.
            #expect(event.payload == nil)
            #expect(event.payloadSHA256 == Array(SHA256.hash(data: sampleEvent(5).payload)).hex)
            // Decode with protoc, the reference implementation, when it is installed (CI installs it).
            let protoDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/schema").standardized
            guard let protoc = ["/usr/bin/protoc", "/usr/local/bin/protoc"].first(where: FileManager.default.isExecutableFile) else { return }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: protoc)
            process.arguments = ["--decode=clew.v1.Event", "-I", protoDir.path, "clew/v1/event.proto"]
            let stdin = Pipe()
            let stdout = Pipe()
            process.standardInput = stdin
            process.standardOutput = stdout
            try process.run()
            stdin.fileHandleForWriting.write(Data(canonical))
            try stdin.fileHandleForWriting.close()
            let text = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            let e = sampleEvent(5)
            #expect(text.contains("seq: 1"))
            #expect(text.contains("time_us: \(e.timestampMicros!)"))
            #expect(text.contains("actor: \"\(e.actor)\""))
            #expect(text.contains("stream: \"\(e.stream)\""))
            #expect(text.contains("type: \"\(e.type)\""))
            #expect(text.contains("schema_version: 1"))
            #expect(text.contains("payload_ref: "))
            #expect(!text.contains("payload: "))
        }
    }
}

@Suite("Envelope codec")
struct EnvelopeCodecTests {
    @Test("empty strings and unknown fields decode (a record from another writer may have them)")
    func emptyStringsAndUnknownFields() throws {
        // actor "" (field 3), stream "s" (4), type "" (5), then unknown field 15 = 42 and field 20 = "abc".
        let bytes: [UInt8] = [0x1a, 0x00, 0x22, 0x01, 0x73, 0x2a, 0x00, 0x78, 0x2a, 0xa2, 0x01, 0x03, 0x61, 0x62, 0x63]
        var cache = StringCache()
        for _ in 0..<2 {  // the second pass goes through the cache
            let d = try bytes.withUnsafeBytes { try EnvelopeCodec.decode($0, cache: &cache) }
            #expect(d.actor == "" && d.stream == "s" && d.type == "")
            #expect(d.unknownFields == [0x78, 0x2a, 0xa2, 0x01, 0x03, 0x61, 0x62, 0x63])
        }
        #expect(throws: LedgerError.self) {
            try [UInt8]([0x22, 0x05, 0x73]).withUnsafeBytes { try EnvelopeCodec.decode($0, cache: &cache) }
        }
    }
}
