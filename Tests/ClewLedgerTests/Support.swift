import Foundation
@testable import ClewLedger

/// A fresh ledger in a temporary directory, removed afterwards whatever happens.
func withTemporaryLedger<T>(
    options: Ledger.Options = Ledger.Options(),
    _ body: (Ledger, URL) async throws -> T
) async throws -> T {
    let dir = temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let ledger = try Ledger.create(at: dir.appendingPathComponent("test.ledger"), options: options)
    defer { ledger.close() }
    return try await body(ledger, dir.appendingPathComponent("test.ledger"))
}

func temporaryDirectory() -> URL {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// A realistic small event numbered `i`.
func sampleEvent(_ i: Int, stream: String? = nil) -> NewEvent {
    NewEvent(
        type: ["task.started", "task.succeeded", "chunk.status_changed", "variable.recorded"][i % 4],
        stream: stream ?? "run/daily_sales/2026-11-\(10 + i % 3)",
        actor: "worker-\(i % 3)",
        time: Date(timeIntervalSince1970: 1_793_498_400 + Double(i)),
        payload: Data(#"{"i":\#(i),"task":"transform","rows":\#(1000 + i * 7),"chunk":"raw.orders/2026-11-10T\#(i % 24)"}"#.utf8))
}

/// RFC 6962 MTH computed the slow, obvious way.
func naiveRoot(_ leaves: [MerkleHash]) -> MerkleHash {
    if leaves.isEmpty { return Merkle.emptyRoot }
    if leaves.count == 1 { return leaves[0] }
    let k = Int(Merkle.split(UInt64(leaves.count)))
    return Merkle.nodeHash(naiveRoot(Array(leaves[..<k])), naiveRoot(Array(leaves[k...])))
}

extension Data {
    init(hex: String) {
        var bytes: [UInt8] = []
        var chars = Array(hex.utf8)
        if chars.count % 2 == 1 { chars.insert(UInt8(ascii: "0"), at: 0) }
        for i in stride(from: 0, to: chars.count, by: 2) {
            bytes.append(UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16)!)
        }
        self.init(bytes)
    }
}
