import CZstd
import ClewCore
public import ClewLedger
import ClewModel
public import ClewProjections
import Crypto
public import Foundation

/// A recorded run as one self-contained file: its events (and the DAG definition, stored values and
/// chunk files it used), each event with an inclusion proof against the exporting ledger's Merkle root,
/// so the importing ledger can check every event was in that log before it takes any.
///
/// The file is a zstd frame of JSON lines: a header, then `event` lines (canonical bytes, payload,
/// proof path), then `file` lines (content-addressed chunk files).
public enum RunBundle {
    public static let format = "clew-run-bundle/1"

    /// What an export or import did.
    public struct Summary: Sendable, Codable {
        public var run: String
        public var events: Int
        public var files: Int
        public var bytes: Int
        public var originLedger: String
        public var treeSize: UInt64
        public var root: String
        /// Events skipped on import because the ledger already had them (a DAG version, a stored value).
        public var skipped: Int

        enum CodingKeys: String, CodingKey {
            case run, events, files, bytes, root, skipped
            case originLedger = "origin_ledger"
            case treeSize = "tree_size"
        }
    }

    struct Header: Codable {
        var format: String
        var ledger: String
        var run: String
        var treeSize: UInt64
        var root: String
        var events: Int
        var files: Int

        enum CodingKeys: String, CodingKey {
            case format, ledger, run, root, events, files
            case treeSize = "tree_size"
        }
    }

    struct Line: Codable {
        var kind: String
        var canonical: String?
        var payload: String?
        var proof: [String]?
        var sha256: String?
        var content: String?
    }

    /// Writes `key`'s bundle to `file`.
    /// - Throws: ``ReplayError`` for an unknown run; ledger and file errors.
    public static func export(_ key: RunKey, from ledger: Ledger, to file: URL) throws -> Summary {
        let recording = try RecordedRun.load(key, from: ledger)
        var seqs = Set(try ledger.seqs(inStream: key.stream))
        // The DAG definition the run executed.
        for e in try ledger.events(inStream: StreamID.dag(key.dag)).reversed() where e.type == EventType.dagRegistered {
            if (try? JSONDecoder().decode(DAGRegistered.self, from: e.payload))?.version == recording.version { seqs.insert(e.seq); break }
        }
        // Values the run refers to by digest.
        var digests = Set<String>()
        for a in recording.attempts {
            for s in a.steps { digests.insert(s.value.digest) }
            if let o = a.output { digests.insert(o.digest) }
            for u in a.upstream { digests.insert(u.digest) }
        }
        for d in digests {
            if let s = try ledger.seqs(inStream: StreamID.value(d), limit: 1).first { seqs.insert(s) }
        }
        // Chunk files it read, by content.
        var files: [String: URL] = [:]
        for a in recording.attempts {
            for c in a.chunks {
                guard let loc = c.location, loc.hasPrefix("/"), let d = c.digest else { continue }
                let url = URL(fileURLWithPath: loc)
                if ContentDigest.sha256(file: url) == d { files[d] = url }
            }
        }
        let (size, root) = try ledger.root()
        let ordered = seqs.sorted()
        var text = try line(Header(format: format, ledger: ledger.id, run: key.description, treeSize: size, root: root.hex, events: ordered.count, files: files.count))
        for seq in ordered {
            let c = try ledger.canonicalEvent(seq: seq)
            guard let e = try ledger.event(at: seq) else { continue }
            let proof = try ledger.inclusionProof(seq: seq, treeSize: size)
            text += try line(Line(
                kind: "event", canonical: c.bytes.base64EncodedString(), payload: e.payload.base64EncodedString(), proof: proof.path))
        }
        for (d, url) in files.sorted(by: { $0.key < $1.key }) {
            text += try line(Line(kind: "file", sha256: d, content: try Data(contentsOf: url).base64EncodedString()))
        }
        let compressed = try compress(Data(text.utf8))
        try compressed.write(to: file, options: .atomic)
        return Summary(
            run: key.description, events: ordered.count, files: files.count, bytes: compressed.count, originLedger: ledger.id,
            treeSize: size, root: root.hex, skipped: 0)
    }

