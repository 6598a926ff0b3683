import ArgumentParser
import ClewLedger
import Foundation

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an Ed25519 key for signing checkpoints (and FILE.pub). Keep it outside the ledger.")

    @Option(name: [.short, .long], help: "Where to write the private key.")
    var out: String

    func run() async throws {
        try await reportingErrors {
            let key = CheckpointSigningKey.generate()
            try key.write(to: URL(fileURLWithPath: out))
            print("wrote \(out) and \(out).pub (key id \(key.publicKey.keyID))")
        }
    }
}

struct Checkpoint: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign the current tree size and Merkle root and store the checkpoint; print it.")

    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: "The signing key (from `clew keygen`); must live outside the ledger directory.")
    var key: String

    @Flag(name: .long, help: "List stored checkpoints instead of signing a new one.")
    var list = false

    func run() async throws {
        try await reportingErrors {
            if list {
                let l = try await ledger.open(readOnly: true)
                defer { l.close() }
                let all = try l.checkpoints()
                if output.json { print(try JSONOutput.text(all)) } else {
                    for c in all { print("size \(c.treeSize)  root \(c.rootHash)  \(c.time)  key \(c.keyID)") }
                }
                return
            }
            let keyURL = URL(fileURLWithPath: key).standardizedFileURL.resolvingSymlinksInPath()
            let ledgerPath = ledger.url.standardizedFileURL.resolvingSymlinksInPath().path
            if keyURL.path.hasPrefix(ledgerPath + "/") {
                throw CLIFailure(message: "the signing key \(key) is inside the ledger directory; keep it elsewhere (anyone who can rewrite the ledger could re-sign it)")
            }
            let signingKey = try CheckpointSigningKey(contentsOf: keyURL)
            let l = try await ledger.open()
            defer { l.close() }
            let c = try await l.checkpoint(signedWith: signingKey)
            if output.json { print(try JSONOutput.text(c)) } else {
                print("checkpoint: \(c.treeSize) events, root \(c.rootHash)")
                print("  signed \(c.time) by key \(c.keyID)")
                print("  signature \(c.signature)")
            }
        }
    }
}

struct Proof: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merkle proofs (RFC 6962): that an event is in the log, and that the log only grew.",
        subcommands: [Inclusion.self, Consistency.self])

    struct Inclusion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prove that event SEQ is in the tree of --tree-size events.")
        @OptionGroup var ledger: LedgerOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The event's seq.") var seq: UInt64
        @Option(name: .long, help: "Tree size (default: the whole log, or a checkpoint's size).") var treeSize: UInt64?

        func run() async throws {
            try await reportingErrors {
                let l = try await ledger.open(readOnly: true)
                defer { l.close() }
                let p = try l.inclusionProof(seq: seq, treeSize: treeSize)
                guard p.verify() else { throw CLIFailure(message: "the proof computed for seq \(seq) does not verify; run clew verify") }
                if output.json { print(try JSONOutput.text(p)) } else {
                    print("event \(p.seq) is leaf \(p.leafIndex) of a tree of \(p.treeSize) events (verified)")
                    print("leaf hash  \(p.leafHash)")
                    print("root hash  \(p.rootHash)")
                    for (i, h) in p.path.enumerated() { print("path[\(i)]    \(h)") }
                }
            }
        }
    }

    struct Consistency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prove that the tree of OLD events is a prefix of the tree of NEW events.")
        @OptionGroup var ledger: LedgerOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The older tree size.") var old: UInt64
        @Argument(help: "The newer tree size (default: the whole log).") var new: UInt64?

        func run() async throws {
            try await reportingErrors {
                let l = try await ledger.open(readOnly: true)
                defer { l.close() }
                let p = try l.consistencyProof(from: old, to: new)
                guard p.verify() else { throw CLIFailure(message: "the proof computed does not verify; run clew verify") }
                if output.json { print(try JSONOutput.text(p)) } else {
                    print("the tree of \(p.oldSize) events is a prefix of the tree of \(p.newSize) events (verified)")
                    print("old root  \(p.oldRoot)")
                    print("new root  \(p.newRoot)")
                    for (i, h) in p.path.enumerated() { print("path[\(i)]  \(h)") }
                }
            }
        }
    }
}
