package import ClewCore
package import ClewLedger
package import Foundation

/// Parses the JSON lines `clew append` reads: one object per line with `type`, `stream`, `payload`
/// (any JSON), and optionally `actor`, `time` (ISO 8601) and `schema_version`.
///
/// Payloads are normalised (keys sorted, no insignificant whitespace), so equal JSON gives equal bytes.
package struct EventLineParser {
    static let knownFields: Set<String> = ["type", "stream", "actor", "time", "payload", "schema_version"]
    var defaultActor = "clew-cli"

    package init(defaultActor: String = "clew-cli") { self.defaultActor = defaultActor }

    package struct LineError: ClewError {
        package var category: ErrorCategory { .invalidInput }
        package let line: Int
        package let reason: String
        package var description: String { "line \(line): \(reason)" }
    }

    /// Every event of `text`, or the first error (with its line number). Blank lines are skipped.
    package func parse(_ text: String) throws(LineError) -> [NewEvent] {
        var events: [NewEvent] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            events.append(try parse(line: String(line), number: number))
        }
        return events
    }

    func parse(line: String, number: Int) throws(LineError) -> NewEvent {
        func fail(_ reason: String) -> LineError { LineError(line: number, reason: reason) }
        let object: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: Data(line.utf8), options: []) as? [String: Any] else {
                throw fail("expected a JSON object")
            }
            object = o
        } catch let error as LineError {
            throw error
        } catch {
            throw fail("malformed JSON (\(Self.reason(error)))")
        }
        if let unknown = object.keys.sorted().first(where: { !Self.knownFields.contains($0) }) {
            throw fail("unknown field \"\(unknown)\" (allowed: \(Self.knownFields.sorted().joined(separator: ", ")))")
        }
        guard let type = object["type"] else { throw fail("missing field \"type\"") }
        guard let type = type as? String else { throw fail("field \"type\" must be a string") }
        guard let stream = object["stream"] else { throw fail("missing field \"stream\"") }
        guard let stream = stream as? String else { throw fail("field \"stream\" must be a string") }
        var actor = defaultActor
        if let a = object["actor"] {
            guard let a = a as? String else { throw fail("field \"actor\" must be a string") }
            actor = a
        }
        guard let payload = object["payload"] else { throw fail("missing field \"payload\" (use {} for none)") }
        let payloadData: Data
        do {
            payloadData = try JSONSerialization.data(
                withJSONObject: payload, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        } catch {
            throw fail("field \"payload\" cannot be encoded as JSON")
        }
        var time: Date?
        if let t = object["time"] {
            guard let t = t as? String, let date = Self.parseTime(t) else {
                throw fail("field \"time\" must be an ISO 8601 time such as 2026-11-21T09:30:00Z")
            }
            time = date
        }
        var schemaVersion: UInt32 = 1
        if let v = object["schema_version"] {
            // Not `v is Bool`: on Linux every JSON number bridges to Bool, so that refused `1` (found by
            // the fuzz seeds); a JSON boolean is the NSNumber whose type code is `c`.
            guard let number = v as? NSNumber, String(cString: number.objCType) != "c", let n = v as? Int, let value = UInt32(exactly: n) else {
                throw fail("field \"schema_version\" must be a non-negative integer")
            }
            schemaVersion = value
        }
        let event = NewEvent(type: type, stream: stream, actor: actor, time: time, schemaVersion: schemaVersion, payload: payloadData)
        do { try event.validate() } catch let error as LedgerError {
            throw fail(error.message)
        } catch {
            throw fail("\(error)")
        }
        return event
    }

    /// An ISO 8601 time of the years 1 to 9999 (`NewEvent.timeRange`). Foundation's formatter also takes
    /// forms such as `20E6-01-01T00:00:00Z`, far outside what microseconds hold (found by the fuzzer:
    /// the conversion trapped).
    package static func parseTime(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var date = f.date(from: text)
        if date == nil {
            f.formatOptions = [.withInternetDateTime]
            date = f.date(from: text)
        }
        guard let date, NewEvent.timeRange.contains(date) else { return nil }
        return date
    }

    private static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let detail = ns.userInfo[NSDebugDescriptionErrorKey] as? String { return detail }
        return "\(error)"
    }
}
