import ClewTestSupport
import Foundation
import Synchronization
import Testing

/// Tests write scripts (and a copy of `clew`) that they then execute, while other tests start processes.
/// A file this process wrote can fail to execute with ETXTBSY (CI failed once on it); a file put there by
/// `installExecutable` cannot.
@Suite("Executables written by tests")
struct ExecutableRaceTests {
    @Test("a script put in place by installExecutable runs while another thread forks; one written in-process can be 'busy'")
    func installedScriptsRunWhileOthersFork() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = "#!/bin/sh\nexit 0\n"
        let stop = Atomic<Bool>(false)
        let forker = Thread { while !stop.load(ordering: .relaxed) { _ = spawnAndWait("/bin/true") } }
        forker.start()
        defer { stop.store(true, ordering: .relaxed) }

        // The hazard is real here: written and executed by this process, a script meets ETXTBSY
        // (114 of 300 attempts when measured). Stop at the first.
        var attempts = 0
        var busy = false
        while !busy && attempts < 3_000 {
            let url = dir.appendingPathComponent("direct-\(attempts)")
            try Data(script.utf8).write(to: url)
            chmod(url.path, 0o755)
            busy = spawnAndWait(url.path) == -ETXTBSY
            attempts += 1
        }
        #expect(busy, "no ETXTBSY in \(attempts) in-process writes: this kernel lets a file open for writing be executed")

        // installExecutable: every one runs, and exits 0.
        for i in 0..<300 {
            let url = dir.appendingPathComponent("installed-\(i)")
            try installExecutable(script, at: url)
            let status = spawnAndWait(url.path)
            #expect(status == 0, "installed script \(i): \(status < 0 ? String(cString: strerror(-status)) : "wait status \(status)")")
            if status != 0 { break }
        }
    }
}
