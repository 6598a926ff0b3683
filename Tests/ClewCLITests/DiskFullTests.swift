import ClewTestSupport
import Foundation
import Testing

/// A ledger on a filesystem that fills up: a 3 MiB tmpfs mounted by the test (CI runs as root), grown
/// with `mount -o remount` when the test gives space back.
@Suite("Disk full (a small tmpfs)")
struct DiskFullTests {
    @Test("appends and rebuilds on a full filesystem fail with a clear error, nothing acknowledged is lost or corrupted, work resumes when space returns")
    func diskFull() async throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        let mount = cli.directory.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: mount, withIntermediateDirectories: true)
        let mounted = try await Program.run("/bin/mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mount.path], in: cli.directory)
        try #require(mounted.status == 0, "mounting a tmpfs needs root, as CI runs: \(mounted.output)")
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = ["-l", mount.path]
            try? umount.run()
            umount.waitUntilExit()
        }
        let ledger = mount.appendingPathComponent("l").path
        func clew(_ args: [String], input: String? = nil) async throws -> CLI.Result {
            try await cli.run(args + ["--ledger", ledger], input: input, ledgerOption: false)
        }
        #expect(try await clew(["init"]).status == 0)
        // 1,000 events of ~500 bytes a batch: the log fills the 3 MiB within a few batches.
        var generator = SystemRandomNumberGenerator()
        func batch(_ n: Int) -> String {
            (0..<1000).map { i in
                let filler = String((0..<400).map { _ in "abcdefghij".randomElement(using: &generator)! })
                return #"{"type":"note.added","stream":"notes/\#(i % 20)","payload":{"batch":\#(n),"i":\#(i),"text":"\#(filler)"}}"#
            }.joined(separator: "\n") + "\n"
        }
        var acknowledged = 0
        var refusal: CLI.Result?
        for n in 0..<20 {
            let r = try await clew(["append"], input: batch(n))
            if r.status != 0 {
                refusal = r
                break
            }
            acknowledged += 1000
        }
        let refused = try #require(refusal, "3 MiB never filled")
        #expect(acknowledged >= 2000)
        // Refused when it opens the log (under 1 MiB left) or when its commit meets the end of the space.
        #expect(refused.stderr.contains("is full") && refused.stderr.contains("free space and retry"), "\(refused.stderr)")
        #expect(!refused.stderr.contains("Program crashed"), "\(refused.stderr)")

        // Everything acknowledged is there and proves; a rebuild is refused just as clearly.
        let verified = try await clew(["verify"])
        #expect(verified.status == 0 && verified.stdout.contains("ok: \(acknowledged) events"), "\(verified.stdout)\(verified.stderr)")
        let rebuild = try await clew(["rebuild"])
        #expect(rebuild.status != 0 && rebuild.stderr.contains("is full"), "\(rebuild.stderr)")
        #expect(!rebuild.stderr.contains("Program crashed"), "\(rebuild.stderr)")

        // Space returns: appends and rebuilds go on from where they were.
        let grown = try await Program.run("/bin/mount", ["-o", "remount,size=64m", mount.path], in: cli.directory)
        try #require(grown.status == 0, "\(grown.output)")
        #expect(try await clew(["append"], input: batch(99)).status == 0)
        let after = try await clew(["verify"])
        #expect(after.status == 0 && after.stdout.contains("ok: \(acknowledged + 1000) events"), "\(after.stdout)\(after.stderr)")
        let rebuilt = try await clew(["rebuild"])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        let views = try await clew(["views", "verify"])
        #expect(views.status == 0, "\(views.stdout)\(views.stderr)")
    }
}
