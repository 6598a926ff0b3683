import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewServer
import Foundation
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API, OpenLineage ingest and the dashboard over the ledger.",
        discussion: """
        Listens on loopback by default. Every request needs a token (Authorization: Bearer …, or a dashboard
        login); when the ledger has none, an admin token named 'bootstrap' is minted and printed once on stderr.
        API: docs/openapi.yaml. Guide: docs/server.md.
        """)

    @Option(name: .long, help: "Address to bind.") var host = "127.0.0.1"
    @Option(name: .long, help: "Port (0 picks a free one; the chosen port is printed).") var port = 8080
    @Option(name: .long, help: "A directory of the OpenLineage spec (OpenLineage.json and facets/) to use instead of the copy built in.")
    var openlineageSpec: String?
    @Option(name: .long, help: "Tries to post a run's outcome to its callback URL.") var callbackAttempts = 5
    @Option(name: .long, help: "First delay between callback tries, in milliseconds (doubled each time).") var callbackDelayMs = 1000
    @OptionGroup var alerting: AlertingOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var ledger: LedgerOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard callbackAttempts >= 1 else { throw ValidationError("--callback-attempts must be at least 1") }
        guard callbackDelayMs >= 0 else { throw ValidationError("--callback-delay-ms must not be negative") }
    }

    /// A spec directory that overrides the built-in copy: the option, else `CLEW_OPENLINEAGE_SPEC`; nil uses
    /// the spec inside the executable.
    static func specDirectory(_ option: String?) -> URL? {
        if let option { return URL(fileURLWithPath: option) }
        if let env = ProcessInfo.processInfo.environment["CLEW_OPENLINEAGE_SPEC"], !env.isEmpty { return URL(fileURLWithPath: env) }
        return nil
    }

    func run() async throws {
        try await reportingErrors {
            let (registry, problems) = try pipelines.registry(strict: false)
            for p in problems { Terminal.error("pipelines: \(p)") }
            let l = try await ledger.open(create: true)
            defer { l.close() }
            // Over a shared log, the replica (and so the views) follows every host's appends.
            let replication = following(l)
            defer { replication.cancel() }
            var viewOptions = Views.Options()
            viewOptions.notice = { Terminal.error($0) }
            let views = try Views.open(ledger: l, options: viewOptions)
            defer { views.close() }
            var config = ServerConfiguration(openLineageSpec: Self.specDirectory(openlineageSpec))
            config.host = host
            config.port = port
            config.callbackAttempts = callbackAttempts
            config.callbackBaseDelay = .milliseconds(callbackDelayMs)
            var logger = Logger(label: "clew.serve")
            logger.logLevel = .warning
            config.logger = logger
            let server: ClewServer
            do { server = try ClewServer(ledger: l, views: views, engine: pipelines.engine(l, registry), configuration: config) } catch {
                throw CLIFailure(message: "cannot serve: \(error)")
            }
            if !server.tokens.hasActiveTokens {
                let minted = try await server.tokens.mint(name: "bootstrap", role: .admin, by: "clew serve")
                Terminal.error("no API tokens yet: minted admin token 'bootstrap' (shown once, keep it):\n  \(minted.token)")
            }
            // Alerts have their own lead: this process sends them whenever no other one does.
            let alerts = alerting.background(l, dashboard: ProcessInfo.processInfo.environment["CLEW_DASHBOARD_URL"] ?? "http://\(host):\(port)")
            defer { alerts?.cancel() }
            let shownHost = host
            try await server.run { port in
                Terminal.line("listening on http://\(shownHost):\(port)")
            }
        }
    }
}
