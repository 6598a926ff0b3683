import ClewLedger
import ClewModel
import ClewTestSupport
import Foundation
import Subprocess
import SystemPackage
import Testing

@Suite("Replay CLI", .serialized)
struct ReplayCLITests {
    /// Runs numeric_flow for `batch` through the CLI and returns the run id.
    static func numericRun(_ cli: CLI, batch: Int) async throws -> String {
        let r = try await cli.run(["run", "numeric_flow", "--param", "batch=\(batch)", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return try #require(o["run"] as? String ?? o["run_id"] as? String, "\(r.stdout)")
    }

    @Test("erase: a run's recorded variable erased; verify still passes, the views are rebuilt without it, replay refuses by seq")
    func erase() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let run = try await Self.numericRun(cli, batch: 1)
        let log = try await cli.run(["log", "--stream", "run/numeric_flow/\(run)", "--type", "variable.recorded", "--json", "--limit", "1"])
        let line = try jsonObject(log.stdout)
        let seq = try #require(line["seq"] as? Int, "\(log.stdout)")
        let digest = try #require((line["payload"] as? [String: Any])?["digest"] as? String)
        #expect(try await cli.run(["runs"]).status == 0)  // builds the views
        #expect(try await cli.run(["views", "verify"]).status == 0)
        func indexedSeqs() async throws -> [Int] {
            let r = try await cli.run(["values", "--digest", digest, "--json"])
            let hits = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]], "\(r.stdout)")
            return hits.compactMap { $0["seq"] as? Int }
        }
        #expect(try await indexedSeqs().contains(seq))
        let erased = try await cli.run(["erase", "--seq", "\(seq)", "--reason", "request 17", "--actor", "dpo"])
        #expect(erased.status == 0, "\(erased.stderr)")
        #expect(erased.stdout.contains("views were rebuilt"), "\(erased.stdout)")
        let verify = try jsonObject(try await cli.run(["verify", "--json"]).stdout)
        #expect(verify["ok"] as? Bool == true && verify["erased_payloads"] as? Int == 1, "\(verify)")
        let shown = try await cli.run(["log", "--from", "\(seq)", "--to", "\(seq)", "--json"])
        #expect(shown.stdout.contains(#""payload_erased":true"#), "\(shown.stdout)")
        let record = try await cli.run(["log", "--type", "ledger.payloads_erased", "--json"])
        #expect(record.stdout.contains("request 17") && record.stdout.contains(#""actor":"dpo""#), "\(record.stdout)")
        #expect(try await cli.run(["views", "verify"]).status == 0)
        // The value index no longer holds what the erased payload said.
        #expect(try await !indexedSeqs().contains(seq))
        let replay = try await cli.run(["replay", run])
        #expect(replay.status != 0 && replay.stderr.contains("were erased") && replay.stderr.contains("\(seq)"), "\(replay.stderr)")
        let bad = try await cli.run(["erase", "--seq", "999999", "--reason", "x"])
        #expect(bad.status != 0 && bad.stderr.contains("there is no event 999999"), "\(bad.stderr)")
    }

    @Test("replay: identical verdict as text and JSON, a counterfactual branch, bad input named")
    func replay() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let run = try await Self.numericRun(cli, batch: 1)
        let text = try await cli.run(["replay", run])
        #expect(text.status == 0 && text.stdout.contains("identical"), "\(text.stdout)\(text.stderr)")
        let json = try await cli.run(["replay", "numeric_flow/\(run)", "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(report["verdict"] as? String == "identical")
        #expect((report["steps_compared"] as? Int ?? 0) >= 20)
        let from = try await cli.run(["replay", run, "--from", "aggregate", "--json"])
        let f = try #require(try JSONSerialization.jsonObject(with: Data(from.stdout.utf8)) as? [String: Any])
        #expect(f["from_record"] as? [String] == ["convert_units", "read_batch"], "\(from.stdout)")
        let branch = try await cli.run(["replay", run, "--set", "threshold_kg=100"])
        #expect(branch.status == 0 && branch.stdout.contains("branch run numeric_flow/\(run).branch-1"), "\(branch.stdout)\(branch.stderr)")
        #expect(branch.stdout.contains("route") && branch.stdout.contains("[\"flag_heavy\"]"), "\(branch.stdout)")
        let runs = try await cli.run(["runs", "--json"])
        #expect(runs.stdout.contains("\(run).branch-1"))
        for (args, needle) in [
            (["replay", "nope"], "no run nope"),
            (["replay", run, "--from", "ghost"], "has no task ghost"),
            (["replay", run, "--set", "noequals"], "expected NAME=VALUE"),
            (["replay", run, "--from", "aggregate", "--set", "a=1"], "cannot be combined"),
            (["inspect", run, "--task", "ghost"], "did not run"),
            (["inspect", run, "--task", "aggregate", "--step", "99"], "has no step 99"),
        ] {
            let r = try await cli.run(args)
            #expect(r.status == 1 && r.stderr.contains(needle), "\(args): \(r.stderr)")
        }
        let verify = try await cli.run(["verify"])
        #expect(verify.status == 0, "nothing recorded was damaged: \(verify.stdout)\(verify.stderr)")
    }

    @Test("replay of a command that reads the clock: exit 2, nondeterminism, the step named")
    func divergedCommand() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let dir = cli.directory.appendingPathComponent("pipelines")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let script = dir.appendingPathComponent("stamp.sh")
        try installExecutable("#!/bin/sh\necho \"::set-variable name=rows::3\"\necho \"::set-variable name=stamp::$(date +%s%N)\"\n", at: script)
        try "dag: stamped\ntasks:\n  stamp:\n    run: ./stamp.sh\n".write(to: dir.appendingPathComponent("stamped.yaml"), atomically: true, encoding: .utf8)
        let r = try await cli.run(["run", "stamped", "--pipelines", dir.path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let id = try #require((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["run"] as? String)
        let replay = try await cli.run(["replay", id, "--pipelines", dir.path, "--json"])
        #expect(replay.status == 2, "\(replay.stdout)\(replay.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(replay.stdout.utf8)) as? [String: Any])
        let d = try #require(report["divergence"] as? [String: Any])
        #expect(report["verdict"] as? String == "diverged")
        #expect(d["task"] as? String == "stamp" && d["variable"] as? String == "stamp" && d["step"] as? Int == 2)
        #expect((d["cause"] as? [String: Any])?["kind"] as? String == "nondeterminism", "\(d)")
        let text = try await cli.run(["replay", id, "--pipelines", dir.path])
        #expect(text.status == 2 && text.stdout.contains("DIVERGED") && text.stdout.contains("cause: nondeterminism"), "\(text.stdout)")
    }

    @Test("inspect shows scope, values and origins")
    func inspect() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let run = try await Self.numericRun(cli, batch: 1)
        let overview = try await cli.run(["inspect", run])
        #expect(overview.status == 0 && overview.stdout.contains("convert_units") && overview.stdout.contains("succeeded"), "\(overview.stdout)")
        let detail = try await cli.run(["inspect", run, "--task", "aggregate", "--step", "2", "--var", "total_kg", "--json"])
        let o = try #require(try JSONSerialization.jsonObject(with: Data(detail.stdout.utf8)) as? [String: Any], "\(detail.stdout)\(detail.stderr)")
        let scope = try #require(o["scope"] as? [[String: Any]])
        #expect(scope.contains { $0["name"] as? String == "input.convert_units" && ($0["origin"] as? String ?? "").contains("output of convert_units#1") })
        #expect(scope.contains { $0["name"] as? String == "total_kg" && ($0["origin"] as? String ?? "") == "step 1 of aggregate#1" })
        #expect((o["last_write"] as? [String: Any])?["step"] as? Int == 1)
        let text = try await cli.run(["inspect", run, "--task", "convert_units", "--step", "2"])
        #expect(text.stdout.contains("factor = 0.001") && text.stdout.contains("← step 1 of convert_units#1"), "\(text.stdout)")
    }

    @Test("debug, driven in tmux: breakpoint, continue, step back, watch, provenance, quit")
    func debugInTmux() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        #expect(try await cli.run(["init"]).status == 0)
        let run = try await Self.numericRun(cli, batch: 1)
        let tmux = try #require(["/usr/bin/tmux", "/bin/tmux", "/usr/local/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }, "tmux is not installed (tools/setup.sh installs it)")
        // A server of its own (its own socket), so an outer tmux or another test's session is never touched.
        let socket = cli.directory.appendingPathComponent("tmux.sock").path
        let session = "debug"
        /// Runs a tmux client and returns its output. swift-subprocess, not Foundation's Process: Process notices
        /// an exit when a socket it hands the child closes, and the tmux server the first client forks keeps
        /// that socket for as long as it lives, so waiting on Process hangs whenever no server was running.
        /// Subprocess closes every other descriptor in the child and waits on the pid itself.
        func sh(_ args: [String]) async throws -> String {
            let result = try await Subprocess.run(
                .path(FilePath(tmux)), arguments: Arguments(["-S", socket] + args),
                input: .none, output: .string(limit: 1 << 20), error: .string(limit: 1 << 16))
            return result.standardOutput + result.standardError
        }
        // The pane outlives the debugger until the test kills the server, however long a loaded machine
        // takes to read the last line (a fixed `sleep 30` once ended the session before it was read).
        let command = "\(CLI.binary.path) debug \(run) --ledger \(cli.ledger.path); echo debugger exited $?; sleep 3600"
        _ = try await sh(["new-session", "-d", "-s", session, "-x", "200", "-y", "60", command])
        /// Sends a line and waits until the pane shows `expect`.
        func send(_ keys: String, expect: String) async throws -> String {
            if !keys.isEmpty {
                _ = try await sh(["send-keys", "-t", session, "-l", keys])
                _ = try await sh(["send-keys", "-t", session, "Enter"])
            }
            var pane = ""
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                pane = try await sh(["capture-pane", "-p", "-t", session, "-S", "-200"])
                if pane.contains(expect) { return pane }
                try await Task.sleep(for: .milliseconds(50))
            }
            Issue.record("the pane never showed '\(expect)' after '\(keys)':\n\(pane)")
            return pane
        }
        do {
            try await drive(send)
        } catch {
            Issue.record(error)
        }
        _ = try? await sh(["kill-server"])
    }

    /// The debugger session itself: each line sent and what the pane must then show.
    private func drive(_ send: (String, String) async throws -> String) async throws {
        _ = try await send("", "(clew)")
        _ = try await send("b task == \"aggregate\" && total_kg > 500", "breakpoint 1: task")
        _ = try await send("c", "aggregate#1 step 1")
        let back = try await send("p", "convert_units#1 step 2")
        #expect(back.contains("kg = ["))
        _ = try await send("w factor", "watch 1: factor = 0.001")
        _ = try await send("jump 1", "[1/")
        let provenance = try await send("jump aggregate:1", "[4/")
        #expect(provenance.contains("total_kg = 1159.393"), "\(provenance)")
        _ = try await send("where input.convert_units", "same value as kg at step 2 of convert_units#1")
        _ = try await send("q", "debugger exited 0")
    }
}
