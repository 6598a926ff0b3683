import ClewFuzzTargets
import Foundation
import Testing

/// Every input of `Fixtures/fuzz/TARGET/` through its fuzz target (tools/fuzz.sh fuzzes the same
/// functions): seeds named `ok-…` must be accepted and `bad-…` refused with an error; inputs the fuzzer
/// once crashed on (`crash-…`) must simply end, accepted or not. A trap here takes the test process
/// down, which fails the suite.
@Suite("Fuzz corpus regressions")
struct FuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fuzz")

    @Test("each target's seeds and past crashes", arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        let dir = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(files.contains { $0.hasPrefix("ok-") } && files.contains { $0.hasPrefix("bad-") }, "\(dir.path) needs ok- and bad- seeds")
        for name in files {
            let accepted = target.run(try Data(contentsOf: dir.appendingPathComponent(name)))
            if name.hasPrefix("ok-") { #expect(accepted, "\(target.rawValue)/\(name) was refused") }
            if name.hasPrefix("bad-") { #expect(!accepted, "\(target.rawValue)/\(name) was accepted") }
        }
    }
}
