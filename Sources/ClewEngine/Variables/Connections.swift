public import ClewCore
public import ClewLedger
public import ClewModel
public import Foundation
import Synchronization

/// An operator's Connection as it stands (never its password).
public struct Connection: Sendable, Codable, Hashable {
    public var id: String
    public var type: String?
    public var hosts: [String]
    public var port: Int?
    public var schema: String?
    public var login: String?
    /// Where the password is read (`env:NAME`, `file:PATH`), where the task runs; nil for none.
    public var passwordReference: String?
    public var extra: [String: String]
    public var description: String?
    public var setBy: String
    public var setAt: String
    /// The seq of the `connection.set` event that gave it.
    public var seq: UInt64
}

/// One set or delete of a Connection.
public struct ConnectionChange: Sendable, Codable, Hashable {
    public var seq: UInt64
    public var time: String
    /// `set` or `deleted`.
    public var action: String
    public var by: String
    public var hosts: [String]?
    public var port: Int?
    public var schema: String?
    public var login: String?
    public var passwordReference: String?
    public var reason: String?
}

/// What a task was given of a Connection: the one host picked for it, and the rest but the password.
/// This is the recorded value of a `connection_read` step.
public struct ConnectionUse: Sendable, Codable, Hashable {
    public var id: String
    public var type: String?
    public var host: String
    public var port: Int?
    public var schema: String?
    public var login: String?
    public var extra: [String: String]?
}

/// A Connection as a task gets it: the recorded use, and the password read through its reference in
/// the task's own process (never recorded).
public struct ConnectionHandle: Sendable {
    public var use: ConnectionUse
    public var password: String?
    public var host: String { use.host }
    public var port: Int? { use.port }
    public var login: String? { use.login }
    public var schema: String? { use.schema }
}

/// A task attempt's use of a Connection, as `clew connections seen` lists it.
public struct ConnectionRead: Sendable, Codable, Hashable {
    public var task: String
    public var attempt: Int
    public var step: Int
    public var id: String
    /// The host it was given, and the rest of what it got (no password).
    public var use: ConnectionUse?
    public var setSeq: UInt64?
    public var setBy: String?
    public var setAt: String?
    public var passwordReference: String?
}

/// Operator Connections: a conn id names one or several hosts (a task is given one at random, for basic
/// load balancing, and which one is recorded), a port, schema, login and extra settings; the password
/// only by reference, never recorded. Every change is an event with who and why; every use by a task a
/// step of kind `connection_read` (docs/operations.md#connections).
public final class ConnectionStore: Sendable {
    private let log: SettingsLog<Connection, ConnectionChange>

    public init(ledger: Ledger) {
        log = SettingsLog(ledger: ledger, stream: StreamID.connections) { event, time in
            guard let c = try? JSONDecoder().decode(ConnectionChanged.self, from: event.payload) else { return nil }
            switch event.type {
            case EventType.connectionSet:
                let connection = Connection(
                    id: c.id, type: c.type, hosts: c.hosts ?? [], port: c.port, schema: c.schema, login: c.login,
                    passwordReference: c.passwordReference, extra: c.extra ?? [:], description: c.description, setBy: event.actor, setAt: time,
                    seq: event.seq)
                let change = ConnectionChange(
                    seq: event.seq, time: time, action: "set", by: event.actor, hosts: c.hosts, port: c.port, schema: c.schema, login: c.login,
                    passwordReference: c.passwordReference, reason: c.reason)
                return (c.id, connection, change)
            case EventType.connectionDeleted:
                return (c.id, nil, ConnectionChange(seq: event.seq, time: time, action: "deleted", by: event.actor, reason: c.reason))
            default: return nil
            }
        }
    }

    /// Every Connection that is set, by id.
    public func list() throws -> [Connection] { try log.all().values.sorted { $0.id < $1.id } }

    /// One Connection, or nil when it is not set.
    public func get(_ id: String) throws -> Connection? { try log.get(id) }

    /// Every set and delete of `id`, oldest first.
    public func history(_ id: String) throws -> [ConnectionChange] { try log.history(id) }

