import ClewEngine
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import ClewReplay
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The HTTP API (docs/openapi.yaml describes every route), the OpenLineage endpoints and the dashboard.
/// The API's routes live in one collection per resource (`API/`: system, DAGs, runs, data, forensics,
/// access); this file assembles them and holds what they share.
enum Routes {
    static func build(_ state: ServerState) -> Router<ClewContext> {
        let router = Router(context: ClewContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthMiddleware(state: state))
        for collection in [
            SystemRoutes.collection(state), DAGRoutes.collection(state), RunRoutes.collection(state),
            DataRoutes.collection(state), ForensicsRoutes.collection(state), AccessRoutes.collection(state), VariableRoutes.collection(state),
            OperationsRoutes.collection(state),
        ] {
            router.addRoutes(collection)
        }
        LiveStream.register(router, state)
        OpenLineageRoutes.register(router, state)
        Dashboard.register(router, state)
        return router
    }

    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? s
    }

    static func param(_ context: ClewContext, _ name: String) throws -> String {
        let raw = try context.parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }

    static func asOf(_ request: Request, _ views: Views) throws -> UInt64? {
        guard let text = request.query("as_of") else { return nil }
        do { return try views.seq(asOf: text) } catch { throw APIError(.badRequest, "query parameter 'as_of': \(error)") }
    }

    /// A `since`/`until` query parameter: an ISO 8601 UTC time or a date.
    static func micros(_ text: String, _ name: String) throws -> Int64 {
        guard let m = OpenLineageIngest.micros(text) ?? OpenLineageIngest.micros(text + "T00:00:00Z") else {
            throw APIError(.badRequest, "query parameter '\(name)' must be an ISO 8601 UTC time, got '\(text)'")
        }
        return m
    }

    /// Every mutation (operator; admin for tokens) is audited, refused ones too: checks the role
    /// (auditing a refusal), runs `body`, audits the outcome.
    static func mutate(
        _ state: ServerState, _ request: Request, _ context: ClewContext, role: Role, action: String, target: String?,
        _ body: (Identity) async throws -> Response
    ) async throws -> Response {
        let identity: Identity
        do { identity = try context.require(role) } catch let e as APIError {
            try? await state.audit.record(context.audit(request, action: action, target: target, outcome: "denied", detail: e.message))
            throw e
        }
        do {
            let response = try await body(identity)
            try await state.audit.record(context.audit(request, action: action, target: target, outcome: "ok"))
            return response
        } catch let e as APIError {
            try? await state.audit.record(context.audit(request, action: action, target: target, outcome: "refused", detail: e.message))
            throw e
        }
    }

}

// MARK: Bodies and answers

struct TriggerRequest: Decodable {
    var dag: String
    var params: [String: String]?
    var callback_url: String?

    func callbackURL() throws -> URL? { try Self.url(callback_url) }

    static func url(_ text: String?) throws -> URL? {
        guard let text else { return nil }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host?.isEmpty == false else {
            throw APIError(.badRequest, "body: 'callback_url' must be an http(s) URL with a host, got '\(text)'")
        }
        return url
    }
}

struct ResubmitRequest: Decodable {
    var params: [String: String]?
    var rerun: [String]?
    var callback_url: String?
    func callbackURL() throws -> URL? { try TriggerRequest.url(callback_url) }
}

struct QuarantineRequest: Decodable {
    var node: String
    var reason: String
}

struct TokenRequest: Decodable {
    var name: String
    var role: String
}

struct DAGSummary: Encodable {
    var name: String
    var version: String
    var description: String
    /// As written: `@daily`, `0 6 * * *`, `every 3600s`.
    var schedule: String?
    var tasks: Int
    var params: [String: String]
    var origin: String
    /// This server can run it (`POST /api/runs`); false for DAGs only the ledger knows.
    var runnable: Bool
    var lastRun: RunRecord?
}

struct DAGDetail: Encodable {
    var name: String
    var version: String
    var schedule: String?
    var origin: String
    var runnable: Bool
    var definition: DAGSpec?
    var runs: [RunRecord]
}

struct RunResponse: Encodable {
    var run: RunRecord
    var tasks: [TaskRecord]
    /// Running in this server now (cancellable).
    var active: Bool
}

struct Integrity: Encodable {
    var stats: LedgerStats
    var checkpoints: [SignedCheckpoint]
    var views: [ViewStatusInfo]
    var lastVerify: VerifyCache.Result?
}

/// One recorded attempt, for the API and the replay inspector.
struct AttemptView: Encodable {
    struct Step: Encodable {
        var step: Int
        var kind: String
        var name: String
        var value: String?
        var seq: UInt64
        /// Where a traced task made the step (`file:line`), and how often a summarized loop ran.
        var source: String?
        var count: Int?
    }

    var id: String
    var task: String
    var attempt: Int
    var outcome: String
    var error: String?
    var output: String?
    var steps: [Step]

    init(_ a: RecordedAttempt) {
        id = a.id
        task = a.task
        attempt = a.attempt
        outcome = a.outcome.word
        if case .failed(let e) = a.outcome { error = e }
        output = a.output?.text
        steps = a.steps.map { Step(step: $0.step, kind: $0.kind, name: $0.name, value: $0.value.text, seq: $0.seq, source: $0.source, count: $0.count) }
    }
}

extension DAGSpec {
    /// The definition with secret-looking params and command environment variables redacted.
    var redactedForDisplay: DAGSpec {
        (try? JSONDecoder().decode(DAGSpec.self, from: canonicalJSON)) ?? self
    }
}
