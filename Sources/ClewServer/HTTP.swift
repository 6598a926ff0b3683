import ClewCore
import ClewModel
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context: the caller's address and, once authenticated, who they are.
struct ClewContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    var remoteAddress: SocketAddress?
    var identity: Identity?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The caller's address without the port, for audit events.
    var from: String {
        guard let remoteAddress else { return "unknown" }
        return remoteAddress.ipAddress ?? "\(remoteAddress)"
    }

    /// The authenticated caller with at least `role`, or 401/403.
    func require(_ role: Role) throws -> Identity {
        guard let identity else { throw APIError(.unauthorized, "a bearer token is required (Authorization: Bearer clew_…)") }
        guard identity.role >= role else {
            throw APIError(.forbidden, "token '\(identity.name)' has role \(identity.role.rawValue); this needs \(role.rawValue)")
        }
        return identity
    }
}

/// An API error: its status and a message naming what was wrong, sent as `{"error":{"status","message"}}`.
struct APIError: HTTPResponseError, CustomStringConvertible {
    var status: HTTPResponse.Status
    var message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    var description: String { "\(status.code) \(message)" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = #"{"error":{"status":\#(status.code),"message":\#(JSON.quote(message))}}"#
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if status == .unauthorized { headers[.wwwAuthenticate] = #"Bearer realm="clew""# }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Turns every error into JSON (API) so no handler leaks a Swift error description as plain text.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ClewContext

    func handle(_ request: Request, context: ClewContext, next: (Request, ClewContext) async throws -> Response) async throws -> Response {
        do {
            return try await convert { try await next(request, context) }
        } catch let error as APIError where Self.isPage(request) {
            // Dashboard pages answer errors as a page, with the same status and message.
            var response = Dashboard.render("error", "\(error.status.code) \(error.status.reasonPhrase)", context, ["message": error.message])
            response.status = error.status
            return response
        }
    }

    static func isPage(_ request: Request) -> Bool {
        let path = request.uri.path
        return request.method == .get && !path.hasPrefix("/api/") && !path.hasPrefix("/static/") && path != "/metrics"
    }

    private func convert(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            throw APIError(error.status, error.body ?? error.status.reasonPhrase)
        } catch let error as any HTTPResponseError {
            throw APIError(error.status, "\(error)")
        } catch is CancellationError {
            throw APIError(.serviceUnavailable, "the server is shutting down")
        } catch let error as any ClewError {
            throw APIError(HTTPResponse.Status(code: error.category.httpStatus), error.description)
        } catch {
            // Nobody classified it: the server's fault until shown otherwise, never the caller's. (Request
            // bodies that do not decode are classified where they are read: `Request.decodeJSON`.)
            throw APIError(.internalServerError, "internal error: \(error)")
        }
    }
}

enum Reply {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    /// A JSON response of an Encodable value.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        raw(try encoder.encode(value), status: status)
    }

    /// A JSON response of JSON text already encoded.
    static func raw(_ data: Data, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "text/html; charset=utf-8", .contentSecurityPolicy: "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ location: String, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }
}

extension Request {
    /// A query parameter, or nil when absent or empty.
    func query(_ name: String) -> String? {
        guard let v = uri.queryParameters.get(name), !v.isEmpty else { return nil }
        return v
    }

    /// An integer query parameter within bounds, or 400 naming it.
    func intQuery(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = query(name) else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw APIError(.badRequest, "query parameter '\(name)' must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return n
    }

    /// The body, gzip-decoded when `Content-Encoding: gzip`, at most `limit` bytes (413 above).
    mutating func bodyBytes(limit: Int) async throws -> ByteBuffer {
        var buffer: ByteBuffer
        do { buffer = try await collectBody(upTo: limit) } catch {
            throw APIError(.contentTooLarge, "request body is larger than \(limit) bytes")
        }
        let encoding = headers[.contentEncoding]?.lowercased().trimmingCharacters(in: .whitespaces)
        switch encoding {
        case nil, "identity": return buffer
        case "gzip", "x-gzip": return try Gzip.decode(&buffer, limit: limit)
        default: throw APIError(.unsupportedMediaType, "Content-Encoding '\(encoding ?? "")' is not supported (use gzip or none)")
        }
    }

    /// The body decoded as `T` from JSON, or 400 naming the field that did not decode.
    mutating func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int = 1 << 20) async throws -> T {
        let buffer = try await bodyBytes(limit: limit)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw APIError(.badRequest, "body: missing field '\(Self.path(ctx.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw APIError(.badRequest, "body: field '\(Self.path(ctx.codingPath))' has the wrong type (\(ctx.debugDescription))")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw APIError(.badRequest, "body is not valid JSON\(ctx.codingPath.isEmpty ? "" : " at '\(Self.path(ctx.codingPath))'"): \(ctx.debugDescription)")
        } catch {
            throw APIError(.badRequest, "body: \(error)")
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }
}

extension HTTPField.Name {
    static let contentSecurityPolicy = HTTPField.Name("Content-Security-Policy")!
}