    /// Sets a Connection (replacing what it was). Durable before it returns.
    /// - Throws: ``VariableError`` naming what is wrong (a bad id, no host, a bad host or port, a
    ///   malformed password reference, a secret-looking extra key given in clear); nothing is recorded then.
    @discardableResult
    public func set(_ change: ConnectionChanged, by actor: String) async throws -> Connection {
        try VariableStore.check(key: change.id, what: "connection id")
        let hosts = change.hosts ?? []
        guard !hosts.isEmpty else { throw VariableError("connection '\(change.id)' needs at least one host") }
        for host in hosts where host.isEmpty || host.utf8.count > 253 || host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" }) {
            throw VariableError("connection '\(change.id)': host '\(host)' must be a host name or address (no spaces, '/' or '@'; at most 253)")
        }
        if Set(hosts).count != hosts.count { throw VariableError("connection '\(change.id)' lists a host twice") }
        if let port = change.port, !(1...65_535).contains(port) { throw VariableError("connection '\(change.id)': port \(port) is not in 1-65535") }
        if let reference = change.passwordReference { _ = try VariableReference(reference) }
        for key in (change.extra ?? [:]).keys where Redaction.isSecret(key) {
            throw VariableError(
                "connection '\(change.id)': extra '\(key)' looks secret, so it is never recorded in clear; give secrets as the password reference")
        }
        for (what, text) in [("type", change.type), ("schema", change.schema), ("login", change.login), ("description", change.description), ("reason", change.reason)] {
            if let text, text.utf8.count > 1_000 { throw VariableError("connection '\(change.id)': the \(what) has more than 1,000 bytes") }
        }
        if (change.extra ?? [:]).reduce(0, { $0 + $1.key.utf8.count + $1.value.utf8.count }) > 65_536 {
            throw VariableError(.tooLarge, "connection '\(change.id)': extra holds more than 64 KiB")
        }
        try await log.append(type: EventType.connectionSet, actor: actor, change)
        guard let set = try get(change.id) else { throw VariableError(.internal, "connection '\(change.id)' was appended but not found") }
        return set
    }

    /// Deletes a Connection; tasks that use it fail from then on, naming it.
    public func delete(_ id: String, reason: String? = nil, by actor: String) async throws {
        try VariableStore.check(key: id, what: "connection id")
        guard try get(id) != nil else { throw VariableError(.notFound, "no connection '\(id)' is set") }
        try await log.append(type: EventType.connectionDeleted, actor: actor, ConnectionChanged(id: id, reason: reason))
    }

    /// What a task is given now: one host picked with `pick` (an index below the host count), and the
    /// origin its step records (`connection.set@<seq>`, with the password's reference).
    public func resolve(_ id: String, pick: (Int) -> Int) throws -> (use: ConnectionUse, origin: String) {
        guard let c = try get(id) else { throw VariableError(.notFound, "no connection '\(id)' is set (clew connections set \(id) --host …)") }
        let host = c.hosts[pick(c.hosts.count)]
        let use = ConnectionUse(id: id, type: c.type, host: host, port: c.port, schema: c.schema, login: c.login, extra: c.extra.isEmpty ? nil : c.extra)
        return (use, "\(EventType.connectionSet)@\(c.seq)" + (c.passwordReference.map { " \($0)" } ?? ""))
    }

    /// The Connections run `run` of `dag` used: each use by task, attempt and step, with the host it was
    /// given and the set it came from.
    public func reads(dag: String, run: String) throws -> [ConnectionRead] {
        try log.reads(dag: dag, run: run, kind: StepKind.connectionRead, setType: EventType.connectionSet, seq: \.seq).map { r in
            ConnectionRead(
                task: r.step.task, attempt: r.step.attempt ?? 1, step: r.step.step ?? 0, id: r.step.name ?? "",
                use: r.step.value.flatMap { try? JSONDecoder().decode(ConnectionUse.self, from: Data($0.tree.text.utf8)) },
                setSeq: r.setSeq, setBy: r.change?.by, setAt: r.change?.time, passwordReference: r.reference)
        }
    }
}
