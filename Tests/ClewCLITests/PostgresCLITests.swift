import ClewTestSupport
import Foundation
import Testing

@Suite("clew on a PostgreSQL ledger")
struct PostgresCLITests {
    @Test("processes on two hosts append to one PostgreSQL ledger at once; runs, views and verify agree on both")
    func twoHosts() async throws {
        try await TestServer.withDatabase { url in
            let cli = CLI()
            defer { cli.cleanUp() }
            let hostA = ["--ledger", url, "--cache", cli.directory.appendingPathComponent("host-a").path]
            let hostB = ["--ledger", url, "--cache", cli.directory.appendingPathComponent("host-b").path]
            let created = try await cli.run(["init"] + hostA, ledgerOption: false)
            #expect(created.status == 0, "\(created.stderr)")
            #expect(created.stdout.contains("created ledger"))
            #expect(!created.stdout.contains(":clew@"), "the password is never printed")

            // Four `clew append` processes, two per host, 100 events each, at the same time.
            let writers = try (0..<4).map { w in
                let lines = (0..<100).map { #"{"type":"task.succeeded","stream":"run/load/\#(w)","payload":{"i":\#($0)}}"# }
                return try cli.start(["append"] + (w % 2 == 0 ? hostA : hostB), input: lines.joined(separator: "\n") + "\n", ledgerOption: false)
            }
            for (process, _, err) in writers {
                try await CLI.wait(for: process, args: ["append"])
                #expect(process.terminationStatus == 0, "\((try? String(contentsOf: err, encoding: .utf8)) ?? "")")
            }
            // A run on host A, seen from host B's views.
            let run = try await cli.run(["run", "csv_orders", "--param", "rows=300"] + hostA, ledgerOption: false)
            #expect(run.status == 0, "\(run.stderr)")
            let runs = try await cli.run(["runs", "--json"] + hostB, ledgerOption: false)
            #expect(runs.status == 0, "\(runs.stderr)")
            let listed = try #require(try JSONSerialization.jsonObject(with: Data(runs.stdout.utf8)) as? [[String: Any]])
            #expect(listed.count == 1)
            #expect(listed.first?["dag"] as? String == "csv_orders")
            #expect(listed.first?["state"] as? String == "succeeded")

            var roots: [String] = []
            for host in [hostA, hostB] {
                let verify = try await cli.run(["verify", "--json"] + host, ledgerOption: false)
                #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
                let report = try #require(try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any])
                let replica = try #require(report["replica"] as? [String: Any])
                let shared = try #require(report["shared"] as? [String: Any])
                #expect(replica["events"] as? Int == shared["events"] as? Int)
                #expect((replica["events"] as? Int ?? 0) > 400)
                #expect(replica["root_hash"] as? String == shared["root_hash"] as? String)
                #expect(shared["replica_agrees"] as? Bool == true)
                roots.append(shared["root_hash"] as? String ?? "")
            }
            #expect(roots[0] == roots[1])
            // Every writer's 100 events, in its own stream, once.
            let log = try await cli.run(["log", "--stream", "run/load/3", "--json"] + hostA, ledgerOption: false)
            #expect(log.status == 0, "\(log.stderr)")
            #expect(log.lines.count == 100)
        }
    }

    @Test("clew mirror keeps an offline copy that follows the shared log, proving each step, and verifies as a directory")
    func mirror() async throws {
        try await TestServer.withDatabase { url in
            let cli = CLI()
            defer { cli.cleanUp() }
            let host = ["--ledger", url, "--cache", cli.directory.appendingPathComponent("host").path]
            let lines = (0..<50).map { #"{"type":"task.succeeded","stream":"run/m/1","payload":{"i":\#($0)}}"# }.joined(separator: "\n") + "\n"
            #expect(try await cli.run(["init"] + host, ledgerOption: false).status == 0)
            #expect(try await cli.run(["append"] + host, input: lines, ledgerOption: false).status == 0)
            let copy = cli.directory.appendingPathComponent("audit-copy").path
            let (process, out, err) = try cli.start(["mirror", url, copy, "--json", "--poll", "3600"], ledgerOption: false)
            func steps() -> [[String: Any]] {
                ((try? String(contentsOf: out, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                }
            }
            try await CLI.waitUntil("the mirror's first step") { steps().count >= 1 }
            #expect(steps()[0]["to"] as? Int == 50)
            // Another host appends; the mirror hears of it (NOTIFY), copies, and proves the step.
            #expect(try await cli.run(["append"] + host, input: lines, ledgerOption: false).status == 0)
            try await CLI.waitUntil("the mirror's second step") { steps().count >= 2 }
            let second = steps()[1]
            #expect(second["from"] as? Int == 50)
            #expect(second["to"] as? Int == 100)
            #expect(second["consistent"] as? Bool == true)
            #expect(second["server_root"] as? String == second["root"] as? String)
            kill(process.processIdentifier, SIGTERM)
            try await CLI.wait(for: process, args: ["mirror"])
            #expect(process.terminationStatus == 0, "\((try? String(contentsOf: err, encoding: .utf8)) ?? "")")
            let verify = try await cli.run(["verify", "--ledger", copy, "--json"], ledgerOption: false)
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(try jsonObject(verify.stdout)["root_hash"] as? String == second["root"] as? String)
            // A later run proves its first step from where this one stopped (kept in the copy's MIRROR file).
            #expect(try await cli.run(["append"] + host, input: lines, ledgerOption: false).status == 0)
            let again = try await cli.run(["mirror", url, copy, "--once", "--json"], ledgerOption: false)
            #expect(again.status == 0, "\(again.stderr)")
            let step = try jsonObject(again.stdout)
            #expect(step["from"] as? Int == 100)
            #expect(step["to"] as? Int == 150)
            #expect(step["consistent"] as? Bool == true)
            // A proven state the copy does not match (its history rewritten, or another copy's) stops it.
            let mirrorFile = URL(fileURLWithPath: copy).appendingPathComponent("MIRROR")
            try Data(#"{"size":150,"root":"\#(String(repeating: "ab", count: 32))"}"#.utf8).write(to: mirrorFile)
            let mismatch = try await cli.run(["mirror", url, copy, "--once"], ledgerOption: false)
            #expect(mismatch.status == 2, "\(mismatch.stdout) \(mismatch.stderr)")
            #expect(mismatch.stderr.contains("does not prove"), "\(mismatch.stderr)")
            // The copy takes no appends of its own.
            let refused = try await cli.run(["append", "--ledger", copy], input: lines, ledgerOption: false)
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("replica of postgres://"), "\(refused.stderr)")
        }
    }

    @Test("erase, retention and checkpoints on a PostgreSQL ledger reach every host: one policy, one record, the same roots")
    func erasureAndCheckpoints() async throws {
        try await TestServer.withDatabase { url in
            let cli = CLI()
            defer { cli.cleanUp() }
            let hostA = ["--ledger", url, "--cache", cli.directory.appendingPathComponent("host-a").path]
            let hostB = ["--ledger", url, "--cache", cli.directory.appendingPathComponent("host-b").path]
            #expect(try await cli.run(["init"] + hostA, ledgerOption: false).status == 0)
            let old = (0..<6).map { #"{"type":"task.succeeded","stream":"run/old/1","time":"2020-01-0\#($0 + 1)T00:00:00Z","payload":{"i":\#($0)}}"# }
            let recent = (0..<4).map { #"{"type":"task.succeeded","stream":"run/new/1","payload":{"i":\#($0)}}"# }
            let appended = try await cli.run(["append"] + hostA, input: (old + recent).joined(separator: "\n") + "\n", ledgerOption: false)
            #expect(appended.status == 0, "\(appended.stderr)")

            // An erasure on host B.
            let erased = try await cli.run(["erase", "--seq", "8", "--reason", "GDPR request 17", "--json"] + hostB, ledgerOption: false)
            #expect(erased.status == 0, "\(erased.stderr)")
            #expect(try jsonObject(erased.stdout)["record_seq"] as? Int == 11)
            // A retention policy saved on host A applies on host B with no argument (it lives in the shared log).
            let saved = try await cli.run(["retention", "--keep-days", "365", "--stream-prefix", "run/"] + hostA, ledgerOption: false)
            #expect(saved.status == 0, "\(saved.stderr)")
            #expect(saved.stdout.contains("removed the payloads of 6 event(s)"), "\(saved.stdout)")
            #expect(try await cli.run(["append"] + hostA, input: old[0] + "\n", ledgerOption: false).status == 0)
            let applied = try await cli.run(["retention", "--json"] + hostB, ledgerOption: false)
            #expect(applied.status == 0, "\(applied.stderr)")
            let policy = try #require(try jsonObject(applied.stdout)["policy"] as? [String: Any])
            #expect(policy["keep_days"] as? Int == 365)
            #expect(try jsonObject(applied.stdout)["events"] as? [Int] == [13])

            // A checkpoint signed on host A is listed and checked on host B.
            let key = cli.directory.appendingPathComponent("signing.key").path
            #expect(try await cli.run(["keygen", "--out", key], ledgerOption: false).status == 0)
            let signed = try await cli.run(["checkpoint", "--key", key, "--json"] + hostA, ledgerOption: false)
            #expect(signed.status == 0, "\(signed.stderr)")
            let listed = try await cli.run(["checkpoint", "--list", "--key", key, "--json"] + hostB, ledgerOption: false)
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdout.contains(try jsonObject(signed.stdout)["root_hash"] as? String ?? "-"), "\(listed.stdout)")

            var roots: Set<String> = []
            for host in [hostA, hostB] {
                let verify = try await cli.run(["verify", "--json", "--public-key", key + ".pub"] + host, ledgerOption: false)
                #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
                let report = try jsonObject(verify.stdout)
                let replica = try #require(report["replica"] as? [String: Any])
                let shared = try #require(report["shared"] as? [String: Any])
                #expect(replica["erased_payloads"] as? Int == 8)
                #expect(shared["erased_payloads"] as? Int == 8)
                #expect(replica["checkpoints_checked"] as? Int == 1)
                #expect(shared["checkpoints_checked"] as? Int == 1)
                roots.insert(shared["root_hash"] as? String ?? "")
                roots.insert(replica["root_hash"] as? String ?? "")
            }
            #expect(roots.count == 1)
            let shown = try await cli.run(["log", "--stream", "run/new/1", "--json"] + hostA, ledgerOption: false)
            #expect(shown.lines.filter { $0.contains("\"payload_erased\":true") }.count == 1, "\(shown.stdout)")
        }
    }

    @Test("bench cluster measures the shared log against raw INSERTs with client processes, and prints every figure")
    func benchCluster() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let r = try await cli.run(
            ["bench", "cluster", "--postgres", TestServer.admin, "--events", "2000", "--repetitions", "1", "--clients", "1", "2", "--workers", "1", "--json"],
            // About 70 s alone; on two cores shared with the whole suite it has taken over 300 s.
            ledgerOption: false, limit: .seconds(900))
        #expect(r.status == 0, "\(r.stderr)")
        let j = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for key in ["pg_append_eps", "raw_insert_eps", "pg_append_ratio"] {
            let byClients = try #require(j[key] as? [String: Double], "\(key)")
            #expect(Set(byClients.keys) == ["1", "2"])
            #expect(byClients.values.allSatisfy { $0 > 0 })
        }
        #expect(Set((j["tasks_per_s"] as? [String: Double] ?? [:]).keys) == ["1"])
        #expect((j["tasks_ratio"] as? [String: Double])?["1"] ?? 0 > 0)
        for key in [
            "durable_single_p50_us", "raw_single_p50_us", "durable_single_ratio", "replica_copy_eps", "raw_select_eps", "replica_copy_ratio",
            "claim_p50_ms", "local_tasks_per_s", "recovery_ms_p50", "expiry_to_claim_ms_p50",
        ] {
            #expect((j[key] as? Double ?? 0) > 0, "\(key)")
        }
    }

    @Test("a bad URL, an unreachable server and a database without a ledger are refused with the reason, no password shown")
    func badLedgers() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let noUser = try await cli.run(["log", "--ledger", "postgres://127.0.0.1/clew"], ledgerOption: false)
        #expect(noUser.status != 0)
        #expect(noUser.stderr.contains("names no user"), "\(noUser.stderr)")
        let unreachable = try await cli.run(
            ["log", "--ledger", "postgres://clew:s3cret@127.0.0.1:1/clew?sslmode=disable", "--cache", cli.directory.path + "/c"], ledgerOption: false)
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.contains("cannot connect to PostgreSQL at postgres://clew@127.0.0.1:1/clew"), "\(unreachable.stderr)")
        #expect(!unreachable.stderr.contains("s3cret"))
        try await TestServer.withDatabase { url in
            let empty = try await cli.run(["runs", "--ledger", url, "--cache", cli.directory.path + "/e"], ledgerOption: false)
            #expect(empty.status != 0)
            #expect(empty.stderr.contains("holds no Clew ledger; create one with `clew init"), "\(empty.stderr)")
            let restore = try await cli.run(["restore", "/nonexistent", "--ledger", url], ledgerOption: false)
            #expect(restore.status != 0)
            #expect(restore.stderr.contains("restore works on a ledger directory"), "\(restore.stderr)")
        }
    }
}
