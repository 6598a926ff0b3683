import ArgumentParser
import ClewCore
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List runs, newest first, from the runs view.",
        discussion: "Filters combine: --dag, --state (queued, running, resubmitted, succeeded, failed, cancelled), queued time range, and --external-id (the producer's own run id, such as Airflow's run_id).")

    @Option(name: .long, help: "Only runs of this DAG.") var dag: String?
    @Option(name: .long, help: "Only runs in this state.") var state: String?
    @Option(name: .long, help: "Queued at or after this UTC time.") var since: String?
    @Option(name: .long, help: "Queued before this UTC time.") var until: String?
    @Option(name: .long, help: "At most this many runs.") var limit = 50
    @Option(name: .customLong("external-id"), help: "Only the run its producer calls this (Airflow's run_id, e.g. manual__2026-11-03T00:00:00+00:00).")
    var externalID: String?
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    static let states = ["queued", "running", "resubmitted", "succeeded", "failed", "cancelled"]

    func validate() throws {
        if let state, !Self.states.contains(state) {
            throw ValidationError("--state \(state) is not a run state; one of \(Self.states.joined(separator: ", "))")
        }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
        for (flag, value) in [("--since", since), ("--until", until)] {
            if let value, PartitionKey.parse(value) == nil { throw ValidationError("\(flag) \(value) is not a UTC time such as 2026-11-21T10:00Z") }
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try ledger.openViews()
            defer { l.close() }
            let query = RunQuery(
                dag: dag, state: state, sinceMicros: since.flatMap(PartitionKey.parse), untilMicros: until.flatMap(PartitionKey.parse),
                limit: limit, asOf: try asOf.seq(views), externalID: externalID)
            let runs = try views.runs(query)
            if output.json {
                Terminal.line(try JSONOutput.text(runs))
                return
            }
            if runs.isEmpty {
                Terminal.line("no runs")
                return
            }
            // Columns as wide as their widest cell: DAG and run names have no bound.
            let showExternal = runs.contains { $0.externalID != nil }
            Terminal.line(Show.table(
                ["DAG/RUN", "STATE", "QUEUED", "DURATION", "ATTEMPTS", "VERSION"] + (showExternal ? ["EXTERNAL ID"] : []),
                runs.map { r in
                    [r.key.description, r.state, Show.time(r.queuedMicros), Show.millis(r.durationMillis), String(r.attempts), r.version ?? "-"]
                        + (showExternal ? [r.externalID ?? "-"] : [])
                }))
        }
    }
}

struct RunShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a run and its tasks from the runs view.")

    @Argument(help: "The run: RUN or DAG/RUN.") var run: String
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try ledger.openViews()
            defer { l.close() }
            let key = try views.oneRun(run)
            let seq = try asOf.seq(views)
            guard let detail = try views.run(key, asOf: seq) else {
                throw CLIFailure(message: "run \(key) had not been queued as of seq \(seq ?? 0)")
            }
            if output.json {
                Terminal.line(try JSONOutput.text(detail))
                return
            }
            let r = detail.run
            Terminal.line("run       \(r.key)\(seq.map { "   (as of seq \($0))" } ?? "")")
            Terminal.line("state     \(r.state)")
            Terminal.line("version   \(r.version ?? "-")   trigger \(r.trigger ?? "-")\(r.partition.map { "   partition \($0)" } ?? "")")
            if let ids = r.externalIDs, !ids.isEmpty { Terminal.line("external  \(ids.joined(separator: ", "))") }
            Terminal.line("queued    \(Show.time(r.queuedMicros))   started \(Show.time(r.startedMicros))   ended \(Show.time(r.endedMicros))   (\(Show.millis(r.durationMillis)))")
            if let p = r.params, !p.isEmpty {
                Terminal.line("params    " + p.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            }
            Terminal.line("attempts  \(r.attempts)   resubmissions \(r.resubmissions)   events seq \(r.firstSeq)...\(r.lastSeq)")
            Terminal.line("")
            Terminal.line(Show.table(["TASK", "STATE", "ATTEMPTS", "DURATION", "DETAIL"], detail.tasks.map { t in
                let detail = t.error ?? t.reason ?? t.branch.map { "branch \($0)" } ?? t.outputDigest.map { "output \($0.prefix(12))" } ?? ""
                return [t.task, t.state, String(t.attempts), Show.millis(t.durationMillis.map(Int64.init)), detail]
            }))
        }
    }
}

