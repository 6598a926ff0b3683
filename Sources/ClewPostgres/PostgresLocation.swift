import ClewLedger
public import Foundation

/// Where a PostgreSQL ledger is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]`
/// (also `postgresql://`), as libpq writes it. `sslmode` is `disable`, `prefer` (the default:
/// encrypted when the server offers it, its certificate not checked, as libpq does), `require` (the
/// same, but refuse a server without TLS) or `verify-full` (encrypted, the certificate checked against
/// the system's roots and the host name). The password may also come from `PGPASSWORD`.
public struct PostgresLocation: Sendable, Hashable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Whether `text` names a PostgreSQL ledger rather than a directory.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses a URL.
    /// - Throws: ``LedgerError`` (`.invalidInput`) naming what is wrong with it.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard Self.isURL(text), let url = URLComponents(string: text) else {
            throw LedgerError(.invalidInput, "\(Self.redacted(text)) is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)")
        }
        guard let host = url.host, !host.isEmpty else {
            throw LedgerError(.invalidInput, "the PostgreSQL URL \(Self.redacted(text)) names no host")
        }
        guard let user = url.user, !user.isEmpty else {
            throw LedgerError(.invalidInput, "the PostgreSQL URL \(Self.redacted(text)) names no user (postgres://USER@HOST/DATABASE)")
        }
        let database = String(url.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw LedgerError(.invalidInput, "the PostgreSQL URL \(Self.redacted(text)) names no database (postgres://USER@HOST/DATABASE)")
        }
        if let port = url.port, !(1...65535).contains(port) {
            throw LedgerError(.invalidInput, "the PostgreSQL URL \(Self.redacted(text)) has port \(port), outside 1-65535")
        }
        var tls = TLSMode.prefer
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw LedgerError(
                        .invalidInput,
                        "sslmode=\(item.value ?? "") in \(Self.redacted(text)) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                tls = mode
            default:
                throw LedgerError(.invalidInput, "the PostgreSQL URL \(Self.redacted(text)) has an unknown parameter \(item.name) (only sslmode is read)")
            }
        }
        self.host = host
        self.port = url.port ?? 5432
        self.user = user
        self.password = url.password ?? environment["PGPASSWORD"]
        self.database = database
        self.tls = tls
    }

    /// The URL without its password.
    public var description: String {
        "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" + (tls == .prefer ? "" : "?sslmode=\(tls.rawValue)")
    }

    /// The URL with its password (percent-encoded), to hand to another process; never for messages.
    public var connectionURL: String {
        let allowed = CharacterSet.urlUserAllowed.subtracting(CharacterSet(charactersIn: ":@/"))
        let user = self.user.addingPercentEncoding(withAllowedCharacters: allowed) ?? self.user
        let secret = password.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0) } ?? ""
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "postgres://\(user)\(secret)@\(host):\(port)/\(database)?sslmode=\(tls.rawValue)"
    }

    /// `text` with any password replaced by `***`, for messages about a URL that does not parse.
    static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@"), let scheme = text.range(of: "://"), scheme.upperBound < at else { return text }
        let credentials = text[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}