    /// Checks every event of the bundle against its proof and the bundle's root, then appends them to
    /// `ledger` in one batch (all or nothing), followed by `run.imported`; chunk files go to
    /// `<ledger>/data/files/<sha256>`, where a replay finds them.
    /// - Throws: ``ReplayError`` naming the first bad line, event or file; the run already present.
    public static func importBundle(from file: URL, into ledger: Ledger) async throws -> Summary {
        let raw: Data
        do { raw = try Data(contentsOf: file) } catch { throw ReplayError("cannot read \(file.path): \(error.localizedDescription)") }
        let bundle = try read(raw, name: file.lastPathComponent)
        let key = bundle.key
        if try !ledger.seqs(inStream: key.stream, limit: 1).isEmpty {
            throw ReplayError(.conflict, "run \(key) is already in this ledger; nothing imported")
        }
        var drafts: [NewEvent] = []
        var skipped = 0
        for (event, payload) in bundle.events {
            if try alreadyHas(event, payload: payload, in: ledger) {
                skipped += 1
                continue
            }
            drafts.append(NewEvent(type: event.type, stream: event.stream, actor: event.actor, timestampMicros: event.timestampMicros, payload: payload))
        }
        guard drafts.contains(where: { $0.stream == key.stream }) else { throw ReplayError("the bundle holds no event of run \(key)") }
        let filesDir = ledger.directory.appendingPathComponent("data/files")
        try FileManager.default.createDirectory(at: filesDir, withIntermediateDirectories: true)
        for (d, content) in bundle.files { try content.write(to: filesDir.appendingPathComponent(d), options: .atomic) }
        let header = bundle.header
        let note = JSON.Value.object([
            ("run", .string(key.run)), ("origin_ledger", .string(header.ledger)), ("origin_tree_size", .int(Int64(header.treeSize))),
            ("origin_root", .string(header.root)), ("events", .int(Int64(drafts.count))), ("files", .int(Int64(bundle.files.count))),
            ("bundle_sha256", .string(ContentDigest.sha256(raw))),
        ])
        drafts.append(NewEvent(type: EventType.runImported, stream: key.stream, actor: "clew-import", timestampMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), payload: note.data))
        _ = try await ledger.append(contentsOf: drafts)
        return Summary(
            run: key.description, events: drafts.count - 1, files: bundle.files.count, bytes: raw.count, originLedger: header.ledger,
            treeSize: header.treeSize, root: header.root, skipped: skipped)
    }

    /// A bundle read and checked, before it meets a ledger: each event proven in the exporting ledger's
    /// tree, each payload the one its event commits to, each file its digest.
    package struct Contents {
        let header: Header
        package let key: RunKey
        package let events: [(CanonicalEvent, Data)]
        package let files: [(String, Data)]
    }

    /// Decodes and checks a bundle's bytes (`name` is how errors call it).
    /// - Throws: ``ReplayError`` naming the first bad line, event or file.
    package static func read(_ raw: Data, name: String) throws -> Contents {
        let text = try decompress(raw, name: name)
        var lines = text.split(separator: UInt8(ascii: "\n"))
        guard let first = lines.first, let header = try? JSONDecoder().decode(Header.self, from: Data(first)), header.format == format else {
            throw ReplayError("\(name) is not a Clew run bundle (no \(format) header)")
        }
        lines.removeFirst()
        let root = try MerkleHash(hex: header.root)
        guard let slash = header.run.firstIndex(of: "/") else { throw ReplayError("bundle header names run '\(header.run)', not DAG/RUN") }
        let key = RunKey(dag: String(header.run[..<slash]), run: String(header.run[header.run.index(after: slash)...]))
        var events: [(CanonicalEvent, Data)] = []
        var files: [(String, Data)] = []
        for (n, l) in lines.enumerated() {
            let where_ = "\(name) line \(n + 2)"
            guard let entry = try? JSONDecoder().decode(Line.self, from: Data(l)) else { throw ReplayError("\(where_): not a bundle line") }
            if entry.kind == "file" {
                guard let d = entry.sha256, let content = entry.content.flatMap({ Data(base64Encoded: $0) }),
                    ContentDigest.sha256(content) == d
                else { throw ReplayError(.verificationFailed, "\(where_): file content does not match its SHA-256") }
                files.append((d, content))
                continue
            }
            guard entry.kind == "event", let bytes = entry.canonical.flatMap({ Data(base64Encoded: $0) }),
                let payload = entry.payload.flatMap({ Data(base64Encoded: $0) })
            else { throw ReplayError("\(where_): an event line needs canonical bytes and a payload") }
            let event: CanonicalEvent
            do { event = try CanonicalEvent(bytes: bytes) } catch { throw ReplayError("\(where_): \(error)") }
            let path = try (entry.proof ?? []).map { try MerkleHash(hex: $0) }
            guard Merkle.verifyInclusion(leaf: event.leafHash, index: event.seq - 1, treeSize: header.treeSize, path: path, root: root) else {
                throw ReplayError(.verificationFailed, "\(where_): event \(event.seq) (\(event.type) in \(event.stream)) is not in the exporting ledger's tree of \(header.treeSize) events with root \(header.root.prefix(16))…: its proof fails")
            }
            let payloadMatches = event.payload.map { $0 == payload } ?? (event.payloadSHA256 == ContentDigest.sha256(payload))
            guard payloadMatches else { throw ReplayError(.verificationFailed, "\(where_): event \(event.seq)'s payload is not the one its canonical bytes commit to") }
            events.append((event, payload))
        }
        return Contents(header: header, key: key, events: events, files: files)
    }

    /// A DAG version or stored value the ledger already records is not imported twice.
    static func alreadyHas(_ e: CanonicalEvent, payload: Data, in ledger: Ledger) throws -> Bool {
        if e.type == EventType.valueStored { return try !ledger.seqs(inStream: e.stream, limit: 1).isEmpty }
        if e.type == EventType.dagRegistered, let version = (try? JSONDecoder().decode(DAGRegistered.self, from: payload))?.version {
            return try ledger.events(inStream: e.stream).contains {
                $0.type == EventType.dagRegistered && (try? JSONDecoder().decode(DAGRegistered.self, from: $0.payload))?.version == version
            }
        }
        return false
    }

    static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
    }

    static func compress(_ data: Data) throws -> Data {
        let bound = ZSTD_compressBound(data.count)
        var out = Data(count: bound)
        let n = out.withUnsafeMutableBytes { o in data.withUnsafeBytes { i in ZSTD_compress(o.baseAddress, bound, i.baseAddress, data.count, 3) } }
        guard ZSTD_isError(n) == 0 else { throw ReplayError("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        out.count = n
        return out
    }

    /// The largest bundle this build opens, uncompressed: the ledger's own codec cap.
    static let maxBundleBytes: UInt64 = 1 << 30

    /// Decodes a bundle's one zstd frame. The frame header's size is a claim, not an allocation: the
    /// output grows only as real data decodes (a 30-byte file claiming 16 GiB costs nothing), a size
    /// past ``maxBundleBytes`` is refused by name, and a frame that decodes to another size than it
    /// declared, stops short, or is followed by other bytes is damaged.
    static func decompress(_ data: Data, name: String) throws -> Data {
        let declared = data.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, data.count) }
        guard declared != ZSTD_CONTENTSIZE_ERROR, declared != ZSTD_CONTENTSIZE_UNKNOWN else {
            throw ReplayError("\(name) is not a Clew run bundle (not a zstd frame with a known size)")
        }
        guard declared <= maxBundleBytes else {
            throw ReplayError("\(name) declares \(declared) bytes uncompressed; bundles are limited to \(maxBundleBytes) bytes (1 GiB)")
        }
        guard let dctx = ZSTD_createDCtx() else { throw ReplayError("zstd: cannot create a decompression context (out of memory)") }
        defer { ZSTD_freeDCtx(dctx) }
        var out = Data()
        let step = ZSTD_DStreamOutSize()
        var chunk = [UInt8](repeating: 0, count: step)
        var finished = false
        try data.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            var input = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
            while !finished {
                let (rc, produced) = chunk.withUnsafeMutableBytes { dst -> (Int, Int) in
                    var output = ZSTD_outBuffer(dst: dst.baseAddress, size: dst.count, pos: 0)
                    let rc = ZSTD_decompressStream(dctx, &output, &input)
                    return (rc, output.pos)
                }
                guard ZSTD_isError(rc) == 0 else { throw ReplayError("\(name): damaged (\(String(cString: ZSTD_getErrorName(rc))))") }
                out.append(contentsOf: chunk[0..<produced])
                guard UInt64(out.count) <= declared else { throw ReplayError("\(name): damaged (decodes past the \(declared) bytes it declares)") }
                if rc == 0 { finished = true } else if input.pos == input.size && produced < step {
                    throw ReplayError("\(name): damaged (truncated: the zstd frame stops after \(out.count) of \(declared) bytes)")
                }
            }
            guard input.pos == input.size else { throw ReplayError("\(name): damaged (\(input.size - input.pos) bytes follow the zstd frame)") }
        }
        guard UInt64(out.count) == declared else { throw ReplayError("\(name): damaged (decodes to \(out.count) bytes, declares \(declared))") }
        return out
    }
}
