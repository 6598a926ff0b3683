public import ClewCore
public import ClewLedger
public import ClewModel
public import Foundation
import Synchronization

/// An operator's Variable as it stands: its value (or reference) and who set it, when.
public struct Variable: Sendable, Codable, Hashable {
    public var key: String
    /// The value; `[REDACTED]` for a secret-looking key, which is only ever set by reference.
    public var value: String?
    /// `env:NAME` or `file:PATH`: read by the process that runs the task, never recorded.
    public var reference: String?
    public var description: String?
    /// Whether the key looks secret (the engine's redaction rules): its value is never shown or recorded.
    public var secret: Bool
    public var setBy: String
    /// ISO 8601 UTC.
    public var setAt: String
    /// The seq of the `variable.set` event that gave this value.
    public var seq: UInt64
}

/// One set or delete of a Variable, as `clew variables history` lists it.
public struct VariableChange: Sendable, Codable, Hashable {
    public var seq: UInt64
    public var time: String
    /// `set` or `deleted`.
    public var action: String
    public var by: String
    public var value: String?
    public var reference: String?
    public var reason: String?
}

/// A task attempt's read of a Variable: what it got and which set gave it.
public struct VariableRead: Sendable, Codable, Hashable {
    public var task: String
    public var attempt: Int
    public var step: Int
    public var key: String
    /// The value the attempt read (`[REDACTED]` for a secret-looking key).
    public var value: String?
    /// The `variable.set` that gave it, who made it and when; its reference for a secret.
    public var setSeq: UInt64?
    public var setBy: String?
    public var setAt: String?
    public var reference: String?
}

/// A Variable request that cannot be done, naming what was wrong.
public struct VariableError: ClewError {
    public var description: String
    public var category: ErrorCategory
    public init(_ category: ErrorCategory, _ description: String) {
        self.description = description
        self.category = category
    }
    public init(_ description: String) { self.init(.invalidInput, description) }
}

/// Operator Variables: a key-value store whose every change is an event (stream `variables`, with who
/// and why) and whose every read by a task is a recorded step of kind `variable_read` naming the set it
/// saw. So "which value of `db_config` did run R see, and who set it" is one query (``reads(dag:run:)``),
/// and a replay gets the value the run read, not today's.
///
/// Values of secret-looking keys (the engine's redaction rules) are never taken in clear: such a key is
/// set by reference (`env:NAME`, `file:PATH`), resolved in the process that runs the task.
public final class VariableStore: Sendable {
    /// Longest value, in UTF-8 bytes.
    public static let maxValueBytes = 65_536

    private let log: SettingsLog<Variable, VariableChange>

    public init(ledger: Ledger) {
        log = SettingsLog(ledger: ledger, stream: StreamID.variables) { event, time in
            guard let c = try? JSONDecoder().decode(VariableChanged.self, from: event.payload) else { return nil }
            let secret = Redaction.isSecret(c.key)
            let shown = secret && c.value != nil ? "[REDACTED]" : c.value
            switch event.type {
            case EventType.variableSet:
                let v = Variable(
                    key: c.key, value: shown, reference: c.reference, description: c.description, secret: secret, setBy: event.actor,
                    setAt: time, seq: event.seq)
                return (c.key, v, VariableChange(seq: event.seq, time: time, action: "set", by: event.actor, value: shown, reference: c.reference, reason: c.reason))
            case EventType.variableDeleted:
                return (c.key, nil, VariableChange(seq: event.seq, time: time, action: "deleted", by: event.actor, value: nil, reference: nil, reason: c.reason))
            default: return nil
            }
        }
    }

    /// Every Variable that is set, by key.
    public func list() throws -> [Variable] { try log.all().values.sorted { $0.key < $1.key } }

    /// One Variable, or nil when it is not set (never set, or deleted).
    public func get(_ key: String) throws -> Variable? { try log.get(key) }

    /// Every set and delete of `key`, oldest first (empty when it was never set).
    public func history(_ key: String) throws -> [VariableChange] { try log.history(key) }

    /// Sets a Variable: `value`, or `reference` (required for a secret-looking key). Durable before it returns.
    /// - Throws: ``VariableError`` naming what is wrong (a bad key, both or neither of value and reference,
    ///   a secret in clear, a value over 64 KiB, a malformed reference); nothing is recorded then.
    @discardableResult
    public func set(_ key: String, value: String?, reference: String?, description: String? = nil, reason: String? = nil, by actor: String) async throws -> Variable {
        try Self.check(key: key)
        switch (value, reference) {
        case (nil, nil): throw VariableError("variable '\(key)' needs a value or a reference (env:NAME or file:PATH)")
        case (.some, .some): throw VariableError("variable '\(key)': give a value or a reference, not both")
        case (.some(let v), nil):
            if Redaction.isSecret(key) {
                throw VariableError(
                    "variable '\(key)' looks secret, so its value is never recorded in clear: give it by reference (env:NAME or file:PATH, read where the task runs)")
            }
            if v.utf8.count > Self.maxValueBytes { throw VariableError(.tooLarge, "variable '\(key)': the value has \(v.utf8.count) bytes (at most \(Self.maxValueBytes))") }
        case (nil, .some(let r)): _ = try VariableReference(r)
        }
        try Self.check(text: description, what: "description", key: key)
        try Self.check(text: reason, what: "reason", key: key)
        try await log.append(
            type: EventType.variableSet, actor: actor, VariableChanged(key: key, value: value, reference: reference, description: description, reason: reason))
        guard let set = try get(key) else { throw VariableError(.internal, "variable '\(key)' was appended but not found") }
        return set
    }

