import ClewTestSupport
import Foundation
import Synchronization
import Testing

/// Hosts on one machine: each a network namespace linked to this one by a veth pair (10.231.N.0/24),
/// through which it reaches the fault tests' PostgreSQL (tools/postgres.sh --faults listens on every
/// address). Cutting a host's link is `ip link set … down`: its TCP connections stay open and silent,
/// as with a pulled cable. Needs root and iproute2; a test that cannot make its hosts fails saying so.
final class Hosts: Sendable {
    struct Host: Sendable {
        var name: String
        var netns: String
        /// This side of the host's link.
        var link: String
        /// The server's address as the host sees it.
        var serverAddress: String
    }

    private static let next = Atomic<Int>(0)
    private let made = Mutex<[Host]>([])

    init() throws {
        Self.sweep()
    }

    /// A new host.
    func add(_ name: String) throws -> Host {
        let n = Self.next.wrappingAdd(1, ordering: .relaxed).newValue
        let tag = "cw\(getpid() % 100_000)x\(n)"
        let subnet = 1 + (Int(getpid()) * 7 + n) % 250
        let host = Host(name: name, netns: "\(tag)h", link: "\(tag)r", serverAddress: "10.231.\(subnet).1")
        made.withLock { $0.append(host) }
        try Self.ip(["netns", "add", host.netns])
        try Self.ip(["link", "add", host.link, "type", "veth", "peer", "name", "\(tag)n"])
        try Self.ip(["link", "set", "\(tag)n", "netns", host.netns])
        try Self.ip(["addr", "add", "10.231.\(subnet).1/24", "dev", host.link])
        try Self.ip(["link", "set", host.link, "up"])
        try Self.ip(["netns", "exec", host.netns, "ip", "addr", "add", "10.231.\(subnet).2/24", "dev", "\(tag)n"])
        try Self.ip(["netns", "exec", host.netns, "ip", "link", "set", "\(tag)n", "up"])
        try Self.ip(["netns", "exec", host.netns, "ip", "link", "set", "lo", "up"])
        return host
    }

    /// The host's link down: nothing gets through, nothing is reset.
    func cut(_ host: Host) throws { try Self.ip(["link", "set", host.link, "down"]) }

    func restore(_ host: Host) throws { try Self.ip(["link", "set", host.link, "up"]) }

    func remove() {
        for host in made.withLock({ $0 }) {
            try? Self.ip(["link", "del", host.link])
            try? Self.ip(["netns", "del", host.netns])
        }
    }

    /// `url` as a host reaches it.
    func url(_ url: String, from host: Host) -> String {
        url.replacingOccurrences(of: "@127.0.0.1:", with: "@\(host.serverAddress):")
    }

