public import ClewCore
public import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Where and how to send mail: an SMTP server, how the connection is secured, and the login.
public struct SMTPSettings: Sendable, Hashable {
    /// How the connection to the server is secured.
    public enum Security: String, Sendable, Hashable, CaseIterable {
        /// STARTTLS when the server offers it, plain otherwise (never with a login: see ``SMTPClient``).
        case auto
        /// STARTTLS, or nothing is sent.
        case starttls
        /// TLS from the first byte (port 465).
        case tls
        /// Never TLS (a relay on loopback).
        case none
    }

    public var host: String
    public var port: Int
    public var security: Security
    public var login: String?
    public var password: String?
    /// A PEM file of the certificate authorities to trust instead of the system's.
    public var trustRoots: String?
    /// The name given in EHLO.
    public var heloName: String
    public var timeout: Duration

    public init(
        host: String, port: Int = 25, security: Security = .auto, login: String? = nil, password: String? = nil, trustRoots: String? = nil,
        heloName: String = ProcessInfo.processInfo.hostName, timeout: Duration = .seconds(30)
    ) {
        self.host = host
        self.port = port
        self.security = security
        self.login = login
        self.password = password
        self.trustRoots = trustRoots
        self.heloName = heloName
        self.timeout = timeout
    }
}

/// What an SMTP server refused, or why it could not be reached: the reply code when there is one.
public struct SMTPError: ClewError {
    public var code: Int?
    public var description: String
    /// Whether another try may go better: a 4xx reply (try later), or no connection; not a 5xx reply,
    /// nor settings that cannot work.
    public var isTransient: Bool
    public var category: ErrorCategory { .unavailable }

    init(_ code: Int?, _ description: String, transient: Bool? = nil) {
        self.code = code
        self.description = description
        self.isTransient = transient ?? code.map { $0 < 500 } ?? true
    }
}