struct Chunks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chunk status of a dataset (or a summary of every dataset) from the chunk view.",
        discussion: """
            Without --status: counts per status, then the failed, invalid, stale, missing and in-progress chunks as \
            key ranges. With --status S (a chunk status, stale or missing): the chunks in it.
            """)

    @Argument(help: "The dataset (omit for every dataset).") var dataset: String?
    @Option(name: .long, help: "List the chunks in this status (or stale, or missing).") var status: String?
    @Option(name: .long, help: "At most this many chunks or key ranges per set.") var limit = 20
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let status, status != "stale", status != "missing", ChunkStatus(rawValue: status) == nil {
            throw ValidationError("--status \(status) is not a chunk status; one of \(ChunkStatus.allCases.map(\.rawValue).joined(separator: ", ")), stale, missing")
        }
        if status != nil, dataset == nil { throw ValidationError("--status needs a DATASET") }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try ledger.openViews()
            defer { l.close() }
            let seq = try asOf.seq(views)
            guard let dataset else {
                let all = try views.datasets(asOf: seq)
                if output.json { Terminal.line(try JSONOutput.text(all)); return }
                if all.isEmpty { Terminal.line("no datasets"); return }
                // Columns as wide as their widest cell: OpenLineage names (`s3://bucket:path/to/table`) run long.
                Terminal.line(Show.table(["DATASET", "PARTITIONING", "CHUNKS", "MISSING", "STALE", "STATUS"], all.map { d in
                    let counts = d.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                    return [d.name, d.partitioning, String(d.chunks), String(d.missing), String(d.stale), counts]
                }))
                return
            }
            if let status, status != "missing" {
                let chunks = try views.chunks(dataset: dataset, status: status, limit: limit, asOf: seq)
                if output.json { Terminal.line(try JSONOutput.text(chunks)); return }
                for c in chunks {
                    let by = [c.run.map { "run \($0)" }, c.task.map { "task \($0)" }].compactMap { $0 }.joined(separator: " ")
                    Terminal.line("\(Show.pad(c.key, 28)) \(Show.pad(c.status, 11)) since seq \(c.since)  \(by)\(c.staleBecause.map { "  stale: \($0)" } ?? "")")
                }
                return
            }
            guard var report = try views.chunkStatus(dataset: dataset, ranges: limit, asOf: seq) else {
                throw CLIFailure(message: "no dataset \(dataset) in the chunk view (`clew chunks` lists them)")
            }
            if status == "missing" { report.groups = report.groups.filter { $0.set == "missing" } }
            if output.json { Terminal.line(try JSONOutput.text(report)); return }
            let d = report.dataset
            Terminal.line("dataset   \(d.name)   partitioning \(d.partitioning)\(seq.map { "   (as of seq \($0))" } ?? "")")
            Terminal.line("chunks    \(d.chunks)   missing \(d.missing)   stale \(d.stale)")
            Terminal.line("status    " + d.counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            for g in report.groups where !["ready", "consumed"].contains(g.set) || status != nil {
                Terminal.line("")
                Terminal.line("\(g.set) (\(g.count))")
                for r in g.ranges {
                    Terminal.line(r.count == 1 ? "  \(r.first)" : "  \(r.first) .. \(r.last)  (\(r.count))")
                }
                if g.truncated { Terminal.line("  … more ranges (raise --limit)") }
            }
        }
    }
}

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild views from the log: into a fresh database, then swapped in atomically.",
        discussion: "A crash or Ctrl-C during a rebuild leaves the old views in place and valid.")

    @OptionGroup var selection: ViewSelection
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try ledger.openViews()
            defer { l.close() }
            let names = selection.names
            let started = Date()
            try views.rebuild(names, progress: ViewsProgress.bar("rebuilding \(names.map(\.rawValue).joined(separator: ", "))"))
            Terminal.endProgress()
            let seconds = Date().timeIntervalSince(started)
            let seq = try l.lastSeq
            if output.json {
                Terminal.line(try JSONOutput.text(RebuildReport(views: names.map(\.rawValue), events: seq, seconds: seconds)))
            } else {
                Terminal.line(String(format: "rebuilt %@ from %llu events in %.2fs (%.0f events/s)", names.map(\.rawValue).joined(separator: ", "), seq, seconds, Double(seq) / max(seconds, 1e-9)))
            }
        }
    }

    struct RebuildReport: Encodable {
        var views: [String]
        var events: UInt64
        var seconds: Double
    }
}

