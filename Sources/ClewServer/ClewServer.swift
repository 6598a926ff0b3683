import ClewForensics
public import ClewEngine
public import ClewLedger
public import ClewProjections
public import Foundation
import Hummingbird
public import Logging
import NIOCore
import Synchronization

/// How `clew serve` listens and behaves.
public struct ServerConfiguration: Sendable {
    /// Address to bind (loopback by default: put a TLS-terminating proxy in front to expose it).
    public var host = "127.0.0.1"
    /// Port; 0 picks a free one (reported through `onListening`).
    public var port = 8080
    /// Largest request body accepted, after gzip decoding (413 above it).
    public var maxBodyBytes = 32 << 20
    /// How often a run's outcome is posted to its callback URL before giving up, and the first delay
    /// between tries (doubled after each failure).
    public var callbackAttempts = 5
    public var callbackBaseDelay: Duration = .seconds(1)
    /// How often the live stream polls the log for new events.
    public var streamPollInterval: Duration = .milliseconds(200)
    /// How often the views look for appends nobody announced (this process's commits and writes to the
    /// log file by others wake them at once).
    public var viewsPollInterval: Duration = .seconds(1)
    /// How long a read waits for the views to fold what the log held when it arrived before it answers
    /// from the views as they are (only when the log grows faster than the views fold).
    public var viewsReadWait: Duration = .seconds(2)
    /// Where Debian installs browser-side libraries (`libjs-chart.js`, `node-dagre-layout`).
    public var javascriptRoots: [URL] = [URL(fileURLWithPath: "/usr/share/javascript"), URL(fileURLWithPath: "/usr/share/nodejs")]
    /// Where the OpenLineage JSON schemas are read from (`OpenLineage.json` and `facets/`); nil uses the
    /// copy built into the executable.
    public var openLineageSpec: URL?
    /// Dashboard session lifetime.
    public var sessionLifetime: Duration = .seconds(8 * 3600)
    public var logger = Logger(label: "clew.serve")

    public init(openLineageSpec: URL? = nil) { self.openLineageSpec = openLineageSpec }
}

/// `clew serve`: the HTTP API, OpenLineage ingest, token access control and the dashboard over one
/// ledger. Everything it changes goes through the ledger as events; everything it answers is read from
/// the views (caught up with the log in slices, see `ViewsHost`) or the log.
public final class ClewServer: Sendable {
    let state: ServerState

    /// - Parameters:
    ///   - views: the ledger's views; the server holds them for its lifetime (one environment per process).
    ///   - engine: runs DAGs triggered over HTTP.
    public init(ledger: Ledger, views: Views, engine: Engine, configuration: ServerConfiguration) throws {
        state = try ServerState(ledger: ledger, views: views, engine: engine, configuration: configuration)
    }

    /// The token store, for minting the first admin token before serving.
    public var tokens: TokenStore { state.tokens }

    /// Serves until the task is cancelled or SIGINT/SIGTERM arrives (graceful shutdown through
    /// swift-service-lifecycle); runs still in flight are cancelled and recorded as such.
    /// - Parameter onListening: called with the bound port once the server accepts connections.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try state.metrics.start(state)
        let follower = state.views.follow(every: state.configuration.viewsPollInterval, logger: state.configuration.logger)
        let router = Routes.build(state)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(state.configuration.host, port: state.configuration.port), serverName: "clew"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: state.configuration.logger
        )
        let served: Result<Void, any Error>
        do {
            try await app.runService()
            served = .success(())
        } catch {
            served = .failure(error)
        }
        // The follower's slice in progress ends before the caller may close the views.
        follower.cancel()
        await follower.value
        await state.runs.cancelAll()
        try served.get()
    }
}

/// Everything a request handler reaches: the ledger, the views, the engine, tokens, runs in flight,
/// the OpenLineage ingester.
final class ServerState: Sendable {
    let ledger: Ledger
    let views: ViewsHost
    let engine: Engine
    let configuration: ServerConfiguration
    let tokens: TokenStore
    let sessions: SessionStore
    let runs: RunManager
    let ingest: OpenLineageIngest
    let audit: AuditLog
    let verifier: VerifyCache
    let assets: Assets
    let metrics: ServerMetrics

