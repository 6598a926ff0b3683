/// Which source rows made each row of a collection: row-level lineage for the collection helpers.
///
/// Kept as compactly as the helpers allow, so tracking costs little next to the work itself: a `map`
/// changes nothing (row i still comes from the same source row), a `filter` keeps one index per kept row,
/// a `group` keeps its members as offsets into one flat index array (compressed sparse rows).
public enum RowOrigin: Sendable, Hashable {
    /// Row i came from source row i.
    case identity(count: Int)
    /// Row i came from source row `index[i]`.
    case select([Int32])
    /// Row i came from source rows `index[offsets[i]..<offsets[i + 1]]`.
    case groups(offsets: [Int32], index: [Int32])
    /// Not tracked (a helper run with lineage off, the baseline of the overhead benchmark).
    case untracked

    /// The source rows of row `row`.
    public func sources(of row: Int) -> [Int] {
        switch self {
        case .identity(let count): return row < count ? [row] : []
        case .select(let index): return row < index.count ? [Int(index[row])] : []
        case .groups(let offsets, let index):
            guard row + 1 < offsets.count else { return [] }
            return index[Int(offsets[row])..<Int(offsets[row + 1])].map(Int.init)
        case .untracked: return []
        }
    }
}

/// Where rows were read from: a parent task's output, or an admitted chunk's file.
public struct RowSource: Sendable, Hashable, Codable {
    /// The parent task whose output the rows are.
    public var task: String?
    /// The dataset and chunk key whose file the rows are.
    public var dataset: String?
    public var chunk: String?
    /// SHA-256 of the output's canonical JSON, or of the chunk's file.
    public var digest: String

    public init(task: String, digest: String) {
        self.task = task
        self.digest = digest
    }

    public init(dataset: String, chunk: String, digest: String) {
        self.dataset = dataset
        self.chunk = chunk
        self.digest = digest
    }
}

/// The recorded form of a collection's row lineage (the value of a `rows` step).
public struct RowLineageRecord: Sendable, Hashable, Codable {
    /// The parent task and the digest of the output the rows were read from.
    public var source: RowSource?
    /// Rows in the output.
    public var rows: Int
    /// `identity`, `select` or `groups`.
    public var kind: String
    /// Source row per output row (`select`), or the flat member list (`groups`).
    public var index: [Int32]?
    /// Group boundaries into `index` (`groups`).
    public var offsets: [Int32]?

    public init(source: RowSource?, rows: Int, origin: RowOrigin) {
        self.source = source
        self.rows = rows
        switch origin {
        case .identity, .untracked: kind = "identity"
        case .select(let i):
            kind = "select"
            index = i
        case .groups(let o, let i):
            kind = "groups"
            offsets = o
            index = i
        }
    }

    /// The origin it describes.
    public var origin: RowOrigin {
        switch kind {
        case "select": return .select(index ?? [])
        case "groups": return .groups(offsets: offsets ?? [0], index: index ?? [])
        default: return .identity(count: rows)
        }
    }
}