struct ViewsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "views", abstract: "Check the views.", subcommands: [ViewsVerify.self, ViewsStatus.self])
}

struct ViewsVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Fold the log into scratch views and compare a digest per view with the live ones.",
        discussion: "Exit status: 0 when every view equals a fresh fold, 2 naming each view that differs.")

    @OptionGroup var selection: ViewSelection
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let ledger = try self.ledger.open()
            defer { ledger.close() }
            // Open without repairing, so a damaged view is reported rather than silently rebuilt.
            var options = Views.Options()
            options.integrityScanLimit = 0
            options.progress = ViewsProgress.bar("verifying")
            let views: Views
            do {
                views = try Views.openForVerify(ledger: ledger, options: options)
            }
            let names = selection.names
            let results = try views.verify(names, progress: ViewsProgress.bar("folding a fresh copy"))
            Terminal.endProgress()
            if output.json {
                Terminal.line(try JSONOutput.text(results))
            } else {
                for r in results {
                    if r.equal {
                        Terminal.line("\(Show.pad(r.view, 8)) ok        seq \(r.checkpoint)  \(r.entries) entries  digest \(r.liveDigest.prefix(16))")
                    } else {
                        Terminal.line("\(Show.pad(r.view, 8)) DIFFERS   seq \(r.checkpoint)  live \(r.liveDigest.prefix(16)) fresh \(r.freshDigest.prefix(16)): \(r.firstDifference ?? "")")
                    }
                }
            }
            let bad = results.filter { !$0.equal }.map(\.view)
            if !bad.isEmpty {
                throw CLIFailure(message: "views differ from a fresh fold of the log: \(bad.joined(separator: ", ")) (`clew rebuild` restores them)", category: .verificationFailed)
            }
        }
    }
}

struct ViewsStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Each view's checkpoint, generation and size.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try ledger.openViews()
            defer { l.close() }
            let status = try views.status()
            if output.json { Terminal.line(try JSONOutput.text(status)); return }
            for s in status {
                Terminal.line("\(Show.pad(s.view, 8)) seq \(s.checkpoint) of \(s.logSeq)  \(Show.pad(s.generation, 12)) \(String(format: "%.2f MiB", Double(s.bytes) / 1_048_576))  \(s.entries) entries")
            }
        }
    }
}

