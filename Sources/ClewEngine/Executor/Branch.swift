import ClewCore
import ClewLedger
package import ClewModel
import Foundation
import Synchronization

/// What a replay or a branch run takes from the run it re-executes instead of from the world: the chunks
/// each task was admitted, the recorded results of `now` and side effects, the outputs of triggered runs,
/// and the original run id (seeds are derived from it).
package struct BranchFeed: Sendable {
    package var originalRunID: String
    /// Chunks each task read in the original, by task id.
    package var chunks: [String: [ConsumedChunk]]
    /// Recorded `now` and side-effect steps, by task id, in the order they happened.
    package var steps: [String: [FedStep]]
    /// What trigger tasks returned in the original (the child run and its status), by task id.
    package var triggered: [String: RecordedValue]
    /// Tasks the five questions blocked in the original (every attempt), with the reason: blocked again,
    /// since the branch reads the original's data as it stood then.
    package var blocked: [String: String] = [:]

    package init(
        originalRunID: String, chunks: [String: [ConsumedChunk]] = [:], steps: [String: [FedStep]] = [:],
        triggered: [String: RecordedValue] = [:]
    ) {
        self.originalRunID = originalRunID
        self.chunks = chunks
        self.steps = steps
        self.triggered = triggered
    }
}

/// A recorded step whose result is fed back: its kind (`now`, `side_effect`), name and value.
package struct FedStep: Sendable, Hashable {
    package var kind: String
    package var name: String
    package var value: RecordedValue

    package init(kind: String, name: String, value: RecordedValue) {
        self.kind = kind
        self.name = name
        self.value = value
    }
}

/// Hands out recorded step results by kind and name, each once, in recorded order: the n-th `now` gets
/// the n-th recorded time, the n-th side effect named X the n-th recorded result of X. Matching by name
/// rather than step number lets changed code (a counterfactual) still get the original's outside world.
package final class StepFeed: Sendable {
    let pending: Mutex<[FedStep]>

    package init(_ steps: [FedStep]) { pending = Mutex(steps) }

    /// The next unused recorded result of a step of this kind and name, or nil.
    package func take(kind: String, name: String) -> RecordedValue? {
        pending.withLock { steps in
            guard let i = steps.firstIndex(where: { $0.kind == kind && $0.name == name }) else { return nil }
            return steps.remove(at: i).value
        }
    }
}

extension ResubmitPlan {
    /// A plan for a branch run: `outputs` are tasks whose output is given (not run).
    init(params: [String: String], partition: Partition?, outputs: [String: RecordedValue], chosen: [String: [String]]) {
        self.params = params
        self.partition = partition
        self.previousStatus = "branch"
        self.previousVersion = nil
        self.outputs = outputs
        self.succeeded = Set(outputs.keys)
        self.chosen = chosen
    }
}

extension Engine {
    /// Runs `dag` as a branch of a recorded run: a new run (`runID`) that reads what the original read
    /// (``BranchFeed``), with `given` outputs set instead of running those tasks. Its `run.queued` names
    /// the original (`branch_of`) and the overrides; the original is never touched, no chunk is published.
    /// - Returns: the branch run's outcome, once all its events are durable.
    package func runBranch(
        _ dag: DAG, of original: String, runID: String, params: [String: String], partition: Partition?, feed: BranchFeed,
        given: [String: RecordedValue], chosen: [String: [String]], overrides: [String: String]
    ) async throws -> RunOutcome {
        let version = try await register(dag)
        let stream = StreamID.run(dag: dag.name, run: runID)
        guard try ledger.seqs(inStream: stream, limit: 1).isEmpty else {
            throw EngineError(.conflict, "run \(runID) of DAG \(dag.name) already exists; pick another branch name")
        }
        var queued = RunQueued(
            dag: dag.name, run: runID, dagVersion: version, params: Redaction.redact(params: params), trigger: "branch",
            branchOf: original, overrides: .object(Redaction.redact(params: overrides).mapValues(JSONTree.string)))
        queued.set(partition)
        recorder.emit(EventType.runQueued, stream: stream, queued)
        let execution = RunExecution(engine: self, dag: dag, runID: runID, params: params, partition: partition, branch: feed)
        let plan = ResubmitPlan(params: params, partition: partition, outputs: given, chosen: chosen)
        return try await execution.execute(resume: given.isEmpty ? nil : plan)
    }
}

