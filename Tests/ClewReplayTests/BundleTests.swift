import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewTestSupport
import Foundation
import Testing
@testable import ClewReplay

@Suite struct BundleTests {
    @Test func exportImportReplayInAnotherLedger() async throws {
        try await withEngine([FaultDAGs.files]) { engine, ledger, dir in
            let run = try await engine.run(FaultDAGs.files)
            let key = RunKey(dag: "files", run: run.runID)
            let file = dir.appendingPathComponent("run.clewrun")
            let exported = try RunBundle.export(key, from: ledger, to: file)
            #expect(exported.files == 1)
            #expect(exported.events == (try ledger.seqs(inStream: key.stream)).count + 1)  // + the DAG definition
            // The chunk file leaves its place: the bundle must carry it.
            let original = try RecordedRun.load(key, from: ledger)
            let chunk = try #require(original.attempts.first { $0.task == "read" }?.chunks.first?.location)
            try FileManager.default.removeItem(atPath: chunk)

            let other = try Ledger.create(at: dir.appendingPathComponent("other.ledger"))
            defer { other.close() }
            let imported = try await RunBundle.importBundle(from: file, into: other)
            #expect(imported.events == exported.events && imported.skipped == 0)
            let copy = try RecordedRun.load(key, from: other)
            #expect(copy.attempts.map(\.id) == original.attempts.map(\.id))
            #expect(copy.stepCount == original.stepCount)
            let report = try await Replayer(ledger: other, registry: DAGRegistry([FaultDAGs.files])).replay(copy)
            #expect(report.isIdentical, "\(String(describing: report.divergence))")
            #expect(try other.verify().problems.isEmpty)
            // Twice: refused, nothing added.
            let size = try other.lastSeq
            await #expect(throws: ReplayError.self) { try await RunBundle.importBundle(from: file, into: other) }
            #expect(try other.lastSeq == size)
        }
    }

    @Test func tamperedBundleIsRefusedWhole() async throws {
        try await withEngine(DemoDAGs.all) { engine, ledger, dir in
            let run = try await engine.run(DemoDAGs.numericFlow, params: ["batch": "1"])
            let file = dir.appendingPathComponent("run.clewrun")
            _ = try RunBundle.export(RunKey(dag: "numeric_flow", run: run.runID), from: ledger, to: file)
            let text = String(decoding: try RunBundle.decompress(try Data(contentsOf: file), name: "run"), as: UTF8.self)
            var lines = text.split(separator: "\n").map(String.init)
            // Change a recorded value in one event (factor 0.001 → 0.002) and keep its proof.
            let i = try #require(lines.firstIndex { l in
                guard let o = try? JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any], let p = o["payload"] as? String,
                    let d = Data(base64Encoded: p) else { return false }
                return String(decoding: d, as: UTF8.self).contains("\"factor\"")
            })
            var o = try #require(try JSONSerialization.jsonObject(with: Data(lines[i].utf8)) as? [String: Any])
            let payload = String(decoding: Data(base64Encoded: o["payload"] as! String)!, as: UTF8.self).replacingOccurrences(of: "0.001", with: "0.002")
            o["payload"] = Data(payload.utf8).base64EncodedString()
            lines[i] = String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
            let bad = dir.appendingPathComponent("bad.clewrun")
            try RunBundle.compress(Data((lines.joined(separator: "\n") + "\n").utf8)).write(to: bad)
            let other = try Ledger.create(at: dir.appendingPathComponent("other.ledger"))
            defer { other.close() }
            do {
                _ = try await RunBundle.importBundle(from: bad, into: other)
                Issue.record("a tampered bundle was imported")
            } catch let e as ReplayError {
                #expect(e.description.contains("line \(i + 1)") && e.description.contains("payload"), "\(e)")
            }
            #expect(try other.lastSeq == 0)
            // Not a bundle at all.
            let junk = dir.appendingPathComponent("junk.clewrun")
            try Data("hello".utf8).write(to: junk)
            await #expect(throws: ReplayError.self) { try await RunBundle.importBundle(from: junk, into: other) }
            #expect(try other.lastSeq == 0)
        }
    }

    /// A bundle's zstd header says how big it is; found in review: import trusted up to 16 GiB of it.
    @Test("bundles whose zstd header lies about their size are refused by name, without allocating what they claim")
    func lyingBundleHeaders() async throws {
        /// One zstd frame: single segment, an 8-byte content size of `claim`, one raw last block of `body`.
        func frame(claim: UInt64, body: [UInt8], trailing: [UInt8] = []) -> Data {
            var bytes: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0xE0]
            bytes += (0..<8).map { UInt8(truncatingIfNeeded: claim >> (8 * $0)) }
            let header = UInt32(body.count) << 3 | 1
            bytes += [UInt8(header & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header >> 16 & 0xFF)]
            return Data(bytes + body + trailing)
        }
        let body = Array("{\"format\":\"clew-run-bundle\"}\n".utf8)
        #expect(try RunBundle.decompress(frame(claim: UInt64(body.count), body: body), name: "ok") == Data(body))
        let cases: [(Data, String)] = [
            (frame(claim: 1 << 34, body: body), "declares 17179869184 bytes uncompressed; bundles are limited to 1073741824 bytes"),
            (frame(claim: 1 << 29, body: body), "damaged"),
            (frame(claim: UInt64(body.count), body: body, trailing: [1, 2, 3]), "3 bytes follow the zstd frame"),
            (frame(claim: UInt64(body.count), body: body).dropLast(4), "damaged"),
            (Data("hello".utf8), "not a Clew run bundle"),
        ]
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger.create(at: dir.appendingPathComponent("l"))
            defer { ledger.close() }
            for (n, (data, message)) in cases.enumerated() {
                let file = dir.appendingPathComponent("case\(n).clewrun")
                try data.write(to: file)
                do {
                    _ = try await RunBundle.importBundle(from: file, into: ledger)
                    Issue.record("case \(n) was imported")
                } catch let e as ReplayError {
                    #expect(e.description.contains(message), "case \(n): \(e)")
                }
            }
            #expect(try ledger.lastSeq == 0)
        }
    }
}
