import ArgumentParser
import ClewCore
import ClewEngine
import ClewLedger
import ClewModel
import Foundation

/// `clew pools`: named slot limits shared by every run, process and host (docs/operations.md#pools).
struct PoolsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pools",
        abstract: "Set, list and delete pools (slot limits every run, process and host shares), and see who holds and waits for their slots.",
        discussion: """
            A task takes slots of a pool for each attempt (pool: db, pool_slots: 2 in a pipeline file; .pool("db", slots: 2) in \
            Swift) and waits, queued (pool), until they are free; higher priority_weight goes first.
            """,
        subcommands: [PoolsSet.self, PoolsList.self, PoolsShow.self, PoolsDelete.self, PoolsHistory.self])
}

struct PoolsSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Create a pool or change its number of slots.")
    @Argument(help: "The pool name.") var name: String
    @Option(name: .long, help: "How many slots (1-100000).") var slots: Int
    @Option(name: .long, help: "What the pool is for.") var description: String?
    @Option(name: .long, help: "Why it changes (recorded).") var reason: String?
    @Option(name: .long, help: "Who sets it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let pool = try await PoolStore(ledger: l).set(name, slots: slots, description: description, reason: reason, by: VariablesCommand.actor(by))
            if output.json { Terminal.line(try JSONOutput.text(pool)); return }
            Terminal.error("pool \(pool.name): \(pool.slots) slots (seq \(pool.seq)) by \(pool.setBy)")
        }
    }
}

struct PoolsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Every pool: slots, in use, waiting.")
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            let store = PoolStore(ledger: l)
            return try store.list().map { try store.occupancy($0.name) }
        }, text: { all in
            if all.isEmpty { Terminal.error("no pools are set (clew pools set NAME --slots N)"); return }
            Terminal.line(Show.table(["POOL", "SLOTS", "USED", "WAITING"], all.map { [$0.pool, String($0.slots ?? 0), String($0.used), String($0.waiting.count)] }))
        })
    }
}

struct PoolsShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Who holds a pool's slots and who waits, in the order they will get them.")
    @Argument(help: "The pool name.") var name: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            let store = PoolStore(ledger: l)
            guard try store.get(name) != nil else { throw VariableError(.notFound, "no pool '\(name)' is set") }
            return try store.occupancy(name)
        }, text: { o in
            Terminal.line("pool \(o.pool): \(o.used) of \(o.slots ?? 0) slots in use, \(o.waiting.count) waiting")
            let rows = o.holders.map { ["holds", $0.holder, String($0.slots), String($0.priority), $0.sinceTime, "\($0.host ?? "?") pid \($0.pid.map(String.init) ?? "?")"] }
                + o.waiting.map { ["waits", $0.holder, String($0.slots), String($0.priority), $0.sinceTime, "\($0.host ?? "?") pid \($0.pid.map(String.init) ?? "?")"] }
            if !rows.isEmpty { Terminal.line(Show.table(["", "ATTEMPT", "SLOTS", "PRIORITY", "SINCE", "WHERE"], rows)) }
        })
    }
}

struct PoolsDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a pool (recorded); attempts waiting for it fail, naming it.")
    @Argument(help: "The pool name.") var name: String
    @Option(name: .long, help: "Why (recorded).") var reason: String?
    @Option(name: .long, help: "Who deletes it (default: cli:<user>@<host>).") var by: String?
    @OptionGroup var ledger: LedgerOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open()
            defer { l.close() }
            try await PoolStore(ledger: l).delete(name, reason: reason, by: VariablesCommand.actor(by))
            Terminal.error("deleted pool \(name)")
        }
    }
}

struct PoolsHistory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Every set and delete of a pool: when, who, how many slots, why.")
    @Argument(help: "The pool name.") var name: String
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ledger.show(output, { l in
            let changes = try PoolStore(ledger: l).history(name)
            if changes.isEmpty { throw VariableError(.notFound, "pool '\(name)' was never set") }
            return changes
        }, text: { changes in
            for c in changes {
                Terminal.line("\(c.seq)  \(c.time)  \(Show.pad(c.by, 24)) \(c.action == "deleted" ? "deleted" : "\(c.slots ?? 0) slots")\(c.reason.map { "  (\($0))" } ?? "")")
            }
        })
    }
}