    init(ledger: Ledger, views: Views, engine: Engine, configuration: ServerConfiguration) throws {
        self.ledger = ledger
        self.views = ViewsHost(ledger: ledger, views: views, readWait: configuration.viewsReadWait)
        self.engine = engine
        self.configuration = configuration
        tokens = try TokenStore(ledger: ledger)
        sessions = SessionStore(lifetime: configuration.sessionLifetime)
        audit = AuditLog(ledger: ledger)
        runs = RunManager(engine: engine, ledger: ledger, configuration: configuration)
        ingest = OpenLineageIngest(
            ledger: ledger, schema: try configuration.openLineageSpec.map { try OpenLineageSchema(directory: $0) } ?? OpenLineageSchema.embedded())
        verifier = VerifyCache(ledger: ledger)
        assets = Assets(roots: configuration.javascriptRoots)
        metrics = ServerMetrics()
    }
}

/// The views, shared by every request: one caller at a time on the host's own queue (reads are
/// blocking LMDB work, never run on the cooperative pool that request handlers, timers and runs share).
///
/// The views follow the log in slices of ``slice`` events, each its own turn on the queue, so reads
/// are served between slices however fast the log grows: a follower catches up after every append
/// (this process's, another's, a replica's copy), and a read first catches up to the log's end as it
/// was when the read arrived (so a client reads what it has just written), for at most ``readWait``;
/// past that, when the log grows faster than the views fold, it answers from the views as they are
/// (`clew_view_lag_events` in `/metrics` says how far behind).
final class ViewsHost: @unchecked Sendable {
    // @unchecked Sendable: `views` and `forensics` are touched only inside `run` on `executor`, whose
    // serial queue runs one read at a time, except `Views.checkpoints()`, which takes the views' lock;
    // `ledger` is Sendable.
    private let executor = BlockingExecutor(label: "clew.serve.views")
    private let ledger: Ledger
    private let views: Views
    private let forensics: Forensics
    /// Events folded per turn on the queue: ~20-100 ms of folding on 2 cores.
    let slice: UInt64
    let readWait: Duration

    init(ledger: Ledger, views: Views, slice: UInt64 = 2_000, readWait: Duration = .seconds(2)) {
        self.ledger = ledger
        self.views = views
        self.slice = slice
        self.readWait = readWait
        forensics = Forensics(ledger: ledger, views: views)
    }

    /// Runs `body` on the views once they have folded what the log held now, or once `wait` (by default
    /// ``readWait``) has passed, whichever comes first.
    func read<T>(wait: Duration? = nil, _ body: (Views, Forensics) throws -> T) async throws -> T {
        let target = try ledger.lastSeq
        let deadline = ContinuousClock.now + (wait ?? readWait)
        while true {
            let answer: T? = try await executor.run {
                // A read folds no further than the log's end as it arrived (the follower folds the rest),
                // and nothing once past its wait: under a log that grows faster than the views fold,
                // every read would otherwise add a slice of others' events to the queue before its answer.
                if seq < target, ContinuousClock.now < deadline, try views.catchUp(maxEvents: slice, through: target) < target,
                    ContinuousClock.now < deadline
                {
                    return nil
                }
                return .some(try body(views, forensics))
            }
            if let answer { return answer }
        }
    }

    /// The seq every view has folded through, read without waiting for the queue.
    var seq: UInt64 { views.checkpoints().values.min() ?? 0 }

    /// Catches the views up after each change of the log, a slice per turn, until cancelled. Errors
    /// are logged and tried again at the next change (reads meet and report them too).
    func follow(every pollInterval: Duration, logger: Logger) -> Task<Void, Never> {
        let signals = ledger.changeSignals(every: pollInterval)
        return Task {
            for await _ in signals {
                do {
                    while !Task.isCancelled {
                        let (reached, last) = try await executor.run { (try views.catchUp(maxEvents: slice), try ledger.lastSeq) }
                        if reached >= last { break }
                    }
                } catch {
                    logger.error("views: catching up failed: \(error)")
                }
                if Task.isCancelled { break }
            }
        }
    }

    /// Each view's checkpoint as it is, before any catching up (how far behind the log it is).
    func status() async throws -> [ViewStatusInfo] {
        try await executor.run { try views.status() }
    }
}

/// The last `verify` of the ledger (run on demand: it reads every record, on a queue of its own).
final class VerifyCache: Sendable {
    struct Result: Codable, Sendable {
        var report: VerifyReport
        var at: String
        var millis: Int
    }

    private let executor = BlockingExecutor(label: "clew.serve.verify")
    private let ledger: Ledger
    private let last = Mutex<Result?>(nil)

    init(ledger: Ledger) { self.ledger = ledger }

    var latest: Result? { last.withLock { $0 } }

    func run() async throws -> Result {
        let start = ContinuousClock.now
        let report = try await executor.run { try ledger.verify() }
        let elapsed = ContinuousClock.now - start
        let result = Result(report: report, at: ISO8601DateFormatter().string(from: Date()), millis: Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000))
        last.withLock { $0 = result }
        return result
    }
}