/// A small SMTP client (RFC 5321) on SwiftNIO: EHLO, STARTTLS (RFC 3207) or TLS from the start, AUTH
/// PLAIN or LOGIN (RFC 4954), one message to several recipients. A login is never sent over a
/// connection that is not encrypted.
public enum SMTPClient {
    /// Sends `message` (RFC 5322 headers and body; any line ending) from `from` to every address of `to`.
    /// - Returns: the server's last reply (`250 …`, with the queue id most servers give).
    /// - Throws: ``SMTPError`` naming the step and the server's reply.
    public static func send(_ message: String, from: String, to: [String], with settings: SMTPSettings) async throws -> String {
        guard !to.isEmpty else { throw SMTPError(nil, "no recipient", transient: false) }
        for a in [from] + to where a.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "<" || $0 == ">" }) {
            throw SMTPError(nil, "address '\(a)' has a line break or angle bracket", transient: false)
        }
        let tls = try settings.security == .none ? nil : makeTLSContext(settings)
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(10))
                .connect(host: settings.host, port: settings.port) { ch in
                    ch.eventLoop.makeCompletedFuture {
                        if settings.security == .tls, let tls {
                            try ch.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: hostname(settings.host)))
                        }
                        return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch)
                    }
                }
        } catch {
            throw SMTPError(nil, "cannot connect to \(settings.host):\(settings.port): \(error)")
        }
        return try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    var session = Session(inbound: inbound.makeAsyncIterator(), outbound: outbound)
                    return try await session.run(message, from: from, to: to, settings: settings) {
                        guard let tls else { throw SMTPError(nil, "STARTTLS needs TLS settings") }
                        let handler = try NIOSSLClientHandler(context: tls, serverHostname: hostname(settings.host))
                        try await channel.channel.pipeline.addHandler(handler, position: .first).get()
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: settings.timeout)
                channel.channel.close(promise: nil)
                throw SMTPError(nil, "\(settings.host):\(settings.port) did not finish within \(settings.timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    static func hostname(_ host: String) -> String? {
        // SNI and name checks take a name, not an address literal.
        host.allSatisfy { $0.isNumber || $0 == "." } || host.contains(":") ? nil : host
    }

    static func makeTLSContext(_ settings: SMTPSettings) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        if let roots = settings.trustRoots {
            guard FileManager.default.isReadableFile(atPath: roots) else { throw SMTPError(nil, "cannot read the CA file \(roots)", transient: false) }
            config.trustRoots = .file(roots)
        }
        do { return try NIOSSLContext(configuration: config) } catch { throw SMTPError(nil, "cannot set up TLS: \(error)", transient: false) }
    }

    /// One conversation, reply by reply.
    struct Session {
        var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        var pending: [UInt8] = []

        /// Reads one reply (its lines joined); throws unless its code is in `expect`.
        mutating func reply(_ expect: ClosedRange<Int>, _ step: String) async throws -> (code: Int, text: String) {
            var lines: [String] = []
            while true {
                while let nl = pending.firstIndex(of: 10) {
                    var line = String(decoding: pending[..<nl], as: UTF8.self)
                    pending.removeSubrange(...nl)
                    if line.hasSuffix("\r") { line.removeLast() }
                    lines.append(line)
                    let bytes = Array(line.utf8)
                    if bytes.count < 4 || bytes[3] == UInt8(ascii: " ") {
                        guard let code = Int(line.prefix(3)) else { throw SMTPError(nil, "\(step): not an SMTP reply: \(line)") }
                        let text = lines.map { String($0.dropFirst(4)) }.joined(separator: " / ")
                        guard expect.contains(code) else { throw SMTPError(code, "\(step): the server answered \(code) \(text)") }
                        return (code, text)
                    }
                }
                guard let more = try await inbound.next() else {
                    throw SMTPError(nil, "\(step): the server closed the connection")
                }
                pending += more.readableBytesView
                if pending.count > 1 << 20 { throw SMTPError(nil, "\(step): a reply of over 1 MiB") }
            }
        }

        func send(_ line: String) async throws {
            try await outbound.write(ByteBuffer(string: line + "\r\n"))
        }

        mutating func ehlo(_ settings: SMTPSettings) async throws -> [String] {
            try await send("EHLO \(settings.heloName)")
            let r = try await reply(250...250, "EHLO")
            return r.text.split(separator: "/").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }
        }

        mutating func run(
            _ message: String, from: String, to: [String], settings: SMTPSettings, startTLS: () async throws -> Void
        ) async throws -> String {
            _ = try await reply(220...220, "greeting")
            var features = try await ehlo(settings)
            var encrypted = settings.security == .tls
            let offered = features.contains { $0 == "STARTTLS" }
            if !encrypted, settings.security == .starttls || (settings.security == .auto && offered) {
                guard offered else { throw SMTPError(nil, "\(settings.host) does not offer STARTTLS, which the connection requires", transient: false) }
                try await send("STARTTLS")
                _ = try await reply(220...220, "STARTTLS")
                try await startTLS()
                encrypted = true
                features = try await ehlo(settings)
            }
            if let login = settings.login {
                guard encrypted else {
                    throw SMTPError(nil, "will not send the login for \(login) over an unencrypted connection to \(settings.host) (use STARTTLS or TLS)", transient: false)
                }
                let auth = features.first { $0.hasPrefix("AUTH") }?.split(separator: " ").map(String.init) ?? []
                let password = settings.password ?? ""
                if auth.contains("PLAIN") {
                    let token = Data(([0] + Array(login.utf8) + [0] + Array(password.utf8))).base64EncodedString()
                    try await send("AUTH PLAIN \(token)")
                    _ = try await reply(235...235, "AUTH PLAIN")
                } else if auth.contains("LOGIN") {
                    try await send("AUTH LOGIN")
                    _ = try await reply(334...334, "AUTH LOGIN")
                    try await send(Data(login.utf8).base64EncodedString())
                    _ = try await reply(334...334, "AUTH LOGIN (user)")
                    try await send(Data(password.utf8).base64EncodedString())
                    _ = try await reply(235...235, "AUTH LOGIN (password)")
                } else {
                    throw SMTPError(nil, "\(settings.host) offers no AUTH PLAIN or LOGIN (it offers: \(auth.dropFirst().joined(separator: " ")))", transient: false)
                }
            }
            try await send("MAIL FROM:<\(from)>")
            _ = try await reply(250...250, "MAIL FROM")
            for rcpt in to {
                try await send("RCPT TO:<\(rcpt)>")
                _ = try await reply(250...251, "RCPT TO \(rcpt)")
            }
            try await send("DATA")
            _ = try await reply(354...354, "DATA")
            try await outbound.write(ByteBuffer(string: Self.dataBlock(message)))
            let done = try await reply(250...250, "end of data")
            try? await send("QUIT")
            return "\(done.code) \(done.text)"
        }

        /// The message with CRLF line endings, dot-stuffed (RFC 5321 4.5.2), and the closing dot.
        static func dataBlock(_ message: String) -> String {
            var out = ""
            for line in message.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false) {
                out += (line.hasPrefix(".") ? "." : "") + line + "\r\n"
            }
            return out + ".\r\n"
        }
    }
}
