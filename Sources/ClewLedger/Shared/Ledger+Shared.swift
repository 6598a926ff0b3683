import Crypto
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
public import Foundation

extension Ledger {
    /// Opens the local replica of a shared log in `directory` (created when missing) and brings it up to
    /// date: every event the shared log has is copied, with its seq, and the replica's Merkle root is
    /// checked against the root each batch recorded.
    ///
    /// The ledger it returns appends to the shared log (and returns once its replica holds the events);
    /// everything else reads the replica. Several processes on one host may share a replica directory.
    /// - Throws: ``LedgerError`` `.invalidInput` when `directory` holds another ledger or the replica of
    ///   another shared log; `.verificationFailed` when a copied batch does not give the root the shared
    ///   log recorded for it.
    public static func replica(of log: any SharedLog, at directory: URL, options: Options = Options()) async throws -> Ledger {
        let fm = FileManager.default
        let marker = directory.appendingPathComponent(markerName)
        if let data = fm.contents(atPath: marker.path) {
            let info: LedgerMarker
            do { info = try JSONDecoder().decode(LedgerMarker.self, from: data) } catch {
                throw LedgerError(.notALedger, "\(marker.path) is not a Clew ledger marker: \(error)")
            }
            guard info.upstream != nil else {
                throw LedgerError(.invalidInput, "\(directory.path) holds a ledger of its own, not a replica; choose another replica directory (--cache)")
            }
            guard info.id == log.id else {
                throw LedgerError(
                    .invalidInput,
                    "\(directory.path) holds the replica of shared log \(info.id) (\(info.upstream ?? "?")), not of \(log.id) (\(log.location)); choose another replica directory (--cache)")
            }
            guard info.version == LogStore.formatVersion else {
                throw LedgerError(
                    .unsupportedFormat, "\(directory.path) is a replica of format \(info.version); remove it and it is copied again in format \(LogStore.formatVersion)")
            }
        } else {
            do {
                try fm.createDirectory(at: directory.appendingPathComponent("log"), withIntermediateDirectories: true)
            } catch {
                throw LedgerError(.invalidInput, "cannot create the replica directory \(directory.path): \(error)")
            }
            let info = LedgerMarker(
                format: LedgerMarker.formatName, version: LogStore.formatVersion, id: log.id,
                created: ISO8601DateFormatter().string(from: Date()), upstream: log.location)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(info).write(to: marker, options: .atomic)
        }
        let ledger = try Ledger(directory: directory, id: log.id, options: options, replicaOf: log.location, upstream: log)
        do {
            try await ledger.pull()
            try await ledger.pullCheckpoints()
        } catch {
            ledger.close()
            throw error
        }
        return ledger
    }

    /// The shared log this ledger appends to and replicates, if any.
    public var sharedLog: (any SharedLog)? { upstream }

    /// Copies the shared log's events beyond the replica into it, checking the replica's root at the end
    /// of every batch against the root the shared log recorded there. Returns the replica's last seq.
    /// - Parameter target: stop once the replica reaches this seq (nil: whatever the shared log has now).
    @discardableResult
    public func pull(through target: UInt64? = nil) async throws -> UInt64 {
        guard let log = upstream else { return try lastSeq }
        var local = try lastSeq
        while target.map({ local < $0 }) ?? true {
            let records = try await log.records(after: local, limit: Self.pullBatch)
            guard let last = records.last?.seq else {
                if let target {
                    throw LedgerError(.corrupted, "\(log.location) returned seqs up to \(local), but appended up to \(target)")
                }
                break
            }
            for (i, record) in records.enumerated() where record.seq != local + 1 + UInt64(i) {
                throw LedgerError(.corrupted, "\(log.location) returned event \(record.seq) where \(local + 1 + UInt64(i)) was expected")
            }
            let drafts = try records.map(Self.draft)
            // An erasure copied here erases what it names in this replica first: the record never lands
            // before its erasure. (What it names within `records` was read from the server already erased.)
            let erasing = records.filter { $0.type == Self.erasureRecordType }
            if let first = erasing.first?.seq, let last = erasing.last?.seq {
                let named = try await log.erasures(recordedIn: first...last).values.joined().filter { $0 <= local }
                if !named.isEmpty { _ = try eraseLocally(Set(named)) }
            }

            let prepared = try store.prepare(drafts, now: 0, dictionary: store.currentDictionary.withLock { $0 })
            do {
                _ = try await writer.submit(prepared, .init(logLastSeq: local, replicating: true))
            } catch LedgerError.Code.conflict {
                local = try lastSeq  // another process on this host copied them first (and checked them)
                continue
            }
            for (size, root) in try await log.batchRoots(local + 1...last) {
                let mine = try self.root(atSize: size).hash
                guard mine == root else {
                    throw LedgerError(
                        .verificationFailed,
                        "the replica's Merkle root at \(size) events (\(mine.hex)) is not the root \(log.location) recorded for that batch (\(root.hex)): the shared log's rows were changed after they were appended, or this replica is not a copy of that log")
                }
            }
            local = last
        }
        return local
    }

