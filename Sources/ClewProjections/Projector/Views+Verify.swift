public import ClewLedger
public import Foundation

/// The outcome of verifying one view against a fresh fold of the log.
public struct ViewVerification: Sendable, Codable {
    public var view: String
    /// The seq both were folded to.
    public var checkpoint: UInt64
    public var liveDigest: String
    public var freshDigest: String
    public var entries: Int
    public var equal: Bool
    /// The first entry that differs, when they differ.
    public var firstDifference: String?
}

extension Views {
    /// Folds the log into scratch copies of `names` up to each live view's checkpoint and compares their
    /// digests with the live views'. A live view that is corrupt is reported as different, not repaired.
    public func verify(_ names: [ViewName] = ViewName.allCases, progress: (@Sendable (FoldProgress) -> Void)? = nil) throws -> [ViewVerification] {
        try catchUp()
        // The live side: checkpoint and digest read in one transaction each.
        var liveSide: [ViewName: (checkpoint: UInt64, digest: String, entries: Int)] = [:]
        for name in names {
            liveSide[name] = try readOnce(name) { store, txn in
                let checkpoint = try store.readMeta(txn)?.checkpoint ?? 0
                let d = try store.digest(txn)
                return (checkpoint, d.digest, d.entries)
            }
        }
        return try withScratch(names, through: liveSide.mapValues(\.checkpoint), progress: progress) { scratch in
            try names.map { name in
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
                    entries: fresh.entries, equal: fresh.digest == live.digest, firstDifference: difference)
            }
        }
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
