import ClewTestSupport
import Foundation
import Synchronization
import Testing

/// Runs the built `clew` binary (CLEW_BIN, or .build/debug/clew of this package) as a user would.
struct CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The sanitizer every process of this run is built with (`tools/sanitize.sh` sets
    /// CLEW_TEST_SANITIZER), nil for a plain build: time limits meant to catch a hang allow for it.
    static let sanitizer = ProcessInfo.processInfo.environment["CLEW_TEST_SANITIZER"]

    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["CLEW_BIN"] { return URL(fileURLWithPath: path) }
        return packageRoot.appendingPathComponent(".build/debug/clew")
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    let directory: URL
    var ledger: URL { directory.appendingPathComponent("test.ledger") }

    init() {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("clew-cli-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func cleanUp() { try? FileManager.default.removeItem(at: directory) }

    /// Starts `clew args...` with `--ledger` added, stdin from `input`, output to files.
    func start(
        _ args: [String], input: String? = nil, asUser uid: UInt32? = nil, ledgerOption: Bool = true, netns: String? = nil,
        environment: [String: String] = [:]
    ) throws -> (Process, URL, URL) {
        guard FileManager.default.isExecutableFile(atPath: CLI.binary.path) else {
            throw CLIFailure("the clew binary is not built at \(CLI.binary.path); run `swift build` first or set CLEW_BIN")
        }
        let id = UUID().uuidString
        let out = directory.appendingPathComponent("out-\(id)")
        let err = directory.appendingPathComponent("err-\(id)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        var arguments = args + (ledgerOption ? ["--ledger", ledger.path] : [])
        if let uid {
            // Another user may not be able to reach the build directory: run a copy from the test's
            // own (world-readable) directory, written by a child process (not this one: ETXTBSY).
            let copy = directory.appendingPathComponent("clew-bin")
            if !FileManager.default.fileExists(atPath: copy.path) {
                try installExecutable(copyOf: CLI.binary, at: copy)
            }
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            arguments = ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", copy.path] + arguments
        } else if let netns {
            // `ip netns exec` enters the namespace and execs clew: the process is clew itself.
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            arguments = ["netns", "exec", netns, CLI.binary.path] + arguments
        } else {
            process.executableURL = CLI.binary
        }
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, given in given }
        }
        process.currentDirectoryURL = directory
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        if let input {
            let inFile = directory.appendingPathComponent("in-\(id)")
            try Data(input.utf8).write(to: inFile)
            process.standardInput = try FileHandle(forReadingFrom: inFile)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        return (process, out, err)
    }

    @discardableResult
    func run(
        _ args: [String], input: String? = nil, asUser uid: UInt32? = nil, ledgerOption: Bool = true, netns: String? = nil,
        environment: [String: String] = [:], limit: Duration = .seconds(300)
    ) async throws -> Result {
        let (process, out, err) = try start(args, input: input, asUser: uid, ledgerOption: ledgerOption, netns: netns, environment: environment)
        let status = try await Self.wait(for: process, args: args, limit: limit)
        return Result(
            status: status,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Waits for `process` without holding a thread of the cooperative pool (a test that blocks one starves
    /// every other test's timers on a 2-core machine), killing it after `limit` seconds so a hung command
    /// fails its test, naming the command, instead of stalling the whole suite.
    /// - Returns: its exit status (or the signal that ended it).
    @discardableResult
    static func wait(for process: Process, args: [String], limit: Duration = .seconds(300)) async throws -> Int32 {
        let deadline = ContinuousClock.now + limit
        while process.isRunning {
            if let status = ended(process) { return status }
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                await exit(of: process)
                throw CLIFailure("`clew \(args.joined(separator: " "))` did not finish within \(limit) and was killed")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        process.waitUntilExit()  // already exited: returns at once, and makes the status readable
        endedSince.withLock { _ = $0.removeValue(forKey: process.processIdentifier) }
        return process.terminationStatus

    }

    /// Waits for a process that is known to be ending (killed, or whose input is closed), off the pool.
    /// - Returns: its exit status (or the signal that ended it).
    @discardableResult
    static func exit(of process: Process) async -> Int32 {
        while process.isRunning {
            if let status = ended(process) { return status }
            try? await Task.sleep(for: .milliseconds(5))
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// The status of a child that ended over a second ago while Foundation still calls it running: its
    /// SIGCHLD was missed (seen once, an Airflow child left a zombie and the suite hung on `isRunning`).
    /// Read with `waitid(WNOWAIT)`, which leaves the child to whoever reaps it. Nil while it runs.
    private static let endedSince = Mutex<[pid_t: ContinuousClock.Instant]>([:])
    static func ended(_ process: Process) -> Int32? {
        let pid = process.processIdentifier
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid else { return nil }
        let first = endedSince.withLock { seen -> ContinuousClock.Instant in
            if let t = seen[pid] { return t }
            let now = ContinuousClock.now
            seen[pid] = now
            return now
        }
        guard ContinuousClock.now - first > .seconds(1) else { return nil }  // Foundation's own reaping first
        endedSince.withLock { _ = $0.removeValue(forKey: pid) }
        return info._sifields._sigchld.si_status
    }

    /// Polls `condition` until it holds, at most `limit`; a readiness wait, not a fixed sleep.
    static func waitUntil(
        _ what: String, limit: Duration = .seconds(60), _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + limit
        while try await !condition() {
            if ContinuousClock.now > deadline { throw CLIFailure("timed out after \(limit) waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// `clew stats --json` parsed.
    func stats() async throws -> [String: Any] {
        let r = try await run(["stats", "--json"])
        guard r.status == 0, let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            throw CLIFailure("stats failed: \(r.stderr)")
        }
        return o
    }

    func eventCount() async throws -> Int { (try await stats()["events"] as? Int) ?? -1 }
}

struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func jsonObject(_ text: String) throws -> [String: Any] {
    guard let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw CLIFailure("not a JSON object: \(text)")
    }
    return o
}

func eventLine(type: String = "task.started", stream: String = "run/etl/1", payload: String = #"{"task":"extract"}"#) -> String {
    #"{"type":"\#(type)","stream":"\#(stream)","actor":"worker-1","payload":\#(payload)}"#
}

/// A program other than clew (a producer such as Airflow or dbt), run to its end off the cooperative pool.
struct Program {
    var status: Int32
    var output: String

    /// Runs `executable` with `arguments` in `directory`, with the test's environment plus `environment`;
    /// stdout and stderr together in `output`.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], in directory: URL,
        limit: Duration = .seconds(300)
    ) async throws -> Program {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw CLIFailure("\(executable) is not installed; run tools/setup.sh (it installs the producers with tools/producers.sh)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        // The output goes to a temporary file, never into `directory` (which may be the repository).
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("clew-program-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let status = try await CLI.wait(for: process, args: [executable] + arguments, limit: limit)
        return Program(status: status, output: (try? String(contentsOf: out, encoding: .utf8)) ?? "")

    }

    /// Where tools/producers.sh installed the producers' virtual environments.
    static var venvs: URL {
        if let dir = ProcessInfo.processInfo.environment["CLEW_VENVS"] { return URL(fileURLWithPath: dir) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/clew/venvs")
    }
}