    /// Deletes a Variable; tasks that read it fail from then on, naming it.
    /// - Throws: ``VariableError`` (not found) when it is not set.
    public func delete(_ key: String, reason: String? = nil, by actor: String) async throws {
        try Self.check(key: key)
        try Self.check(text: reason, what: "reason", key: key)
        guard try get(key) != nil else { throw VariableError(.notFound, "no variable '\(key)' is set") }
        try await log.append(type: EventType.variableDeleted, actor: actor, VariableChanged(key: key, reason: reason))
    }

    /// The value a task reads now, and where it came from (`variable.set@<seq>`, with the reference
    /// when it was read through one): what the read step records as its source.
    /// - Throws: ``VariableError`` when the key is not set or its reference cannot be read here.
    public func resolve(_ key: String) throws -> (value: String, origin: String) {
        guard let v = try get(key) else {
            throw VariableError(.notFound, "no variable '\(key)' is set (clew variables set \(key) …)")
        }
        let origin = "\(EventType.variableSet)@\(v.seq)" + (v.reference.map { " \($0)" } ?? "")
        if let reference = v.reference { return (try VariableReference(reference).read(for: "variable '\(key)'"), origin) }
        guard let value = v.value, !v.secret else {
            throw VariableError(.internal, "variable '\(key)' has neither a value nor a reference")
        }
        return (value, origin)
    }

    /// What run `run` of `dag` read of Variables: each read by task, attempt and step, joined with the set it saw.
    public func reads(dag: String, run: String) throws -> [VariableRead] {
        try log.reads(dag: dag, run: run, kind: StepKind.variableRead, setType: EventType.variableSet, seq: \.seq).map { r in
            VariableRead(
                task: r.step.task, attempt: r.step.attempt ?? 1, step: r.step.step ?? 0, key: r.step.name ?? "", value: r.step.value?.tree.string,
                setSeq: r.setSeq, setBy: r.change?.by, setAt: r.change?.time, reference: r.reference)
        }
    }

    /// The set seq and reference named by a read step's source (`variable.set@42 env:DB_PASSWORD`, or
    /// for a Connection `connection.set@42 env:PGPASSWORD`).
    public static func parse(origin: String?, type: String = EventType.variableSet) -> (UInt64, String?)? {
        guard let origin, origin.hasPrefix("\(type)@") else { return nil }
        let rest = origin.dropFirst(type.count + 1)
        let parts = rest.split(separator: " ", maxSplits: 1)
        guard let first = parts.first, let seq = UInt64(first) else { return nil }
        return (seq, parts.count > 1 ? String(parts[1]) : nil)
    }

    /// Keys (and connection ids): a letter or `_`, then letters, digits, `_`, `.`, `-`; at most 100 bytes.
    public static func check(key: String, what: String = "variable key") throws {
        let ok = !key.isEmpty && key.utf8.count <= 100
            && key.unicodeScalars.first.map { CharacterSet.letters.contains($0) || $0 == "_" } == true
            && key.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_.-".unicodeScalars.contains($0)) }
        if !ok { throw VariableError("\(what) '\(key)' must start with a letter or _ and hold only ASCII letters, digits, _ . - (at most 100)") }
    }


    private static func check(text: String?, what: String, key: String) throws {
        if let text, text.utf8.count > 1_000 { throw VariableError("variable '\(key)': the \(what) has more than 1,000 bytes") }
    }
}

/// Where a Variable's value is when it is not recorded: `env:NAME` (an environment variable of the
/// process that runs the task) or `file:/absolute/path` (its contents, without a final newline).
public struct VariableReference: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case environment(String), file(String) }
    public let kind: Kind

    /// - Throws: ``VariableError`` for anything but `env:NAME` or `file:/absolute/path`.
    public init(_ text: String) throws {
        if text.hasPrefix("env:") {
            let name = String(text.dropFirst(4))
            let ok = !name.isEmpty && name.unicodeScalars.first.map { CharacterSet.letters.contains($0) || $0 == "_" } == true
                && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") }
            guard ok else { throw VariableError("reference '\(text)': env: needs an environment variable name (letters, digits, _)") }
            kind = .environment(name)
        } else if text.hasPrefix("file:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else { throw VariableError("reference '\(text)': file: needs an absolute path") }
            kind = .file(path)
        } else {
            throw VariableError("reference '\(text)' must be env:NAME or file:/absolute/path")
        }
    }

    /// The value, read in this process; `what` names whose it is in errors (`variable 'db_password'`).
    /// - Throws: ``VariableError`` when the environment variable is not set or the file cannot be read.
    public func read(for what: String) throws -> String {
        switch kind {
        case .environment(let name):
            guard let value = ProcessInfo.processInfo.environment[name] else {
                throw VariableError(.notFound, "\(what) refers to env:\(name), which is not set in this process (\(ProcessInfo.processInfo.hostName))")
            }
            return value
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path), var text = String(data: data, encoding: .utf8) else {
                throw VariableError(.notFound, "\(what) refers to file:\(path), which cannot be read as UTF-8 text here (\(ProcessInfo.processInfo.hostName))")
            }
            if text.hasSuffix("\n") { text.removeLast() }
            return text
        }
    }
}
