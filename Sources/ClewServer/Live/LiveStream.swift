import ClewLedger
import ClewModel
import ClewProjections
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/stream`: server-sent events for run and chunk changes as they are appended.
///
/// Each SSE event has `id: <seq>` (so a reconnecting client resumes with `Last-Event-ID`), `event: run`
/// or `event: chunk`, and a JSON `data` line. Filters: `dag`, `run`, `dataset`; `after=SEQ` starts
/// after a seq (default: the end of the log now). A comment line every 10 s keeps proxies from closing
/// an idle stream and notices a client that went away.
enum LiveStream {
    struct Filter: Sendable {
        var dag: String?
        var run: String?
        var dataset: String?
    }

    static func register(_ router: Router<ClewContext>, _ state: ServerState) {
        router.get("/api/stream") { request, context -> Response in
            _ = try context.require(.viewer)
            let filter = Filter(dag: request.query("dag"), run: request.query("run"), dataset: request.query("dataset"))
            var start = try state.ledger.lastSeq
            if let after = request.query("after") ?? request.headers[HTTPField.Name("Last-Event-ID")!] {
                guard let n = UInt64(after) else { throw APIError(.badRequest, "'after' (or Last-Event-ID) must be a seq number, got '\(after)'") }
                start = n
            }
            let from = start
            let ledger = state.ledger
            let poll = state.configuration.streamPollInterval
            let body = ResponseBody { writer in
                var next = from
                var idle = ContinuousClock.now
                try await writer.write(ByteBuffer(string: ": clew live stream from seq \(from)\nretry: 2000\n\n"))
                while !Task.isCancelled {
                    let last = try ledger.lastSeq
                    if last > next {
                        let events = try ledger.events((next + 1)...min(last, next + 2000))
                        var text = ""
                        for event in events {
                            next = event.seq
                            if let line = Self.render(event, filter) { text += line }
                        }
                        if !text.isEmpty {
                            try await writer.write(ByteBuffer(string: text))
                            idle = ContinuousClock.now
                        }
                        continue
                    }
                    if ContinuousClock.now - idle > .seconds(10) {
                        try await writer.write(ByteBuffer(string: ": keep-alive \(next)\n\n"))
                        idle = ContinuousClock.now
                    }
                    try await Task.sleep(for: poll)
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no"], body: body)
        }
    }

    /// One SSE event for a run or chunk change that passes the filter, else nil.
    static func render(_ event: Event, _ filter: Filter) -> String? {
        let kind: String
        var fields: [(String, JSON.Value)] = [("seq", .int(Int64(event.seq))), ("time", .string(ISO8601.string(micros: event.timestampMicros))), ("type", .string(event.type))]
        let payload = (try? JSONTree.parse(event.payload)) ?? .null
        if event.stream.hasPrefix("run/"), event.type.hasPrefix("run.") || event.type.hasPrefix("task.") {
            guard let key = RunKey(stream: event.stream) else { return nil }
            if let dag = filter.dag, dag != key.dag { return nil }
            if let run = filter.run, run != key.run { return nil }
            if filter.dataset != nil { return nil }
            kind = "run"
            fields += [("dag", .string(key.dag)), ("run", .string(key.run))]
            if let task = payload["task"]?.string { fields.append(("task", .string(task))) }
            if case .number(let a)? = payload["attempt"] { fields.append(("attempt", .int(Int64(a)))) }
            if let error = payload["error"]?.string { fields.append(("error", .string(error))) }
            fields.append(("state", .string(Self.state(of: event.type))))
        } else if event.type == EventType.chunkStatusChanged {
            let dataset = payload["dataset"]?.string ?? ""
            if let d = filter.dataset, d != dataset { return nil }
            if let dag = filter.dag, dag != payload["dag"]?.string { return nil }
            if let run = filter.run, run != payload["run"]?.string { return nil }
            kind = "chunk"
            fields += [("dataset", .string(dataset)), ("chunk", .string(payload["chunk"]?.string ?? ""))]
            for k in ["from", "to", "dag", "run", "task", "reason"] {
                if let v = payload[k]?.string { fields.append((k, .string(v))) }
            }
        } else {
            return nil
        }
        return "id: \(event.seq)\nevent: \(kind)\ndata: \(JSON.Value.object(fields).text)\n\n"
    }

    static func state(of type: String) -> String {
        switch type {
        case EventType.runQueued: return "queued"
        case EventType.runStarted, EventType.taskStarted: return "running"
        case EventType.runSucceeded, EventType.taskSucceeded: return "succeeded"
        case EventType.runFailed, EventType.taskFailed: return "failed"
        case EventType.runCancelled: return "cancelled"
        case EventType.taskRetrying: return "retrying"
        case EventType.taskSkipped: return "skipped"
        case EventType.taskUpstreamFailed: return "upstream_failed"
        case EventType.taskScheduled: return "scheduled"
        case EventType.taskBlocked: return "blocked"
        case EventType.taskQueued: return "queued (pool)"
        case EventType.runResubmitted: return "resubmitted"
        default: return String(type.split(separator: ".").last ?? "")
        }
    }
}
