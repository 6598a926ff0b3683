public import ClewCore
public import ClewLedger
import ClewModel
import Crypto
import Foundation
import Synchronization

/// What a token may do. Viewers read; operators also trigger, cancel, resubmit, quarantine and send
/// OpenLineage events; admins also manage tokens and read the audit log.
public enum Role: String, Codable, Sendable, CaseIterable, Comparable {
    case viewer, `operator`, admin

    var rank: Int {
        switch self {
        case .viewer: return 0
        case .operator: return 1
        case .admin: return 2
        }
    }

    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}

/// Who made a request: a token's id, name and role (never the token itself).
public struct Identity: Sendable, Hashable, Codable {
    public var tokenID: String
    public var name: String
    public var role: Role
}

/// A token as listed: everything but the secret and its hash.
public struct TokenInfo: Sendable, Codable, Hashable {
    public var id: String
    public var name: String
    public var role: Role
    public var createdAt: String
    public var createdBy: String
    public var revoked: Bool
}

/// A freshly minted token: the only time the secret is shown.
public struct MintedToken: Sendable, Codable {
    public var info: TokenInfo
    /// `clew_<id>_<secret>`: give it as `Authorization: Bearer <token>`.
    public var token: String
}

/// API tokens, kept in the ledger (stream `auth/tokens`) as `auth.token_created` / `auth.token_revoked`
/// events holding only each token's SHA-256. Tokens look like `clew_<8 hex id>_<43 chars of base64url>`;
/// checking one is a lookup by id and a constant-time comparison of digests.
public final class TokenStore: Sendable {
    public static let stream = "auth/tokens"

    private struct Stored {
        var info: TokenInfo
        var digest: [UInt8]
    }

    /// The tokens folded from the stream so far, and the seq folded through.
    private struct State {
        var tokens: [String: Stored] = [:]
        var foldedThrough: UInt64 = 0
    }

    private let ledger: Ledger
    private let state = Mutex(State())

    public init(ledger: Ledger) throws {
        self.ledger = ledger
        try refresh()
    }

    /// Folds token events appended since the last look (by this process or by `clew token` elsewhere).
    func refresh() throws {
        // Folded under the lock, so two callers never fold the same events twice.
        try state.withLock { state in
            let decoder = JSONDecoder()
            for event in try ledger.events(inStream: Self.stream, after: state.foldedThrough) {
                state.foldedThrough = event.seq
                switch event.type {
                case EventType.tokenCreated:
                    guard let c = try? decoder.decode(TokenCreated.self, from: event.payload), let name = c.name,
                          let role = c.role.flatMap(Role.init(rawValue:)), let createdBy = c.createdBy,
                          let digest = c.sha256.flatMap(Hex.bytes)
                    else { continue }
                    state.tokens[c.id] = Stored(
                        info: TokenInfo(id: c.id, name: name, role: role, createdAt: ISO8601.string(micros: event.timestampMicros), createdBy: createdBy, revoked: false),
                        digest: digest)
                case EventType.tokenRevoked:
                    guard let r = try? decoder.decode(TokenRevoked.self, from: event.payload) else { continue }
                    state.tokens[r.id]?.info.revoked = true
                default: continue
                }
            }
        }
    }

    /// Every token ever minted (revoked ones marked), oldest first.
    public func list() throws -> [TokenInfo] {
        try refresh()
        return state.withLock { $0.tokens.values.map(\.info).sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) } }
    }

    /// Whether any token that is not revoked exists.
    public var hasActiveTokens: Bool {
        (try? list().contains { !$0.revoked }) ?? false
    }

    /// Mints a token: appends its digest to the ledger (durable before this returns) and returns the secret once.
    /// - Throws: ``TokenError`` for an empty or overlong name.
    public func mint(name: String, role: Role, by creator: String) async throws -> MintedToken {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 100 else { throw TokenError("a token needs a name of 1 to 100 characters") }
        // The name is shown in lists, audit lines and the dashboard: printable text only (schemathesis
        // minted names with control characters, which reached the audit log as they were).
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw TokenError("a token's name must be printable text; \(String(reflecting: trimmed)) contains a control character")
        }
        var idBytes = [UInt8](repeating: 0, count: 4)
        var secret = [UInt8](repeating: 0, count: 32)
        for i in idBytes.indices { idBytes[i] = UInt8.random(in: 0...255) }
        for i in secret.indices { secret[i] = UInt8.random(in: 0...255) }
        let id = idBytes.hex
        let token = "clew_\(id)_" + Data(secret).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let digest = Array(SHA256.hash(data: Data(token.utf8)))
        let payload = try JSON.canonical(TokenCreated(id: id, name: trimmed, role: role.rawValue, sha256: digest.hex, createdBy: creator))
        _ = try await ledger.append(NewEvent(type: EventType.tokenCreated, stream: Self.stream, actor: "clew-serve", timestampMicros: Self.now(), payload: payload))
        try refresh()
        let info = try state.withLock { state in
            guard let info = state.tokens[id]?.info else { throw TokenError(.internal, "token \(id) was appended but not found") }
            return info
        }
        return MintedToken(info: info, token: token)
    }

    /// Revokes a token by id; requests bearing it are refused from then on.
    /// - Parameter keepingAnAdmin: refuse to revoke the last active admin token (what the API does: after
    ///   it, nobody could mint or revoke tokens over HTTP; `clew token` on the ledger's host still can).
    /// - Returns: false when no such token exists or it was already revoked.
    /// - Throws: ``TokenError`` (conflict) for the last admin token when `keepingAnAdmin`.
    public func revoke(id: String, by revoker: String, keepingAnAdmin: Bool = true) async throws -> Bool {
        try refresh()
        let (known, lastAdmin) = state.withLock { state -> (Bool, Bool) in
            guard let target = state.tokens[id], !target.info.revoked else { return (false, false) }
            let admins = state.tokens.values.filter { !$0.info.revoked && $0.info.role == .admin }
            return (true, target.info.role == .admin && admins.count == 1)
        }
        guard known else { return false }
        if lastAdmin && keepingAnAdmin {
            throw TokenError(.conflict, "token \(id) is the last admin token; mint another admin token first (`clew token create --role admin`), or revoke it with `clew token revoke` on the ledger's host")
        }
        let payload = try JSON.canonical(TokenRevoked(id: id, revokedBy: revoker))
        _ = try await ledger.append(NewEvent(type: EventType.tokenRevoked, stream: Self.stream, actor: "clew-serve", timestampMicros: Self.now(), payload: payload))
        try refresh()
        return true
    }

    /// The identity a presented token stands for, or nil for an unknown, malformed or revoked token.
    public func authenticate(_ token: String) -> Identity? {
        let parts = token.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "clew", parts[1].count == 8 else { return nil }
        let id = String(parts[1])
        let presented = Array(SHA256.hash(data: Data(token.utf8)))
        func check() -> Identity? {
            state.withLock { state in
                guard let stored = state.tokens[id], !stored.info.revoked, Self.equal(stored.digest, presented) else { return nil }
                return Identity(tokenID: id, name: stored.info.name, role: stored.info.role)
            }
        }
        if let identity = check() { return identity }
        // Minted or revoked by another process since the last look.
        try? refresh()
        return check()
    }

    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }



    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}

/// A token request that cannot be honoured.
public struct TokenError: ClewError {
    public var description: String
    public var category: ErrorCategory
    public init(_ category: ErrorCategory = .invalidInput, _ description: String) {
        self.description = description
        self.category = category
    }
    public init(_ description: String) { self.init(.invalidInput, description) }
}
