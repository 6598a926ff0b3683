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

    @Test("payloads survive a decode and encode with their values")
    func roundTrip() throws {
        var task = TaskEvent(task: "load", attempt: 2)
        task.branch = BranchChoice(["a", "b"])
        task.env = ["PATH": "/bin"]
        let data = try JSONEncoder().encode(task)
        #expect(try JSONDecoder().decode(TaskEvent.self, from: data) == task)
        #expect(try JSONDecoder().decode(TaskEvent.self, from: Data(#"{"task":"t","branch":"only"}"#.utf8)).branch?.text == "only")
    }
}
