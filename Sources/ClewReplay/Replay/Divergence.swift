import ClewModel
import ClewProjections
import Foundation

/// What a replay concluded.
public struct ReplayReport: Sendable, Codable {
    /// `identical` or `diverged`.
    public var verdict: String
    /// `DAG/RUN`.
    public var run: String
    /// Recorded events the replay derived again and compared (task starts, inputs, steps, expectations,
    /// outputs, outcomes), up to and including the first difference.
    public var stepsCompared: Int
    public var attemptsReplayed: Int
    /// Tasks whose outputs came from the record (`--from`).
    public var fromRecord: [String]
    /// The first difference, when diverged.
    public var divergence: Divergence?
    /// Things worth knowing that are not differences (a DAG version mismatch, an unknown build).
    public var notices: [String]
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case verdict, run, divergence, notices, seconds
        case stepsCompared = "steps_compared"
        case attemptsReplayed = "attempts_replayed"
        case fromRecord = "from_record"
    }

    public var isIdentical: Bool { verdict == "identical" }
}

/// The first event a replay would emit differently from the record.
public struct Divergence: Sendable, Codable {
    public var task: String
    public var attempt: Int
    /// The attempt's step number, for a step (variable, time, side effect).
    public var step: Int?
    /// The event that differs: `value.consumed`, `variable.recorded`, `expectation.evaluated`,
    /// `value.produced`, `task.succeeded`/`task.failed`, `command.files`.
    public var event: String
    /// The variable, input, expectation or field that differs.
    public var variable: String
    /// Recorded and replayed values (JSON text; null when absent).
    public var expected: String?
    public var actual: String?
    /// Where inside structured values they differ (first 20 paths).
    public var diff: [ValueDifference]
    public var cause: Cause
    /// Seq of the recorded event.
    public var seq: UInt64?

    /// Why the replay differs.
    public struct Cause: Sendable, Codable {
        /// `dag_changed`, `input_changed`, `nondeterminism`, `code_changed`, `environment`.
        public var kind: String
        public var explanation: String
        public var evidence: [String: String]
    }
}

/// One path where two JSON values differ.
public struct ValueDifference: Sendable, Codable, Hashable {
    /// `$`, `$.total`, `$[3]`, `$.rows[2].amount`.
    public var path: String
    public var expected: String?
    public var actual: String?
}

/// Structural differences of two JSON texts.
public enum ValueDiff {
    /// Paths where `a` and `b` differ (at most `limit`); a value that is not JSON compares as text.
    public static func differences(_ a: String?, _ b: String?, limit: Int = 20) -> [ValueDifference] {
        let ta = a.flatMap(tree)
        let tb = b.flatMap(tree)
        var out: [ValueDifference] = []
        walk(ta, tb, path: "$", into: &out, limit: limit)
        return out
    }

    static func tree(_ text: String) -> JSONTree? {
        try? JSONDecoder().decode(JSONTree.self, from: Data(text.utf8))
    }

    static func walk(_ a: JSONTree?, _ b: JSONTree?, path: String, into out: inout [ValueDifference], limit: Int) {
        guard out.count < limit, a != b else { return }
        switch (a, b) {
        case (.object(let x)?, .object(let y)?):
            for k in Set(x.keys).union(y.keys).sorted() {
                walk(x[k], y[k], path: path + (k.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" } ? ".\(k)" : "[\(JSON.quote(k))]"), into: &out, limit: limit)
            }
        case (.array(let x)?, .array(let y)?):
            for i in 0..<max(x.count, y.count) {
                walk(i < x.count ? x[i] : nil, i < y.count ? y[i] : nil, path: "\(path)[\(i)]", into: &out, limit: limit)
            }
        default:
            out.append(ValueDifference(path: path, expected: a?.text, actual: b?.text))
        }
    }
}