struct LineageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lineage",
        abstract: "Edges of the lineage view around a node, upstream or downstream.",
        discussion: """
            Nodes: dataset:NAME, task:DAG/TASK, chunk:DATASET/KEY, attempt:DAG/RUN/TASK/N, value:SHA256, run:DAG/RUN.
            """)

    @Argument(help: "The node to start from.") var node: String
    @Flag(name: .long, help: "Where it came from (default).") var up = false
    @Flag(name: .long, help: "What it reached.") var down = false
    @Option(name: .long, help: "How many steps to follow.") var depth = 10
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if up && down { throw ValidationError("give --up or --down, not both") }
        if depth < 1 { throw ValidationError("--depth must be at least 1") }
        let kinds = ["dataset:", "task:", "chunk:", "attempt:", "value:", "run:"]
        if !kinds.contains(where: node.hasPrefix) {
            throw ValidationError("node \(node) has no kind; start it with one of \(kinds.joined(separator: " "))")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try ledger.openViews()
            defer { l.close() }
            let edges = try views.lineage(node: node, direction: down ? .down : .up, depth: depth, asOf: try asOf.seq(views))
            if output.json { Terminal.line(try JSONOutput.text(edges)); return }
            if edges.isEmpty { Terminal.line("no lineage \(down ? "downstream" : "upstream") of \(node)"); return }
            for e in edges { Terminal.line("\(e.from) --\(e.kind)--> \(e.to)   (seq \(e.firstSeq))") }
        }
    }
}

struct ValuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "values",
        abstract: "Find recorded values and variables by name and value in the value index.",
        discussion: "Names: a variable's name, `output` (a task's output; `output.FIELD` for a record's fields).")

    @Argument(help: "The variable or output name (omit with --digest).") var name: String?
    @Option(name: .long, help: "Only this task (TASK or DAG/TASK).") var task: String?
    @Option(name: .long, help: "Equal to this number, string or true/false.") var eq: String?
    @Option(name: .long, help: "A number at least this.") var min: Double?
    @Option(name: .long, help: "A number at most this.") var max: Double?
    @Option(name: .long, help: "A string starting with this.") var prefix: String?
    @Option(name: .long, help: "Any value with this SHA-256, under any name.") var digest: String?
    @Option(name: .long, help: "At most this many.") var limit = 100
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        let given = [eq != nil, min != nil || max != nil, prefix != nil, digest != nil].filter { $0 }.count
        if given > 1 { throw ValidationError("give one of --eq, --min/--max, --prefix, --digest") }
        if digest == nil, name == nil { throw ValidationError("give a NAME (or --digest)") }
        if let digest, digest.count != 64 || !digest.allSatisfy(\.isHexDigit) { throw ValidationError("--digest must be 64 hex digits") }
    }

    var match: ValueMatch {
        if let digest { return .digest(digest.lowercased()) }
        if let prefix { return .prefix(prefix) }
        if min != nil || max != nil { return .range(min: min, max: max) }
        if let eq {
            if eq == "true" || eq == "false" { return .equals(.bool(eq == "true")) }
            if let n = Double(eq) { return .equals(.number(n)) }
            return .equals(.string(eq))
        }
        return .any
    }

    func run() async throws {
        try await reportingErrors {
            let (l, views) = try ledger.openViews()
            defer { l.close() }
            let hits = try views.values(name: name, task: task, match: match, asOf: try asOf.seq(views), limit: limit)
            if output.json { Terminal.line(try JSONOutput.text(hits)); return }
            if hits.isEmpty { Terminal.line("no values"); return }
            for h in hits {
                let at = h.step.map { " step \($0)" } ?? ""
                Terminal.line("seq \(h.seq)  \(h.dag)/\(h.run)  \(h.task)#\(h.attempt)\(at)  \(h.name) = \(h.value ?? h.digest.map { "sha256:\($0.prefix(16))…" } ?? "?")")
            }
        }
    }
}

/// `--view NAME` (repeatable) for commands that work on some views; all views when none is given.
struct ViewSelection: ParsableArguments {
    @Option(name: .long, help: "Only this view (runs, chunks, lineage, values); repeatable.")
    var view: [String] = []

    var names: [ViewName] { view.isEmpty ? ViewName.allCases : view.compactMap(ViewName.init(rawValue:)) }

    func validate() throws {
        for v in view where ViewName(rawValue: v) == nil {
            throw ValidationError("--view \(v) is not a view; one of \(ViewName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }
}
