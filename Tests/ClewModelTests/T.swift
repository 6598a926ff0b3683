import Foundation
import Testing
@testable import ClewModel

@Suite("Domain model")
struct ModelTests {
    @Test("the demo pipeline is deterministic for a seed and differs across seeds")
    func deterministic() {
        let a = DemoPipeline(seed: 7).events(runs: 5)
        #expect(a == DemoPipeline(seed: 7).events(runs: 5))
        #expect(a != DemoPipeline(seed: 8).events(runs: 5))
    }

    @Test("the demo history has the shape of real runs: retries, failures and their propagation")
    func shape() throws {
        let events = DemoPipeline(seed: 42).events(runs: 120)
        #expect(events.first?.type == EventType.dagRegistered)
        let runs = Dictionary(grouping: events.dropFirst().filter { $0.stream.hasPrefix("run/") }, by: \.stream)
        #expect(runs.count == 120)
        for (_, run) in runs {
            #expect(run.first?.type == EventType.runQueued)
            #expect([EventType.runSucceeded, EventType.runFailed].contains(run.last?.type ?? ""))
            #expect(run.map(\.timestampMicros) == run.map(\.timestampMicros).sorted())
            if run.last?.type == EventType.runFailed {
                #expect(run.contains { $0.type == EventType.taskUpstreamFailed })
            }
        }
        #expect(events.contains { $0.type == EventType.taskRetrying })
        #expect(events.contains { $0.type == EventType.runFailed })
        for e in events.prefix(2_000) {
            #expect(EventType.all.contains(e.type))
            #expect(EventSchema.problems(type: e.type, payload: e.payload) == [], "\(e.type): \(e.jsonLine)")
        }
        let sizes = events.map { $0.jsonLine.utf8.count }
        let mean = Double(sizes.reduce(0, +)) / Double(sizes.count)
        // The engine's own events (64-hex digests, chunk changes naming their run and task) are 180-400
        // bytes as JSON lines; the corpus should weigh the same.
        #expect(mean > 200 && mean < 400, "events the size of the engine's, got \(mean) bytes on average")
    }

    @Test("JSON strings are escaped and JSON lines parse")
    func jsonText() throws {
        #expect(JSON.quote("a\"b\\c\n\u{1}") == #""a\"b\\c\n\u0001""#)
        let v = JSON.Value.object([("s", .string("x")), ("n", .int(-3)), ("b", .bool(true)), ("z", .null), ("a", .array([.double(1.5)]))])
        #expect(v.text == #"{"s":"x","n":-3,"b":true,"z":null,"a":[1.5]}"#)
        let line = DomainEvent(type: "t", stream: "s\"q", actor: "a", timestampMicros: 1_793_498_400_000_001, payload: v.data).jsonLine
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(o["stream"] as? String == "s\"q")
        #expect(o["time"] as? String == "2026-11-01T02:00:00.000001Z")
    }

    @Test("ISO 8601 formatting matches Foundation, including before the epoch")
    func iso8601() {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        for seconds: Int64 in [0, 86_399, 951_782_400, 1_793_498_400, 4_102_444_800, -1, -86_401] {
            let ours = ISO8601.string(micros: seconds * 1_000_000)
            #expect(ours.prefix(19) == f.string(from: Date(timeIntervalSince1970: Double(seconds))).prefix(19), "\(seconds)")
        }
    }

    @Test("a chunk change's payload is what the JSON encoder gives, with every field")
    func chunkChangePayload() throws {
        var full = ChunkChange(dataset: "lake:orders/é", chunk: "2026-11-01", from: .producing, to: .ready)
        full.dag = "nightly"
        full.run = "r-1"
        full.task = "load"
        full.attempt = 2
        full.partition = "2026-11-01"
        full.location = "/data/orders/2026-11-01.parquet"
        full.digest = String(repeating: "ab", count: 32)
        full.bytes = 12_345
        full.validated = false
        full.expectations = ["not_null(id)", "rows > 0"]
        full.reason = "quote \" and slash /"
        // A field added to ChunkChange must be added to its hand-written payload too.
        #expect(Mirror(reflecting: full).children.count == 15)
        for change in [full, ChunkChange(dataset: "d", chunk: "latest", from: nil, to: .failed)] {
            #expect(change.canonicalJSON == (try JSON.canonical(change)), "\(String(decoding: change.canonicalJSON, as: UTF8.self))")
            #expect(try JSONDecoder().decode(ChunkChange.self, from: change.canonicalJSON) == change)
        }
    }

    @Test("JSON values are written as before: escapes, control characters, nesting, raw text")
    func jsonValueBytes() {
        let v = JSON.Value.object([
            ("k\u{1F}", .string("tab\tnl\ncr\rbell\u{7}é😀")), ("raw", .raw(#"{"x":[1]}"#)),
            ("list", .array([.int(1), .double(0.25), .null, .bool(false), .array([])])), ("o", .object([])),
        ])
        #expect(v.text == #"{"k\u001f":"tab\tnl\ncr\rbell\u0007é😀","raw":{"x":[1]},"list":[1,0.25,null,false,[]],"o":{}}"#)
        #expect(Data(v.bytes) == v.data)
    }
}
