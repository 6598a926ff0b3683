public import ClewEngine
public import ClewLedger
public import Foundation

/// A fresh directory under the system's temporary directory, named `<prefix>-<uuid>`.
public func makeTemporaryDirectory(_ prefix: String = "clew-test") throws -> URL {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// A fresh ledger (`<dir>/test.ledger`) and an engine over it that knows `dags`, with task output under
/// `<dir>/data`; everything is removed afterwards whatever happens. The one helper every test target
/// uses to get an engine.
public func withEngine<T>(
    _ dags: [DAG] = [], concurrency: Int? = nil, prefix: String = "clew-engine",
    _ body: (Engine, Ledger, URL) async throws -> T
) async throws -> T {
    let dir = try makeTemporaryDirectory(prefix)
    defer { try? FileManager.default.removeItem(at: dir) }
    let ledger = try Ledger.create(at: dir.appendingPathComponent("test.ledger"))
    defer { ledger.close() }
    var options = Engine.Options(dataDirectory: dir.appendingPathComponent("data"))
    options.concurrency = concurrency
    let engine = Engine(ledger: ledger, registry: DAGRegistry(dags), options: options)
    return try await body(engine, ledger, dir)
}

/// Compare-and-append scoped to some chunks of a dataset stream, on `writer` (the contender) and
/// `other` (another process or host writing the same stream; it may be `writer` itself). Returns a
/// failure description, or nil when every step behaved.
public func scopedExpectationProblems(writer: Ledger, other: Ledger) async throws -> [String] {
    var problems: [String] = []
    let dataset = "dataset/shards"
    func change(_ chunk: String?) -> NewEvent {
        let field = chunk.map { #""chunk":"\#($0)","# } ?? ""
        return NewEvent(type: "chunk.status_changed", stream: dataset, actor: "t", payload: Data(#"{\#(field)"to":"ready"}"#.utf8))
    }
    try await other.append(change("a"))
    try await other.append(change("b"))
    _ = try await writer.pull()
    let read = try writer.seqs(inStream: dataset).last ?? 0
    let mine = StreamExpectation(stream: dataset, lastSeq: read, scope: PayloadScope(field: "chunk", values: ["a"]))
    // Another chunk of the dataset moves: no conflict for a writer that read chunk a.
    try await other.append(change("b"))
    do { try await writer.append(contentsOf: [change("a")], expecting: [mine]) } catch {
        problems.append("a change to chunk b conflicted with a writer of chunk a: \(error)")
    }
    _ = try await writer.pull()
    // Chunk a moves after what the writer read: a conflict that names the event.
    let now = try writer.seqs(inStream: dataset).last ?? 0
    let fresh = StreamExpectation(stream: dataset, lastSeq: now, scope: PayloadScope(field: "chunk", values: ["a"]))
    try await other.append(change("a"))
    let before = try await other.pull()
    do {
        try await writer.append(contentsOf: [change("a")], expecting: [fresh])
        problems.append("a change to chunk a did not conflict")
    } catch let error as LedgerError where error.code == .conflict {
        if !error.message.contains("concerns chunk a") { problems.append("the conflict does not say why: \(error.message)") }
    }
    // An event that names no chunk may concern any: a conflict.
    _ = try await writer.pull()
    let later = StreamExpectation(stream: dataset, lastSeq: try writer.seqs(inStream: dataset).last ?? 0, scope: fresh.scope)
    try await other.append(change(nil))
    do {
        try await writer.append(contentsOf: [change("a")], expecting: [later])
        problems.append("an event naming no chunk did not conflict")
    } catch let error as LedgerError where error.code == .conflict {}
    if try await other.pull() != before + 1 { problems.append("a refused append wrote something") }
    return problems
}

/// Puts an executable file holding `text` at `target` (replacing any file there). See
/// ``installExecutable(copyOf:at:)`` for why tests must not write executables themselves.
public func installExecutable(_ text: String, at target: URL) throws {
    let staging = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).\(UUID().uuidString)")
    try Data(text.utf8).write(to: staging)
    defer { try? FileManager.default.removeItem(at: staging) }
    try installExecutable(copyOf: staging, at: target)
}

/// Puts an executable copy of `source` at `target` (a new file, replacing any file there), written by a
/// child process.
///
/// A test process must not write a file it then executes. While it holds the file open for writing, any
/// process that another test forks at that moment inherits the descriptor and keeps it until its own
/// `exec`, and executing a file that some process has open for writing fails with ETXTBSY ("Text file
/// busy": seen once in CI, a `setpriv` of a freshly copied `clew`). `install` writes the new file in a
/// single-threaded process that nobody forks, and has closed it when it exits.
public func installExecutable(copyOf source: URL, at target: URL) throws {
    try runTool("/usr/bin/install", ["-m", "0755", source.path, target.path])
}

/// A copy of the directory tree `source` at `target`, made by `cp -R` in a child process, for trees
/// that hold scripts a test will execute (see ``installExecutable(copyOf:at:)``).
public func copyTree(_ source: URL, to target: URL) throws {
    try runTool("/bin/cp", ["-R", source.path, target.path])
}

/// Runs a short file tool to its end; throws, naming the command and its status, if it fails.
private func runTool(_ path: String, _ arguments: [String]) throws {
    let status = spawnAndWait(path, arguments)
    guard status >= 0 else {
        throw ToolFailure("\(path) \(arguments.joined(separator: " ")): could not start (\(String(cString: strerror(-status))))")
    }
    guard status == 0 else { throw ToolFailure("\(path) \(arguments.joined(separator: " ")) failed (wait status \(status))") }
}

/// Runs `path` with `arguments` (`posix_spawn`, this process's environment) to its end, off Foundation's
/// `Process`: its wait status, or minus the errno that kept it from starting (`-ETXTBSY`, say).
public func spawnAndWait(_ path: String, _ arguments: [String] = []) -> Int32 {
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid = pid_t()
    let started = posix_spawn(&pid, path, nil, nil, argv, environ)
    guard started == 0 else { return -started }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    return status
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
