import ArgumentParser
import ClewEngine
import ClewLedger
import ClewModel
import ClewProjections
import ClewServer
import Foundation
import Logging

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Mint, list and revoke API tokens for clew serve.",
        subcommands: [TokenCreate.self, TokenList.self, TokenRevoke.self])
}

struct TokenCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Mint a token; it is printed once (only its SHA-256 is kept).")
    @Option(name: .long, help: "Who or what the token is for.") var name: String
    @Option(name: .long, help: "viewer, operator or admin.") var role: String = "viewer"
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard Role(rawValue: role) != nil else { throw ValidationError("--role must be viewer, operator or admin, got '\(role)'") }
    }

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(create: true)
            defer { l.close() }
            let minted: MintedToken
            do { minted = try await TokenStore(ledger: l).mint(name: name, role: Role(rawValue: role)!, by: "clew token create") } catch let e as TokenError {
                throw CLIFailure(message: e.description)
            }
            if output.json { Terminal.line(try JSONOutput.text(minted)) } else {
                Terminal.line(minted.token)
                Terminal.error("token \(minted.info.id) '\(minted.info.name)' (\(minted.info.role.rawValue)); shown once")
            }
        }
    }
}

struct TokenList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tokens (never their secrets).")
    @OptionGroup var ledger: LedgerOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open(readOnly: true)
            defer { l.close() }
            let tokens = try TokenStore(ledger: l).list()
            if output.json { Terminal.line(try JSONOutput.text(tokens)); return }
            for t in tokens { Terminal.line("\(t.id)  \(Show.pad(t.role.rawValue, 8)) \(Show.pad(t.name, 24)) \(t.createdAt)\(t.revoked ? "  revoked" : "")") }
        }
    }
}

struct TokenRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by id.")
    @Argument(help: "The token id (8 hex digits, from `clew token list`).") var id: String
    @OptionGroup var ledger: LedgerOptions

    func run() async throws {
        try await reportingErrors {
            let l = try await ledger.open()
            defer { l.close() }
            // On the ledger's host the last admin token may go: `clew token create` here mints another.
            guard try await TokenStore(ledger: l).revoke(id: id, by: "clew token revoke", keepingAnAdmin: false) else { throw CLIFailure(message: "no active token with id '\(id)'") }
            Terminal.error("revoked \(id)")
        }
    }
}