    static let pullBatch = 4_096

    /// Keeps the replica copying the shared log (and its checkpoints, each timed round) until cancelled: on every append the server announces,
    /// and every `interval` in case an announcement was lost with a connection. Returns when cancelled,
    /// when `failed` (called with a copy's error) returns false, or when `copied` (called after each copy
    /// that added events) returns false. Does nothing for an LMDB ledger.
    public func replicate(
        every interval: Duration = .seconds(1), failed: @escaping @Sendable (any Error) -> Bool = { _ in true },
        copied: @escaping @Sendable () async -> Bool = { true }
    ) async {
        guard let log = upstream else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in log.appends() {
                    if Task.isCancelled { break }
                    if !(await self.pullOnce(failed, copied)) { break }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    if !(await self.pullOnce(failed, copied)) { break }
                    // Checkpoints are rare and announce nothing: each timed round copies new ones.
                    do { try await self.pullCheckpoints() } catch {
                        if Task.isCancelled || !failed(error) { break }
                    }
                }

            }
            await group.next()
            group.cancelAll()
        }
    }

    private func pullOnce(_ failed: @Sendable (any Error) -> Bool, _ copied: @Sendable () async -> Bool) async -> Bool {
        do {
            let before = try lastSeq
            if try await pull() > before { return await copied() }
            return true
        } catch {
            return Task.isCancelled ? false : failed(error)
        }
    }

    /// The event a shared log's record describes, its payload checked against the SHA-256 the
    /// envelope names.
    static func draft(_ record: SharedRecord) throws -> NewEvent {
        var cache = StringCache()
        let d = try record.envelope.withUnsafeBytes { try EnvelopeCodec.decode($0, cache: &cache) }
        guard d.seq == nil, d.payload == nil, let ref = d.payloadRef else {
            throw LedgerError(.corrupted, "the shared log's event \(record.seq) has an envelope of another format")
        }
        guard record.payloadErased || Array(SHA256.hash(data: record.payload)) == ref else {
            throw LedgerError(.corrupted, "the shared log's event \(record.seq) has a payload that does not match the SHA-256 its envelope names")
        }
        var event = NewEvent(
            type: d.type, stream: d.stream, actor: d.actor, time: nil, timestampMicros: d.timestampMicros,
            schemaVersion: d.schemaVersion, payload: record.payloadErased ? Data() : Data(record.payload), unknownFields: d.unknownFields)
        if record.payloadErased { event.erasedPayloadRef = ref }
        return event
    }

    /// The shared log's records for `events`: validated, stamped, their envelopes encoded.
    package static func sharedRecords(_ events: [NewEvent], now: Int64) throws -> [SharedRecord] {
        var out: [SharedRecord] = []
        out.reserveCapacity(events.count)
        for (i, event) in events.enumerated() {
            try event.validate(index: i, of: events.count)
            var envelope: [UInt8] = []
            LogStore.encodeEnvelope(event, digest: SHA256.hash(data: event.payload), now: now, into: &envelope)
            out.append(
                SharedRecord(
                    seq: 0, envelope: envelope, payload: Array(event.payload), stream: event.stream, type: event.type,
                    timestampMicros: event.timestampMicros ?? now))
        }
        return out
    }

    /// Appends through the shared log and waits until the replica holds the events.
    func appendShared(_ log: any SharedLog, _ events: [NewEvent], expecting expectations: [StreamExpectation]) async throws -> Range<UInt64> {
        if refusesAppends { throw LedgerError(.readOnly, "the ledger was opened read-only") }
        let now = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
        let range = try await log.append(try Self.sharedRecords(events, now: now), batch: UUID(), expecting: expectations)
        try await pull(through: range.upperBound - 1)
        return range
    }
}

