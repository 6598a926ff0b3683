import ClewModel

// The stored form of every record the views keep (views format 6): see ``BinaryRecord``. Times after the
// first of a record are stored as differences from it (a few bytes instead of eight).

extension ChunkRecord: BinaryRecord {
    static let optionals = 12

    /// The key is written after the ordinal it is usually spelled from (``RecordWriter/chunkKey(_:ordinal:)``),
    /// and the seq that last made the chunk ready as its distance back from `since` (views format 9).
    func write(to w: inout RecordWriter) {
        w.varint(ordinal)
        w.chunkKey(key, ordinal: ordinal)
        w.word(status)
        w.varint(since)
        w.int(sinceMicros)
        w.strings(leases)
        w.optional(dag) { $0.string($1) }
        w.optional(run) { $0.string($1) }
        w.optional(task) { $0.string($1) }
        w.optional(attempt) { $0.int($1) }
        w.optional(partition) { [key] in $0.string($1, around: key) }
        w.optional(location) { [key] in $0.string($1, around: key) }
        w.optional(digest) { $0.digest($1) }
        w.optional(bytes) { $0.int($1) }
        w.optional(validated) { $0.bool($1) }
        w.optional(producedSeq) { [since] in $0.int(Int64(bitPattern: since &- $1)) }
        w.optional(staleBecause) { $0.string($1) }
        w.optional(anomalies) { $0.strings($1) }
    }

    init(from r: inout RecordReader) throws(RecordReader.Malformed) {
        let ordinal = try r.varint()
        let key = try r.chunkKey(ordinal: ordinal)
        self.init(key: key, ordinal: ordinal, status: try r.word(), since: try r.varint(), sinceMicros: try r.int64())
        leases = try r.strings()
        dag = try r.optionalString()
        run = try r.optionalString()
        task = try r.optionalString()
        attempt = try r.optionalInt()
        partition = try r.optional { r throws(RecordReader.Malformed) in try r.string(around: key) }
        location = try r.optional { r throws(RecordReader.Malformed) in try r.string(around: key) }
        digest = try r.optionalDigest()
        bytes = try r.optionalInt64()
        validated = try r.optionalBool()
        let since = self.since
        producedSeq = try r.optionalInt64().map { since &- UInt64(bitPattern: $0) }
        staleBecause = try r.optionalString()
        anomalies = try r.optionalStrings()
    }
}

/// How a chunk record stores its key (views format 9). Most keys are the one spelling of their ordinal
/// in the dataset's partitioning, which the record's key (and the record) already holds: a sequence
/// number's decimal digits, or a time window's start, `2026-01-01T01:00:00Z`. Such a key is stored as a
/// byte saying so, and for a window its length in seconds: 1 to 3 bytes instead of ~21. Any other key
/// (free-form, a second spelling of a taken window, or a time the partitioning does not give) is
/// stored as text. The record needs no dataset to decode: the window's length is in it.
enum ChunkKeyForm {
    static let text: UInt8 = 0
    static let decimal: UInt8 = 1
    static let window: UInt8 = 2
    /// The last second a key can spell (9999-12-31T23:59:59Z), in microseconds.
    static let lastMicros: Int64 = 253_402_300_799_000_000

    /// The window length (seconds) whose `ordinal`-th window starts at the time `key` spells exactly, if any.
    static func windowSeconds(_ key: String, ordinal: UInt64) -> UInt64? {
        let u = key.utf8
        guard u.count == 20, u.last == UInt8(ascii: "Z"), ordinal > 0, ordinal <= UInt64(lastMicros / 1_000_000),
            let micros = PartitionKey.parse(key), micros > 0
        else { return nil }
        let unit = Int64(ordinal) * 1_000_000
        guard micros % unit == 0 else { return nil }
        let seconds = micros / unit
        return PartitionKey.string(micros: micros) == key ? UInt64(seconds) : nil
    }

    /// Whether `key` is `ordinal`'s decimal digits (no sign, no leading zero).
    static func isDecimal(_ key: String, ordinal: UInt64) -> Bool {
        let u = key.utf8
        guard let first = u.first, u.count <= 20, first != UInt8(ascii: "0") || u.count == 1 else { return false }
        return u.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } && UInt64(key) == ordinal
    }
}

