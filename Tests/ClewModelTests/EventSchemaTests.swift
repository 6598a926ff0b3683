import ClewModel
import Foundation
import Testing

/// The event schema in code (`EventSchema`) against docs/event-schema.md: every event type Clew writes
/// has a payload type and a row in the document, and every field of every payload type is documented.
@Suite("Event schema")
struct EventSchemaTests {
    /// Rows of the document's event tables: the event types named in the first cell, and every word in
    /// backticks in the last.
    static func documentedRows() throws -> [(types: [String], fields: Set<String>)] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/event-schema.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        var rows: [(types: [String], fields: Set<String>)] = []
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            let types = Self.backticked(cells[1]).filter { $0.contains(".") }
            var words = Set<String>()
            for quoted in Self.backticked(cells[cells.count - 2]) {
                for word in quoted.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }) { words.insert(String(word)) }
            }
            if !types.isEmpty { rows.append((types, words)) }
        }
        return rows
    }

    static func backticked(_ s: String) -> [String] {
        s.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    @Test("every event type has a payload type and a documented row, and every payload field is documented")
    func documented() throws {
        let rows = try Self.documentedRows()
        #expect(rows.count > 20, "the document's event tables were not found")
        for type in EventType.all {
            #expect(EventSchema.payload(of: type) != nil, "\(type) has no payload type in EventSchema")
            #expect(rows.contains { $0.types.contains(type) }, "\(type) has no row in docs/event-schema.md")
        }
        for payload in EventSchema.payloads {
            let documented = rows.filter { !Set($0.types).isDisjoint(with: payload.eventTypes) }.reduce(into: Set<String>()) { $0.formUnion($1.fields) }
            for field in payload.fieldNames {
                #expect(documented.contains(field), "\(payload).\(field) (\(payload.eventTypes.joined(separator: ", "))) is not in docs/event-schema.md")
            }
            for type in payload.eventTypes {
                #expect(EventType.all.contains(type), "\(payload) claims \(type), which EventType.all does not list")
            }
        }
    }

    @Test("a payload with a field the schema does not declare, or of the wrong type, is named")
    func problems() {
        #expect(EventSchema.problems(type: EventType.runLabelled, payload: Data(#"{"external_id":"manual__1"}"#.utf8)).isEmpty)
        let extra = EventSchema.problems(type: EventType.runLabelled, payload: Data(#"{"external_id":"x","colour":"red"}"#.utf8))
        #expect(extra.count == 1 && extra[0].contains("'colour'"), "\(extra)")
        let wrong = EventSchema.problems(type: EventType.taskSucceeded, payload: Data(#"{"task":7}"#.utf8))
        #expect(wrong.count == 1 && wrong[0].contains("does not decode"), "\(wrong)")
        #expect(EventSchema.problems(type: "someone.elses", payload: Data("[]".utf8)).isEmpty)
        #expect(!EventSchema.problems(type: EventType.runQueued, payload: Data("[]".utf8)).isEmpty)
    }

    @Test("a source file's secret-looking assignments are redacted wherever they are: YAML, flow mappings, shell, JSON")
    func sourceRedaction() {
        let text = """
            env: {REGION: eu, DB_PASSWORD: hunter2}
            api_token: "abc def"
            export AWS_SECRET_ACCESS_KEY=wJalr
            {"client_secret": "s3cr3t", "name": "orders"}
            echo "${REGION:-eu}" # region: eu
            """
        let out = SourceFile.redacted(text)
        for secret in ["hunter2", "abc def", "wJalr", "s3cr3t"] { #expect(!out.contains(secret), "\(secret) in \(out)") }
        #expect(out.contains("DB_PASSWORD: [REDACTED]}") && out.contains("api_token: [REDACTED]") && out.contains("AWS_SECRET_ACCESS_KEY=[REDACTED]"), "\(out)")
        #expect(out.contains(#""client_secret": [REDACTED], "name": "orders""#), "\(out)")
        #expect(out.contains("REGION: eu") && out.contains(#"echo "${REGION:-eu}" # region: eu"#), "what is not secret stays: \(out)")
    }

    @Test("payloads survive a decode and encode with their values")
    func roundTrip() throws {
        var task = TaskEvent(task: "load", attempt: 2)
        task.branch = BranchChoice(["a", "b"])
        task.env = ["PATH": "/bin"]
        let data = try JSONEncoder().encode(task)
        #expect(try JSONDecoder().decode(TaskEvent.self, from: data) == task)
        #expect(try JSONDecoder().decode(TaskEvent.self, from: Data(#"{"task":"t","branch":"only"}"#.utf8)).branch?.text == "only")
    }

    @Test("the payload encoder writes fields in declaration order, leaves out absent ones, sorts dictionary keys")
    func encoderShape() throws {
        var task = TaskEvent(task: "load", attempt: 2, durationMillis: 41, error: "boom")
        task.env = ["b": "2", "a": "1", "c": "3"]
        task.files = [TaskFile(path: "out/x.csv", sha256: "ab", bytes: 9)]
        task.branch = BranchChoice(["right"])
        #expect(
            String(decoding: task.payloadData, as: UTF8.self)
                == #"{"task":"load","attempt":2,"duration_ms":41,"error":"boom","branch":["right"],"files":[{"path":"out/x.csv","sha256":"ab","bytes":9}],"env":{"a":"1","b":"2","c":"3"}}"#)
        // Integers stay integers however large (no trip through Double), unsigned ones too.
        let timed = RunLabelled(externalID: "x", timeMicros: 1_793_498_400_123_456)
        #expect(String(decoding: timed.payloadData, as: UTF8.self) == #"{"external_id":"x","time_us":1793498400123456}"#)
        #expect(PayloadEncoder.value(UInt64.max).text == "18446744073709551615")
        #expect(PayloadEncoder.value([Int8(-3)]).text == "[-3]")
    }

    @Test("a recorded value's text is stored byte for byte, and a DAG's definition as its canonical JSON")
    func encoderRawText() throws {
        let text = #"{"z":12345678901234567890,"a":1.50,"s":"é"}"#
        let value = ValueEvent(task: "t", attempt: 1, digest: "d", valueType: "Record", value: try JSONFragment(text: text))
        #expect(String(decoding: value.payloadData, as: UTF8.self) == #"{"task":"t","attempt":1,"digest":"d","value_type":"Record","value":"# + text + "}")
        #expect(throws: JSONParseError.self) { try JSONFragment(text: "{nope") }
        // Read back, the fragment is parsed (readers want the tree) and written canonically.
        let read = try JSONDecoder().decode(ValueEvent.self, from: value.payloadData)
        #expect(read.value?.tree["s"]?.string == "é")
        let spec = try JSONDecoder().decode(DAGSpec.self, from: Data(
            #"{"catchup":false,"datasets":[],"description":"","maxActiveTasks":1,"name":"d","origin":"test","params":{},"tasks":[{"consumes":[],"id":"a","kind":"swift","produces":[],"retries":0,"retryDelayMillis":0,"rule":"all_success","upstream":[]}]}"#.utf8))
        let registered = DAGRegistered(dag: "d", version: spec.version, tasks: ["a"], definition: spec)
        let payload = String(decoding: registered.payloadData, as: UTF8.self)
        #expect(payload.hasSuffix(#","definition":"# + String(decoding: spec.canonicalJSON, as: UTF8.self) + "}"))
        #expect(try JSONDecoder().decode(DAGRegistered.self, from: registered.payloadData).definition?.version == spec.version)
    }

    @Test("early ledgers' shapes still decode: a bare yes/no answer, a branch as one string")
    func earlyShapes() throws {
        let q = try JSONDecoder().decode(QuestionAnswered.self, from: Data(#"{"task":"t","ready":true,"safe":{"answer":false,"evidence":"a writer"}}"#.utf8))
        #expect(q.ready == QuestionAnswer(answer: true, evidence: nil))
        #expect(q.safe == QuestionAnswer(answer: false, evidence: "a writer"))
    }
}