/// Where a run ran, recorded in `run.started` so a replay that diverges can say what differed: the
/// executable's build (its GNU build id, else a SHA-256 of the file), the operating system and the machine.
public struct RunEnvironment: Sendable, Hashable {
    public var buildID: String
    public var os: String
    public var arch: String

    public init(buildID: String, os: String, arch: String) {
        self.buildID = buildID
        self.os = os
        self.arch = arch
    }

    /// This process's environment (computed once).
    public static let current: RunEnvironment = {
        var u = utsname()
        uname(&u)
        func text<T>(_ field: T) -> String {
            withUnsafeBytes(of: field) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return RunEnvironment(buildID: executableBuildID(), os: "\(text(u.sysname)) \(text(u.release))", arch: text(u.machine))
    }()

    /// Writes this environment into a `run.started` payload.
    package func describe(_ started: inout RunStarted) {
        started.buildID = buildID
        started.os = os
        started.arch = arch
    }

    /// The GNU build id of the running executable (read from its `.note.gnu.build-id` in the file), or
    /// `sha256:<digest of the file>` when it has none.
    static func executableBuildID() -> String {
        let path = "/proc/self/exe"
        guard let handle = FileHandle(forReadingAtPath: path) else { return "unknown" }
        defer { try? handle.close() }
        if let id = try? ELFNotes.buildID(handle) { return id }
        return FileDigest.sha256(URL(fileURLWithPath: path)).map { "sha256:" + $0 } ?? "unknown"
    }
}

/// Just enough of ELF-64 (little endian) to find the GNU build id note.
enum ELFNotes {
    static func buildID(_ handle: FileHandle) throws -> String? {
        try handle.seek(toOffset: 0)
        let header = try handle.read(upToCount: 64) ?? Data()
        guard header.count == 64, header.prefix(4) == Data([0x7F, 0x45, 0x4C, 0x46]), header[4] == 2, header[5] == 1 else { return nil }
        func u16(_ d: Data, _ o: Int) -> Int { Int(d[d.startIndex + o]) | Int(d[d.startIndex + o + 1]) << 8 }
        func u32(_ d: Data, _ o: Int) -> Int { u16(d, o) | u16(d, o + 2) << 16 }
        func u64(_ d: Data, _ o: Int) -> Int { u32(d, o) | u32(d, o + 4) << 32 }
        let phoff = u64(header, 32)
        let phentsize = u16(header, 54)
        let phnum = u16(header, 56)
        guard phentsize >= 56, phnum < 256 else { return nil }
        try handle.seek(toOffset: UInt64(phoff))
        let table = try handle.read(upToCount: phentsize * phnum) ?? Data()
        for i in 0..<phnum where table.count >= (i + 1) * phentsize {
            let entry = table.subdata(in: (i * phentsize)..<((i + 1) * phentsize))
            guard u32(entry, 0) == 4 else { continue }  // PT_NOTE
            let offset = u64(entry, 8)
            let size = min(u64(entry, 32), 1 << 16)
            try handle.seek(toOffset: UInt64(offset))
            let notes = try handle.read(upToCount: size) ?? Data()
            var o = 0
            while o + 12 <= notes.count {
                let namesz = u32(notes, o)
                let descsz = u32(notes, o + 4)
                let type = u32(notes, o + 8)
                let nameStart = o + 12
                let descStart = nameStart + (namesz + 3) / 4 * 4
                let next = descStart + (descsz + 3) / 4 * 4
                guard next <= notes.count else { break }
                if type == 3, namesz == 4, notes.subdata(in: nameStart..<(nameStart + 3)) == Data("GNU".utf8) {
                    return notes.subdata(in: descStart..<(descStart + descsz)).hex
                }
                o = next
            }
        }
        return nil
    }
}