    /// Links and namespaces left by a test process that was killed.
    private static func sweep() {
        for line in ((try? ip(["netns", "list"])) ?? "").split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            if name.hasPrefix("cw"), let x = name.firstIndex(of: "x"), let pid = Int32(name[name.index(name.startIndex, offsetBy: 2)..<x]), kill(pid, 0) != 0 {
                try? ip(["netns", "del", name])
            }
        }
        guard let names = try? ip(["-o", "link", "show"]) else { return }
        for line in names.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { continue }
            let name = fields[1].split(separator: "@").first.map(String.init)?.trimmingCharacters(in: CharacterSet(charactersIn: ":")) ?? ""
            guard name.hasPrefix("cw"), name.hasSuffix("r"), let x = name.firstIndex(of: "x"),
                let pid = Int32(name[name.index(name.startIndex, offsetBy: 2)..<x]), kill(pid, 0) != 0
            else { continue }
            try? ip(["link", "del", name])
            try? ip(["netns", "del", String(name.dropLast()) + "h"])
        }
    }

    @discardableResult
    static func ip(_ args: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = args
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch {
            throw CLIFailure("cannot run /usr/sbin/ip (iproute2, installed by tools/setup.sh): \(error)")
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let problem = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CLIFailure(
                "`ip \(args.joined(separator: " "))` failed: \(String(decoding: problem, as: UTF8.self)) (the fault tests make network namespaces: they need root)")
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// The processes a cluster test started, so they are ended however the test ends.
final class StartedProcesses: @unchecked Sendable {
    // @unchecked Sendable: `Process` is not marked Sendable; the list is only touched under the lock.
    let list = Mutex<[Process]>([])
}

/// A `clew` process started on a host, with its output files.
struct Started {
    var process: Process
    var out: URL
    var err: URL
    var stderr: String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }

    func stop() async {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        await CLI.exit(of: process)
    }
}

/// Faults of a cluster of hosts sharing a PostgreSQL log, each followed by `clew verify` on PostgreSQL,
/// a mirror verified in LMDB, and the same Merkle root on every host.
@Suite("Faults across hosts (network namespaces, a shared PostgreSQL log)", .serialized)
struct ClusterFaultTests {
    static let pipelines = ["--pipelines", CLI.packageRoot.appendingPathComponent("Fixtures/cluster/pipelines").path]

    /// A cluster for one test: its database on the fault server, its hosts, its temporary directory.
    struct Cluster {
        let cli: CLI
        let net: Hosts
        let url: String
        /// Every process started on a host, killed when the test ends however it ends: a test that failed
        /// before stopping its workers once left two running for an hour and a half.
        let started = StartedProcesses()

        func on(_ host: Hosts.Host) -> [String] {
            ["--ledger", net.url(url, from: host), "--cache", cli.directory.appendingPathComponent(host.name).path]
        }

        func start(_ args: [String], on host: Hosts.Host, environment: [String: String] = [:]) throws -> Started {
            let (p, o, e) = try cli.start(args + on(host), ledgerOption: false, netns: host.netns, environment: environment)
            started.list.withLock { $0.append(p) }
            return Started(process: p, out: o, err: e)
        }

        func run(_ args: [String], on host: Hosts.Host) async throws -> CLI.Result {
            try await cli.run(args + on(host), ledgerOption: false, netns: host.netns)
        }

        /// A worker on `host`, serving queue `q` once it says so.
        func worker(_ name: String, on host: Hosts.Host) async throws -> Started {
            let w = try start(["worker", "--queue", "q", "--name", name] + ClusterFaultTests.pipelines, on: host)
            try await CLI.waitUntil("worker \(name) to serve") { w.stderr.contains("serving queue q") || !w.process.isRunning }
            #expect(w.process.isRunning, "worker \(name) did not start: \(w.stderr)")
            return w
        }

        /// Worker "a" on `workerHost`, and a run of cluster_chain from `coordinator` through it, once
        /// the worker has claimed the slow task's first attempt.
        func chainClaimed(coordinator: Hosts.Host, workerHost: Hosts.Host, lease: Int, pause: Int) async throws -> (worker: Started, run: Started) {
            let a = try await worker("a", on: workerHost)
            let run = try start(
                ["run", "cluster_chain", "--queue", "q", "--lease", "\(lease)", "--param", "pause=\(pause)", "--json"] + ClusterFaultTests.pipelines,
                on: coordinator)
            try await CLI.waitUntil("worker a to claim the slow task") { a.stderr.contains(" slow attempt 1") }
            return (a, run)
        }

        /// The run's events, as `clew log --json` prints them, from `host`'s replica.
        func events(_ stream: String, on host: Hosts.Host) async throws -> [[String: Any]] {
            let log = try await run(["log", "--stream", stream, "--json"], on: host)
            #expect(log.status == 0, "\(log.stderr)")
            return log.lines.compactMap { try? jsonObject($0) }
        }

        /// `clew verify` on PostgreSQL from every host, and a mirror in LMDB verified as a directory:
        /// all verify, all at the same root.
        func verifyEverywhere(_ hosts: [Hosts.Host]) async throws {
            var roots = Set<String>()
            for host in hosts {
                let verify = try await run(["verify", "--json"], on: host)
                #expect(verify.status == 0, "verify on \(host.name): \(verify.stdout) \(verify.stderr)")
                let report = try jsonObject(verify.stdout)
                let shared = report["shared"] as? [String: Any]
                #expect(shared?["replica_agrees"] as? Bool == true, "\(host.name): \(verify.stdout)")
                roots.insert(shared?["root_hash"] as? String ?? "?")
                roots.insert((report["replica"] as? [String: Any])?["root_hash"] as? String ?? "?")
            }
            let copy = cli.directory.appendingPathComponent("mirror-\(UUID().uuidString.prefix(8))").path
            let mirror = try await cli.run(["mirror", url, copy, "--once", "--json"], ledgerOption: false)
            #expect(mirror.status == 0, "mirror: \(mirror.stderr)")
            let verify = try await cli.run(["verify", "--json", "--ledger", copy], ledgerOption: false)
            #expect(verify.status == 0, "mirror verify: \(verify.stdout) \(verify.stderr)")
            roots.insert((try? jsonObject(verify.stdout))?["root_hash"] as? String ?? "?")
            #expect(roots.count == 1, "roots differ between hosts and the mirror: \(roots)")
        }
    }

    /// A cluster of hosts named `names` whose shared log the first host creates (`clew init`).
    func withCluster(_ names: [String], _ body: (Cluster, [Hosts.Host]) async throws -> Void) async throws {
        try await TestServer.withDatabase(on: TestServer.faults) { url in
            let cli = CLI()
            let net = try Hosts()
            let cluster = Cluster(cli: cli, net: net, url: url)
            defer {
                for p in cluster.started.list.withLock({ $0 }) where p.isRunning {
                    kill(p.processIdentifier, SIGKILL)
                    p.waitUntilExit()
                }
                net.remove()
                cli.cleanUp()
            }
            let hosts = try names.map { try net.add($0) }
            let created = try await cluster.run(["init"], on: hosts[0])
            #expect(created.status == 0, "\(created.stderr)")
            try await body(cluster, hosts)
        }
    }

    /// Each task's `task.succeeded` events in a run stream, by task.
    static func successes(_ events: [[String: Any]]) -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for e in events where e["type"] as? String == "task.succeeded" {
            let p = e["payload"] as? [String: Any]
            out[p?["task"] as? String ?? "?", default: []].append(p?["attempt"] as? Int ?? 0)
        }
        return out
    }

    @Test("a worker killed (kill -9) in the middle of a task: the attempt runs again on another host, and every task succeeds once")
    func workerKilled() async throws {
        try await withCluster(["coordinator", "host-a", "host-b"]) { c, hosts in
            let (coordinator, hostA, hostB) = (hosts[0], hosts[1], hosts[2])
            let (a, run) = try await c.chainClaimed(coordinator: coordinator, workerHost: hostA, lease: 3, pause: 4)
            let killed = ContinuousClock.now
            kill(a.process.processIdentifier, SIGKILL)
            await CLI.exit(of: a.process)
            let b = try await c.worker("b", on: hostB)
            try await CLI.wait(for: run.process, args: ["run"], limit: .seconds(120))
            let recovered = ContinuousClock.now - killed
            await b.stop()
            #expect(run.process.terminationStatus == 0, "\(run.stderr)")
            let id = try jsonObject(run.stdout)["run"] as? String ?? "?"
            let events = try await c.events("run/cluster_chain/\(id)", on: coordinator)
            #expect(Self.successes(events) == ["first": [1], "slow": [2], "last": [1]], "\(Self.successes(events))")
            let lost = try await c.events("attempt/cluster_chain/\(id)/slow/1", on: hostB)
            #expect(lost.last?["type"] as? String == "attempt.expired", "\(lost.map { $0["type"] ?? "" })")
            #expect(b.stderr.contains("slow attempt 2: succeeded"), "\(b.stderr)")
            #expect(recovered < .seconds(60), "the attempt took \(recovered) to run again")
            try await c.verifyEverywhere([coordinator, hostB])
        }
    }

    @Test("a worker cut off for longer than its lease: the attempt runs elsewhere, and its late results are refused when the link is back")
    func workerCutOff() async throws {
        try await withCluster(["coordinator", "host-a", "host-b"]) { c, hosts in
            let (coordinator, hostA, hostB) = (hosts[0], hosts[1], hosts[2])
            let (a, run) = try await c.chainClaimed(coordinator: coordinator, workerHost: hostA, lease: 3, pause: 4)
            try c.net.cut(hostA)
            let b = try await c.worker("b", on: hostB)
            try await CLI.wait(for: run.process, args: ["run"], limit: .seconds(120))
            #expect(run.process.terminationStatus == 0, "\(run.stderr)")
            // A stopped the attempt on its own when no heartbeat was acknowledged within the lease; with
            // its link back, what it had left to record is refused: the run expired its lease.
            try c.net.restore(hostA)
            try await CLI.waitUntil("worker a's late events to be refused", limit: .seconds(90)) { a.stderr.contains("late events were refused") }
            await a.stop()
            await b.stop()
            let id = try jsonObject(run.stdout)["run"] as? String ?? "?"
            let events = try await c.events("run/cluster_chain/\(id)", on: coordinator)
            #expect(Self.successes(events) == ["first": [1], "slow": [2], "last": [1]], "\(Self.successes(events))")
            let lease = try await c.events("attempt/cluster_chain/\(id)/slow/1", on: coordinator)
            let expired = try #require(lease.first { $0["type"] as? String == "attempt.expired" }?["seq"] as? Int)
            #expect(lease.last?["seq"] as? Int == expired, "nothing follows the expiry in the lease's stream")
            // Of attempt 1, only what came before the expiry, and the run's own account of the loss.
            let late = events.filter { e in
                let p = e["payload"] as? [String: Any]
                return p?["task"] as? String == "slow" && p?["attempt"] as? Int == 1 && (e["seq"] as? Int ?? 0) > expired
                    && e["actor"] as? String == "clew-worker"
            }
            #expect(late.isEmpty, "worker a recorded after its lease expired: \(late)")
            try await c.verifyEverywhere([coordinator, hostA, hostB])
        }
    }

    @Test("PostgreSQL restarted in the middle of a run: clients reconnect, nothing acknowledged is lost, no batch lands twice")
    func serverRestarted() async throws {
        try await withCluster(["coordinator", "host-a"]) { c, hosts in
            let (coordinator, hostA) = (hosts[0], hosts[1])
            let (a, run) = try await c.chainClaimed(coordinator: coordinator, workerHost: hostA, lease: 20, pause: 3)
            try await Self.restartFaultServer()
            try await CLI.wait(for: run.process, args: ["run"], limit: .seconds(120))
            await a.stop()
            #expect(run.process.terminationStatus == 0, "\(run.stderr)")
            let id = try jsonObject(run.stdout)["run"] as? String ?? "?"
            let events = try await c.events("run/cluster_chain/\(id)", on: coordinator)
            #expect(Self.successes(events) == ["first": [1], "slow": [1], "last": [1]], "\(Self.successes(events))")
            // No event twice: a retried batch is applied once.
            let bodies = events.map { "\($0["type"] ?? "")|\(($0["payload"] as? [String: Any]).map { "\($0)" } ?? "")" }
            #expect(Set(bodies).count == bodies.count, "an event landed twice")
            try await c.verifyEverywhere([coordinator, hostA])
        }
    }

    @Test("two hosts racing for a chunk's write lease: one writes it, the other is blocked and told who holds it")
    func writeLeaseRace() async throws {
        try await withCluster(["host-a", "host-b"]) { c, hosts in
            let (hostA, hostB) = (hosts[0], hosts[1])
            let runs = try [hostA, hostB].map { try c.start(["run", "cluster_writer", "--param", "pause=3", "--json"] + Self.pipelines, on: $0) }
            for r in runs { try await CLI.wait(for: r.process, args: ["run"], limit: .seconds(120)) }
            let statuses = runs.map(\.process.terminationStatus).sorted()
            #expect(statuses == [0, 3], "\(runs.map(\.stderr))")
            let loser = try #require(runs.first { $0.process.terminationStatus == 3 })
            let winner = try #require(runs.first { $0.process.terminationStatus == 0 })
            let winnerRun = try jsonObject(winner.stdout)["run"] as? String ?? "?"
            #expect((loser.stdout + loser.stderr).contains("chunk cluster.shared/k1 is being written by run \(winnerRun) task write"), "\(loser.stdout) \(loser.stderr)")
            let chunks = try await c.events("dataset/cluster.shared", on: hostB)
            let producing = chunks.filter { ($0["payload"] as? [String: Any])?["to"] as? String == "producing" }
            #expect(producing.count == 1, "only the winner took the write lease: \(producing)")
            try await c.verifyEverywhere([hostA, hostB])
        }
    }

    @Test("the leading scheduler killed: the other takes the lead and finishes the partition's run, which runs once")
    func leaderKilled() async throws {
        try await withCluster(["host-a", "host-b"]) { c, hosts in
            let (hostA, hostB) = (hosts[0], hosts[1])
            let scheduler = ["scheduler", "--dag", "cluster_daily", "--poll", "1"] + Self.pipelines
            // The run's first task waits for this file: the leader is killed while its run surely goes on
            // (under CI's load a 4 s task had ended before the kill came).
            let gate = c.cli.directory.appendingPathComponent("gate").path
            let leader = try c.start(scheduler, on: hostA, environment: ["CLEW_FAULT_GATE": gate])
            try await CLI.waitUntil("the first scheduler to lead") { leader.stderr.contains("scheduler: leading") }
            let standby = try c.start(scheduler, on: hostB, environment: ["CLEW_FAULT_GATE": gate])
            try await CLI.waitUntil("the second scheduler to wait") { standby.stderr.contains("waiting to lead") }
            try await CLI.waitUntil("the leader's run to start its first task", limit: .seconds(60)) {
                try await c.run(["log", "--type", "task.started", "--json"], on: hostB).lines.count >= 1
            }
            #expect(!standby.stderr.contains("scheduler: leading"), "two schedulers led at once: \(standby.stderr)")
            kill(leader.process.processIdentifier, SIGKILL)
            await CLI.exit(of: leader.process)
            #expect(FileManager.default.createFile(atPath: gate, contents: Data()))
            do {
                try await CLI.waitUntil("the second scheduler to finish the partition's run", limit: .seconds(90)) {
                    standby.stderr.contains("of cluster_daily: succeeded") || !standby.process.isRunning
                }
            } catch {
                let seen = (try? await c.run(["log", "--json"], on: hostB).lines.suffix(12).compactMap { try? jsonObject($0) }.map { "\($0["seq"] ?? "") \($0["stream"] ?? "") \($0["type"] ?? "")" }) ?? []
                Issue.record("\(error); the second scheduler said: \(standby.stderr); the leader said: \(leader.stderr); the log ends: \(seen.joined(separator: "; "))")
                throw error
            }
            #expect(standby.stderr.contains("of cluster_daily: succeeded"), "the second scheduler said: \(standby.stderr)")
            await standby.stop()
            #expect(standby.stderr.contains("scheduler: leading"), "\(standby.stderr)")
            let queued = try await c.run(["log", "--type", "run.queued", "--json"], on: hostB).lines
            #expect(queued.count == 1, "one run for the due partition: \(queued)")
            let resubmitted = try await c.run(["log", "--type", "run.resubmitted", "--json"], on: hostB).lines.compactMap { try? jsonObject($0) }
            #expect(resubmitted.count == 1 && (resubmitted.first?["payload"] as? [String: Any])?["previous_status"] as? String == "interrupted", "\(resubmitted)")
            let ended = try await c.run(["log", "--type", "run.succeeded", "--json"], on: hostB).lines
            #expect(ended.count == 1)
            try await c.verifyEverywhere([hostB])
        }
    }

    /// Restarts the fault tests' cluster (pg_ctlcluster, as root).
    static func restartFaultServer() async throws {
        let list = Process()
        list.executableURL = URL(fileURLWithPath: "/usr/bin/pg_lsclusters")
        list.arguments = ["-h"]
        let out = Pipe()
        list.standardOutput = out
        try list.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        list.waitUntilExit()
        guard let line = text.split(separator: "\n").first(where: { $0.split(separator: " ").dropFirst().first == "clewfaults" }) else {
            throw CLIFailure("no clewfaults cluster: run tools/postgres.sh --faults (tools/setup.sh does)")
        }
        let version = String(line.split(separator: " ")[0])
        // posix_spawn and waitpid, not Foundation's Process: a pg_ctlcluster started with Process was
        // never reaped (a zombie whose end Process never saw), and the test waited forever.
        let argv = ["/usr/bin/pg_ctlcluster", version, "clewfaults", "restart"]
        var pid: pid_t = 0
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        guard posix_spawn(&pid, argv[0], nil, nil, &cArgs, environ) == 0 else { throw CLIFailure("cannot start pg_ctlcluster") }
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        guard status == 0 else { throw CLIFailure("pg_ctlcluster \(version) clewfaults restart failed (status \(status))") }
    }
}
