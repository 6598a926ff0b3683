import ArgumentParser
import ClewForensics
import ClewLedger
import ClewModel
import ClewProjections
import Foundation

struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find runs, or tasks by name and by input, output or variable value, across all runs.",
        subcommands: [Runs.self, SearchTasks.self])
}

struct SearchTasks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks", abstract: "Task attempts by name, output, input or variable value.",
        discussion: """
            Conditions: NAME=VALUE, NAME>=X, NAME<=X, NAME>X, NAME<X, NAME=X..Y (numeric range), NAME^=PREFIX \
            (string prefix), or NAME (any value). --output total>100 matches output.total (or a scalar output with \
            --output output>100); --input matches a parent's output that the task read; --var a recorded variable. \
            Conditions combine: all hold for the same attempt.
            """)
    @Option(name: .long, help: "The task (TASK or DAG/TASK).") var task: String?
    @Option(name: .long, help: "Only this DAG.") var dag: String?
    @Option(name: .long, help: "A condition on the task's output.") var output: String?
    @Option(name: .long, help: "A condition on a value the task read.") var input: String?
    @Option(name: [.customLong("var")], help: "A condition on a variable the task recorded.") var variable: String?
    @Option(name: .long, help: "At most this many attempts.") var limit = 100
    @OptionGroup var asOf: AsOfOptions
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var out: OutputOptions

    func validate() throws {
        if task == nil && output == nil && input == nil && variable == nil {
            throw ValidationError("give --task, --output, --input or --var")
        }
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
        for (flag, c) in [("--output", output), ("--input", input), ("--var", variable)] {
            if let c {
                do { _ = try ValueCondition(parsing: c) } catch { throw ValidationError("\(flag): \(error)") }
            }
        }
    }

    func run() async throws {
        try await reportingErrors {
            let (l, f) = try await ledger.openForensics()
            defer { l.close() }
            let q = TaskQuery(
                task: task, dag: dag, output: try output.map(ValueCondition.init(parsing:)), input: try input.map(ValueCondition.init(parsing:)),
                variable: try variable.map(ValueCondition.init(parsing:)), asOf: try asOf.seq(f.views), limit: limit)
            let hits = try f.searchTasks(q)
            if out.json {
                Terminal.line(try JSONOutput.text(hits))
                return
            }
            if hits.isEmpty {
                Terminal.line("no task matched")
                return
            }
            Terminal.line("\(Show.pad("DAG/RUN", 48)) \(Show.pad("TASK#ATTEMPT", 24)) \(Show.pad("STATE", 12)) MATCHED")
            for h in hits {
                Terminal.line("\(Show.pad("\(h.dag)/\(h.run)", 48)) \(Show.pad("\(h.task)#\(h.attempt)", 24)) \(Show.pad(h.state ?? "-", 12)) \(Show.clip(h.matched, 80))")
            }
        }
    }
}