/// What ``Ledger/verifyShared(progress:)`` found in the shared log itself.
public struct SharedLogVerification: Sendable, Codable {
    public var location: String
    /// Events re-read from the server.
    public var events: UInt64
    /// The root recomputed from every row, and the one the server's head records.
    public var rootHash: String
    public var headRootHash: String
    /// Batch roots compared with the tree recomputed at their size.
    public var batchesChecked: Int
    /// Rows whose payload an erasure removed (each checked to be named by an erasure's record).
    public var erasedPayloads: Int
    /// Checkpoints stored in the shared log, checked (origin, signature, root at their size).
    public var checkpointsChecked: Int
    /// Whether the replica's root at the same size agrees.
    public var replicaAgrees: Bool
    /// Each problem, naming the seq or batch.
    public var problems: [String]

    public var isValid: Bool { problems.isEmpty }

    enum CodingKeys: String, CodingKey {
        case location, events, rootHash = "root_hash", headRootHash = "head_root_hash", batchesChecked = "batches_checked"
        case erasedPayloads = "erased_payloads", checkpointsChecked = "checkpoints_checked"
        case replicaAgrees = "replica_agrees", problems
    }
}

extension Ledger {
    /// Re-reads every row of the shared log and checks it as the server holds it now, independently of
    /// this host's replica: each payload against the SHA-256 its envelope names (an erased one: that an
    /// erasure's record names it), each batch's recorded root against the tree recomputed from the rows,
    /// the head's root, every checkpoint stored there (origin, signature, the root at its size; by
    /// `trusted` when given), and the replica's root at the same size. Finds rows changed after a
    /// replica copied them.
    /// - Throws: ``LedgerError`` (`.invalidInput`) for a ledger with no shared log, or when the server fails.
    public func verifyShared(
        trusting trusted: CheckpointPublicKey? = nil, progress: ((UInt64) -> Void)? = nil
    ) async throws -> SharedLogVerification {
        guard let log = upstream else { throw LedgerError(.invalidInput, "\(directory.path) is not a shared log") }
        let (headSize, headRoot) = try await log.head()
        let checkpoints = try await log.checkpoints()
        let checkpointSizes = Set(checkpoints.map(\.treeSize))
        var rootsAt: [UInt64: MerkleHash] = [0: Merkle.emptyRoot]
        var erasedBy: [UInt64: UInt64] = [:]
        var recordTypes: [UInt64: String] = [:]
        if headSize > 0 {
            for (record, seqs) in try await log.erasures(recordedIn: 1...headSize) {
                for seq in seqs { erasedBy[seq] = record }
            }
        }
        var erased = 0
        var tree = SharedLogHead()
        var problems: [String] = []
        var batches = 0
        while tree.size < headSize {
            let records = try await log.records(after: tree.size, limit: Self.pullBatch)
            guard let last = records.last?.seq else {
                problems.append("the head names \(headSize) events, but the rows end at \(tree.size)")
                break
            }
            var roots: [UInt64: MerkleHash] = [:]
            for (size, root) in try await log.batchRoots(tree.size + 1...last) { roots[size] = root }
            for record in records {
                guard record.seq == tree.size + 1 else {
                    problems.append("event \(tree.size + 1) is missing (the next row is \(record.seq))")
                    break
                }
                do { _ = try Self.draft(record) } catch let error as LedgerError { problems.append(error.message) }
                if record.payloadErased {
                    erased += 1
                    if let by = erasedBy[record.seq] {
                        if by <= record.seq { problems.append("event \(record.seq)'s payload is listed as erased by event \(by), which precedes it") }
                    } else {
                        problems.append("event \(record.seq)'s payload is gone, but no erasure's record names it")
                    }
                }
                if !erasedBy.isEmpty, record.type == Self.erasureRecordType { recordTypes[record.seq] = record.type }
                tree.append(record)
                if checkpointSizes.contains(tree.size) { rootsAt[tree.size] = tree.root }
                if let root = roots[tree.size] {
                    batches += 1
                    if root != tree.root {
                        problems.append("the batch ending at seq \(tree.size) recorded root \(root.hex), but its rows give \(tree.root.hex)")
                    }
                }
            }
            if problems.count > 100 || records.count < Self.pullBatch && tree.size < last { break }
            progress?(tree.size)
        }
        if tree.size == headSize, tree.root != headRoot {
            problems.append("the head records root \(headRoot.hex), but the rows give \(tree.root.hex)")
        }
        for record in Set(erasedBy.values) where record <= tree.size && recordTypes[record] == nil {
            problems.append("event \(record) is listed as recording an erasure, but it is not a \(Self.erasureRecordType) event")
        }
        for checkpoint in checkpoints {
            let size = checkpoint.treeSize
            if checkpoint.origin != id {
                problems.append("the checkpoint at size \(size) was signed for ledger \(checkpoint.origin), not \(id)")
            }
            if !checkpoint.hasValidSignature(trusting: trusted) {
                problems.append(
                    trusted != nil && checkpoint.hasValidSignature()
                        ? "the checkpoint at size \(size) is signed by key \(checkpoint.keyID), not the trusted key \(trusted!.keyID)"
                        : "the checkpoint at size \(size) has an invalid signature")
            }
            if size > tree.size {
                problems.append("a checkpoint vouches for \(size) events but the shared log's rows end at \(tree.size)")
            } else if let root = rootsAt[size], root.hex != checkpoint.rootHash {
                problems.append("the root of the shared log's rows at size \(size) differs from the signed checkpoint's root")
            }
        }
        var replicaAgrees = false
        if tree.size <= (try lastSeq) {
            replicaAgrees = try root(atSize: tree.size).hash == tree.root
            if !replicaAgrees { problems.append("this host's replica has another root at \(tree.size) events") }
        }
        return SharedLogVerification(
            location: log.location, events: tree.size, rootHash: tree.root.hex, headRootHash: headRoot.hex, batchesChecked: batches,
            erasedPayloads: erased, checkpointsChecked: checkpoints.count, replicaAgrees: replicaAgrees, problems: problems)

    }
}

extension Ledger {
    /// Runs `body` while this process leads among the processes using this ledger under `name` (one
    /// `clew scheduler` leads, the others wait): over a shared log, a PostgreSQL advisory lock for every
    /// host (``SharedLog/lead(_:poll:_:)``); on a ledger directory, an exclusive `flock` on
    /// `<directory>/lead-<name>.lock` for the processes of this host. Either is released when the process
    /// dies. Waits (asking every `poll`) while another leads.
    /// - Returns: true when the leadership was lost (and `body` cancelled), false when `body` returned.
    public func lead(_ name: String, poll: Duration = .seconds(1), _ body: @escaping @Sendable () async -> Void) async throws -> Bool {
        if let upstream { return try await upstream.lead(name, poll: poll, body) }
        let path = directory.appendingPathComponent("lead-\(name).lock").path
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LedgerError(.readOnly, "cannot open \(path) to lead \(name): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            try await Task.sleep(for: poll)
        }
        await body()
        flock(fd, LOCK_UN)
        return false
    }
}