extension RecordWriter {
    /// A chunk's key, given its ordinal (written before it): see ``ChunkKeyForm``.
    mutating func chunkKey(_ key: String, ordinal: UInt64) {
        if ChunkKeyForm.isDecimal(key, ordinal: ordinal) {
            byte(ChunkKeyForm.decimal)
        } else if let seconds = ChunkKeyForm.windowSeconds(key, ordinal: ordinal) {
            byte(ChunkKeyForm.window)
            varint(seconds)
        } else {
            byte(ChunkKeyForm.text)
            string(key)
        }
    }
}

extension RecordReader {
    /// A chunk's key written by ``RecordWriter/chunkKey(_:ordinal:)``.
    mutating func chunkKey(ordinal: UInt64) throws(Malformed) -> String {
        switch try byte() {
        case ChunkKeyForm.text:
            return try string()
        case ChunkKeyForm.decimal:
            return String(ordinal)
        case ChunkKeyForm.window:
            let seconds = try varint()
            let (start, overflow) = ordinal.multipliedReportingOverflow(by: seconds)
            guard !overflow, start > 0, start <= UInt64(ChunkKeyForm.lastMicros / 1_000_000) else {
                throw Malformed(reason: "a chunk key of window \(ordinal) x \(seconds) s, outside years 1-9999", offset: 0)
            }
            return PartitionKey.string(micros: Int64(start) * 1_000_000)
        case let form:
            throw Malformed(reason: "a chunk key of unknown form \(form)", offset: 0)
        }
    }
}

extension DatasetSummary: BinaryRecord {
    static let optionals = 3

    func write(to w: inout RecordWriter) {
        w.string(name)
        w.string(partitioning)
        w.map(counts, key: { $0.word($1) }, value: { $0.varint($1) })
        w.varint(chunks)
        w.varint(stale)
        w.varint(ordered)
        w.varint(nextKeyOrdinal)
        w.varint(lastSeq)
        w.optional(firstOrdinal) { $0.varint($1) }
        w.optional(lastOrdinal) { $0.varint($1) }
        w.optional(fields) { w, fields in
            w.varint(UInt64(fields.count))
            for f in fields {
                // Which of type and description follow: bit 0, bit 1.
                w.varint((f.type == nil ? 0 : 1) | (f.description == nil ? 0 : 2))
                w.string(f.name)
                if let t = f.type { w.string(t) }
                if let d = f.description { w.string(d) }
            }
        }
    }

    init(from r: inout RecordReader) throws(RecordReader.Malformed) {
        self.init(name: try r.string(), partitioning: try r.string())
        counts = try r.map(key: { r throws(RecordReader.Malformed) in try r.word() }, value: { r throws(RecordReader.Malformed) in try r.varint() })
        chunks = try r.varint()
        stale = try r.varint()
        ordered = try r.varint()
        nextKeyOrdinal = try r.varint()
        lastSeq = try r.varint()
        firstOrdinal = try r.optionalVarint()
        lastOrdinal = try r.optionalVarint()
        fields = try r.optional { r throws(RecordReader.Malformed) in
            let n = try r.varint()
            var fields: [DatasetDescription.Field] = []
            for _ in 0..<n {
                let present = try r.varint()
                guard present < 4 else { throw RecordReader.Malformed(reason: "a column of unknown form", offset: 0) }
                let name = try r.string()
                let type = present & 1 == 0 ? nil : try r.string()
                let description = present & 2 == 0 ? nil : try r.string()
                fields.append(.init(name: name, type: type, description: description))
            }
            return fields
        }
    }
}

extension RunRecord: BinaryRecord {
    static let optionals = 14

