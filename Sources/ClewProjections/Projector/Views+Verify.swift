public import ClewLedger
import Foundation

/// The outcome of verifying one view against a fresh fold of the log.
public struct ViewVerification: Sendable, Codable {
    public var view: String
    /// The seq both were folded to.
    public var checkpoint: UInt64
    public var liveDigest: String
    public var freshDigest: String
    /// LMDB records in the fresh fold's tables. A grouped table (``GroupedTable``) keeps many entries in
    /// one record, so this is not a count of index entries.
    public var records: Int
    public var equal: Bool
    /// The first entry that differs, when they differ.
    public var firstDifference: String?
}

extension Views {
    /// Folds the log into scratch copies of `names` up to each live view's checkpoint and compares their
    /// digests with the live views'. A live view that is corrupt is reported as different, not repaired.
    public func verify(_ names: [ViewName] = ViewName.allCases, progress: (@Sendable (FoldProgress) -> Void)? = nil) throws -> [ViewVerification] {
        // The live side as it stands (no catch-up: nothing is written): checkpoint and digest read in one
        // transaction each.
        var liveSide: [ViewName: (checkpoint: UInt64, digest: String, records: Int)] = [:]
        var broken: [ViewName: String] = problems
        for name in names where broken[name] == nil {
            do {
                liveSide[name] = try readOnce(name) { store, txn in
                    guard let checkpoint = try store.readMeta(txn)?.checkpoint else {
                        throw ViewError(.corrupt, view: name.rawValue, "view \(name.rawValue) has no meta record")
                    }
                    let d = try store.digest(txn)
                    return (checkpoint, d.digest, d.records)
                }
            } catch let e as ViewError {
                broken[name] = e.message
            }
        }
        let checked = names.filter { liveSide[$0] != nil }
        var results = try withScratch(checked, through: liveSide.mapValues(\.checkpoint), progress: progress) { scratch in
            try checked.map { name in
                let live = liveSide[name]!
                let fresh = try scratch[name]!.env.read { try scratch[name]!.digest($0) }
                var difference: String?
                if fresh.digest != live.digest {
                    difference = try readOnce(name) { store, txn in
                        try scratch[name]!.env.read { try Self.firstDifference(store, txn, scratch[name]!, $0) }
                    }
                }
                return ViewVerification(
                    view: name.rawValue, checkpoint: live.checkpoint, liveDigest: live.digest, freshDigest: fresh.digest,
                    records: fresh.records, equal: fresh.digest == live.digest, firstDifference: difference)
            }
        }
        for name in names where broken[name] != nil {
            results.append(ViewVerification(
                view: name.rawValue, checkpoint: 0, liveDigest: "-", freshDigest: "-", records: 0, equal: false, firstDifference: broken[name]))
        }
        let order = Dictionary(uniqueKeysWithValues: ViewName.allCases.enumerated().map { ($1.rawValue, $0) })
        return results.sorted { order[$0.view]! < order[$1.view]! }
    }

    private func readOnce<T>(_ name: ViewName, _ body: (ViewStore, Transaction) throws -> T) throws -> T {
        try read(name, body, repair: false)
    }

    /// Walks both views table by table and names the first entry that differs.
    static func firstDifference(_ a: ViewStore, _ ta: Transaction, _ b: ViewStore, _ tb: Transaction) throws -> String {
        for t in a.tableNames {
            let found: String? = try ta.withCursor(a.table(t)) { ca in
                try tb.withCursor(b.table(t)) { cb in
                    var ea = try ca.first()
                    var eb = try cb.first()
                    while true {
                        switch (ea, eb) {
                        case (nil, nil): return nil
                        case (let x?, nil): return "table \(t): the live view has an extra entry \(ViewStore.show(Array(x.key)))"
                        case (nil, let y?): return "table \(t): the live view lacks \(ViewStore.show(Array(y.key)))"
                        case (let x?, let y?):
                            if !x.key.elementsEqual(y.key) {
                                return "table \(t): the live view has \(ViewStore.show(Array(x.key))) where a fresh fold has \(ViewStore.show(Array(y.key)))"
                            }
                            if !x.value.elementsEqual(y.value) {
                                return "table \(t): entry \(ViewStore.show(Array(x.key))) differs"
                            }
                        }
                        ea = try ca.next()
                        eb = try cb.next()
                    }
                }
            }
            if let found { return found }
        }
        return "the views differ outside their tables"
    }
}

/// One view's place: checkpoint, generation directory and size.
public struct ViewStatusInfo: Sendable, Codable {
    public var view: String
    public var checkpoint: UInt64
    public var logSeq: UInt64
    public var generation: String
    public var bytes: Int
    /// LMDB records in the view's tables (a group of a grouped table is one record).
    public var records: Int
}

extension Views {
    /// Opens the views as they are, without repairing or catching up, for ``verify(_:progress:)``: a view
    /// that does not open or check is reported by `verify` as different, with the reason.
    public static func openForVerify(ledger: Ledger, options: Options = Options()) throws -> Views {
        let views = Views(ledger: ledger, options: options)
        for name in ViewName.allCases {
            do { try views.attach(name) } catch let e as ViewError { views.problems[name] = e.message }
        }
        return views
    }

    /// Checkpoint, generation and size of each view.
    public func status() throws -> [ViewStatusInfo] {
        let last = try ledger.lastSeq
        return try ViewName.allCases.map { name in
            try read(name) { store, txn in
                let checkpoint = try store.readMeta(txn)?.checkpoint ?? 0
                var records = 0
                for t in store.tableNames { records += try txn.stat(store.table(t)).entries }
                let size = (try? FileManager.default.attributesOfItem(atPath: store.directory.appendingPathComponent("data.mdb").path)[.size] as? Int) ?? 0
                return ViewStatusInfo(view: name.rawValue, checkpoint: checkpoint, logSeq: last, generation: store.directory.lastPathComponent, bytes: size, records: records)
            }
        }
    }
}
