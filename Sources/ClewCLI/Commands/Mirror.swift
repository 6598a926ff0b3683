import ArgumentParser
import ClewLedger
import ClewPostgres
import Foundation

/// `clew mirror URL DIR`: an auditor's offline copy of a shared log.
struct Mirror: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a PostgreSQL ledger into a local ledger directory and keep following it, proving each step.",
        discussion: """
            Every event is copied with its seq; each payload is checked against its digest and the copy's root against \
            the root the shared log recorded for each batch. After each step, a consistency proof from the last \
            verified root to the new one is computed and checked, and the new root is compared with the server's head. \
            The last proven size and root are kept in DIR/MIRROR, so the next run proves its first step from them. \
            DIR is a ledger directory like any other (clew verify, proof, backup work on it) that takes appends only \
            from its shared log. Exit status 2 when a step does not verify.
            """)

    @Argument(help: "The PostgreSQL ledger (postgres://USER:PASSWORD@HOST:PORT/DATABASE).")
    var url: String

    @Argument(help: "The local copy (created when missing; must be a copy of the same shared log).")
    var directory: String

    @Flag(name: .long, help: "Copy what there is now, prove it, and exit.")
    var once = false

    @Option(name: .long, help: "Also check the server every this many seconds (a notification may be lost).")
    var poll = 5

    @OptionGroup var output: OutputOptions

    func validate() throws {
        _ = try PostgresLocation(url)
        if poll < 1 { throw ValidationError("--poll must be at least 1 (second)") }
    }

    /// One proven step, printed as it is made.
    struct Step: Encodable {
        var from: UInt64
        var to: UInt64
        var root: String
        var consistent: Bool
        var serverHead: UInt64
        var serverRoot: String?

        enum CodingKeys: String, CodingKey {
            case from, to, root, consistent, serverHead = "server_head", serverRoot = "server_root"
        }
    }

    func run() async throws {
        try await reportingErrors {
            let log = try await PostgresLog.connect(try PostgresLocation(url), create: false)
            let ledger = try await Ledger.replica(of: log, at: URL(fileURLWithPath: directory))
            defer { ledger.close() }
            let prover = try Prover(ledger: ledger, log: log, json: output.json)
            try await prover.step()
            if once { return }
            try await withInterruption {
                await ledger.replicate(every: .seconds(poll)) { error in
                    Terminal.error("copying from \(log.location) failed: \(error)")
                    // A copy that does not verify stops the mirror; anything else is retried.
                    return (error as? LedgerError)?.code != .verificationFailed
                } copied: {
                    do { try await prover.step() } catch {
                        Terminal.error("\(error)")
                        return false
                    }
                    return true
                }
                if !Task.isCancelled { throw ExitCode(2) }
            }
        }
    }

    /// The last proven tree, and the next step from it (one at a time). Kept in `MIRROR` in the copy's
    /// directory, so a later run proves from where this one stopped.
    actor Prover {
        struct Proven: Codable {
            var size: UInt64
            var root: String
        }

        let ledger: Ledger
        let log: PostgresLog
        let json: Bool
        let file: URL
        var proven: (size: UInt64, root: MerkleHash) = (0, Merkle.emptyRoot)

        init(ledger: Ledger, log: PostgresLog, json: Bool) throws {
            self.ledger = ledger
            self.log = log
            self.json = json
            file = ledger.directory.appendingPathComponent("MIRROR")
            if let data = FileManager.default.contents(atPath: file.path) {
                guard let p = try? JSONDecoder().decode(Proven.self, from: data), let root = try? MerkleHash(hex: p.root) else {
                    throw CLIFailure(message: "\(file.path) is not a mirror's proven state; remove it to prove from the start")
                }
                proven = (p.size, root)
            }
        }

        /// Proves that the copy at its current size extends the last proven tree and agrees with the
        /// server, prints the step, and keeps the new root as proven.
        func step() async throws {
            let from = proven
            let now = try ledger.root()
            let consistent: Bool
            if from.size == 0 {
                consistent = true
            } else {
                let proof = try ledger.consistencyProof(from: from.size, to: now.size)
                consistent = proof.verify() && proof.oldRoot == from.root.hex && proof.newRoot == now.hash.hex
            }
            let head = try await log.head()
            let serverRoot = head.size == now.size ? head.root : nil
            let step = Step(
                from: from.size, to: now.size, root: now.hash.hex, consistent: consistent, serverHead: head.size, serverRoot: serverRoot?.hex)
            if json {
                Terminal.line(try JSONOutput.text(step, pretty: false))
            } else if now.size == from.size, from.size > 0 {
                Terminal.line(
                    "up to date at \(now.size) events, root \(now.hash.hex)" + (consistent ? " (the proven root)" : " — NOT the proven root \(from.root.hex)"))
            } else {
                Terminal.line(
                    "mirrored \(now.size) events (\(from.size + 1)…\(now.size)), root \(now.hash.hex)"
                        + (from.size == 0 ? "" : consistent ? "; consistent with the root at \(from.size)" : "; NOT consistent with the root at \(from.size)")
                        + (serverRoot.map { $0 == now.hash ? "; the server's head agrees" : "; the server's head root DIFFERS" } ?? ""))
            }
            guard consistent, serverRoot.map({ $0 == now.hash }) ?? true else {
                throw LedgerError(
                    .verificationFailed, "the copy at \(now.size) events does not prove against the root at \(from.size) or the server's head")
            }
            proven = (now.size, now.hash)
            try JSONEncoder().encode(Proven(size: now.size, root: now.hash.hex)).write(to: file, options: .atomic)
        }
    }
}