    func write(to w: inout RecordWriter) {
        w.string(dag)
        w.string(run)
        w.word(state)
        w.int(queuedMicros)
        w.int(attempts)
        w.int(resubmissions)
        w.varint(firstSeq)
        w.int(Int64(bitPattern: lastSeq &- firstSeq))
        w.optional(version) { $0.string($1) }
        w.optional(trigger) { $0.word($1) }
        w.optional(params) { $0.map($1, key: { $0.string($1) }, value: { $0.string($1) }) }
        w.optional(partition) { $0.string($1) }
        w.optional(intervalStart) { $0.string($1) }
        w.optional(intervalEnd) { $0.string($1) }
        w.optional(startedMicros) { [queuedMicros] in $0.int($1 &- queuedMicros) }
        w.optional(endedMicros) { [queuedMicros] in $0.int($1 &- queuedMicros) }
        w.optional(taskStates) { $0.map($1, key: { $0.word($1) }, value: { $0.int($1) }) }
        w.optional(failedTasks) { $0.strings($1) }
        w.optional(pid) { $0.int($1) }
        w.optional(host) { $0.string($1) }
        w.optional(externalID) { $0.string($1) }
        w.optional(externalIDs) { $0.strings($1) }
    }

    init(from r: inout RecordReader) throws(RecordReader.Malformed) {
        let dag = try r.string(), run = try r.string(), state = try r.word(), queued = try r.int64()
        let attempts = try r.int(), resubmissions = try r.int(), firstSeq = try r.varint()
        let lastSeq = firstSeq &+ UInt64(bitPattern: try r.int64())
        self.init(dag: dag, run: run, state: state, queuedMicros: queued, firstSeq: firstSeq, lastSeq: lastSeq)
        self.attempts = attempts
        self.resubmissions = resubmissions
        version = try r.optionalString()
        trigger = try r.optionalWord()
        params = try r.optional { r throws(RecordReader.Malformed) in
            try r.map(key: { r throws(RecordReader.Malformed) in try r.string() }, value: { r throws(RecordReader.Malformed) in try r.string() })
        }
        partition = try r.optionalString()
        intervalStart = try r.optionalString()
        intervalEnd = try r.optionalString()
        startedMicros = try r.optionalInt64().map { queued &+ $0 }
        endedMicros = try r.optionalInt64().map { queued &+ $0 }
        taskStates = try r.optional { r throws(RecordReader.Malformed) in
            try r.map(key: { r throws(RecordReader.Malformed) in try r.word() }, value: { r throws(RecordReader.Malformed) in try r.int() })
        }
        failedTasks = try r.optionalStrings()
        pid = try r.optionalInt()
        host = try r.optionalString()
        externalID = try r.optionalString()
        externalIDs = try r.optionalStrings()
    }
}

extension TaskRecord: BinaryRecord {
    static let optionals = 12

    func write(to w: inout RecordWriter) {
        w.string(task)
        w.word(state)
        w.int(attempts)
        w.varint(firstSeq)
        w.int(Int64(bitPattern: lastSeq &- firstSeq))
        w.optional(order) { $0.int($1) }
        w.optional(firstStartMicros) { $0.int($1) }
        let base = firstStartMicros ?? 0
        w.optional(lastStartMicros) { $0.int($1 &- base) }
        w.optional(endedMicros) { $0.int($1 &- base) }
        w.optional(durationMillis) { $0.int($1) }
        w.optional(error) { $0.string($1) }
        w.optional(reason) { $0.string($1) }
        w.optional(outputDigest) { $0.digest($1) }
        w.optional(branch) { $0.string($1) }
        w.optional(exitCode) { $0.int($1) }
        w.optional(timedOut) { $0.bool($1) }
        w.optional(sql) { $0.string($1) }
    }

    init(from r: inout RecordReader) throws(RecordReader.Malformed) {
        let task = try r.string(), state = try r.word(), attempts = try r.int(), firstSeq = try r.varint()
        let lastSeq = firstSeq &+ UInt64(bitPattern: try r.int64())
        self.init(task: task, state: state, firstSeq: firstSeq, lastSeq: lastSeq)
        self.attempts = attempts
        order = try r.optionalInt()
        firstStartMicros = try r.optionalInt64()
        let base = firstStartMicros ?? 0
        lastStartMicros = try r.optionalInt64().map { base &+ $0 }
        endedMicros = try r.optionalInt64().map { base &+ $0 }
        durationMillis = try r.optionalInt()
        error = try r.optionalString()
        reason = try r.optionalString()
        outputDigest = try r.optionalDigest()
        branch = try r.optionalString()
        exitCode = try r.optionalInt()
        timedOut = try r.optionalBool()
        sql = try r.optionalString()
    }
}
