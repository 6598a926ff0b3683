import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import Foundation

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run the task attempts that runs queue (`clew run --queue`, `clew scheduler --queue`) until stopped.",
        discussion: """
            Any number of workers on any number of hosts may serve one queue of one ledger (a shared log: \
            --ledger postgres://…). Each attempt is claimed by exactly one worker and held under a lease kept by \
            heartbeats; a worker that loses its lease (killed, cut off) records nothing more for the attempt, and \
            the run queues it again. A worker runs the DAG versions it ships (the executable's DAGs and --pipelines); \
            secret params reach it from its environment as CLEW_PARAM_<NAME>. Prints one line per attempt on \
            stderr (--json: one JSON object per attempt on stdout). Stops on Ctrl-C or SIGTERM.
            """)

    @Option(name: .long, help: "The queue to take attempts from.")
    var queue = "default"

    @Option(name: .long, help: "Attempts to run at once.")
    var slots = 1

    @Option(name: .long, help: "This worker's name in claims and heartbeats (default host:pid).")
    var name: String?

    @Option(name: .long, help: "Longest wait, in seconds, between looks at the queue when no append is announced.")
    var poll: Double = 1

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var pipelines: PipelineOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (1...256).contains(slots) else { throw ValidationError("--slots \(slots) must be between 1 and 256") }
        guard poll > 0, poll <= 3600 else { throw ValidationError("--poll \(poll) must be between 0 and 3600 seconds") }
        if queue.isEmpty || queue.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ValidationError("--queue '\(queue)' must be a non-empty name without spaces or '/'")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (registry, _) = try pipelines.registry(strict: true)
            let l = try await ledger.open(create: false)
            defer { l.close() }
            var options = Worker.Options(dataDirectory: pipelines.dataDirectory(l))
            options.queue = queue
            options.slots = slots
            if let name { options.name = name }
            options.poll = .milliseconds(Int64(poll * 1000))
            let worker = Worker(ledger: l, registry: registry, options: options)
            let json = output.json
            let label = options.name
            Terminal.error("worker \(label): serving queue \(queue) of \(l.location) with \(slots) slot\(slots == 1 ? "" : "s")")
            try await withInterruption {
                await worker.run(
                    onClaim: { q in
                        if !json { Terminal.error("worker \(label): claimed \(q.dag)/\(q.run) \(q.task) attempt \(q.attempt)") }
                    },
                    onEnd: { r in
                        if json {
                            struct Line: Encodable {
                                var dag, run, task, result: String
                                var attempt: Int
                                var error: String?
                                var millis: Int64
                            }
                            if let data = try? JSON.canonical(Line(dag: r.dag, run: r.run, task: r.task, result: r.result, attempt: r.attempt, error: r.error, millis: r.millis)) {
                                Terminal.line(String(decoding: data, as: UTF8.self))
                            }
                        } else {
                            Terminal.error("worker \(label): \(r.dag)/\(r.run) \(r.task) attempt \(r.attempt): \(r.result) in \(r.millis) ms\(r.error.map { " (\($0))" } ?? "")")
                        }
                    })
            }
        }
    }
}
