import ClewLedger
import ClewModel
import Foundation

/// Audit events: one `audit.recorded` (stream `audit`) per mutating call, allowed or refused:
/// who (token id and name, role), from where (remote address), what (method, path, action, target)
/// and how it ended.
struct AuditLog: Sendable {
    static let stream = "audit"
    let ledger: Ledger

    /// One entry: the schema's `audit.recorded` payload.
    typealias Entry = AuditRecorded

    /// The draft of an audit event, to append with the change it describes (one batch, all or nothing).
    func draft(_ entry: Entry) throws -> NewEvent {
        NewEvent(type: EventType.auditRecorded, stream: Self.stream, actor: entry.name.map { "token:\($0)" } ?? "anonymous",
                 timestampMicros: TokenStore.now(), payload: try JSON.canonical(entry))
    }

    func record(_ entry: Entry) async throws {
        _ = try await ledger.append(try draft(entry))
    }

    /// The most recent entries, newest first.
    func recent(limit: Int) throws -> [AuditRecord] {
        let seqs = try ledger.seqs(inStream: Self.stream)
        let decoder = JSONDecoder()
        return try seqs.suffix(limit).reversed().compactMap { seq in
            guard let event = try ledger.event(at: seq), let entry = try? decoder.decode(Entry.self, from: event.payload) else { return nil }
            return AuditRecord(seq: seq, time: ISO8601.string(micros: event.timestampMicros), entry: entry)
        }
    }
}

struct AuditRecord: Codable, Sendable {
    var seq: UInt64
    var time: String
    var entry: AuditLog.Entry
}

extension ClewContext {
    /// An audit entry for this request by this caller.
    func audit(_ request: Hummingbird.Request, action: String, target: String?, outcome: String, detail: String? = nil) -> AuditLog.Entry {
        AuditLog.Entry(
            token: identity?.tokenID, name: identity?.name, role: identity?.role.rawValue, from: from,
            method: request.method.rawValue, path: request.uri.path, action: action, target: target, outcome: outcome, detail: detail)
    }
}

import Hummingbird
