import Foundation
import Testing
@testable import ClewLedger

/// The fast paths of appending and reading events agree with the plain definitions they replace.
@Suite("Decode and validation fast paths")
struct DecodeFastPathTests {
    /// The rule, one byte at a time: C0 controls, DEL, and C1 controls (0xC2 0x80...0x9F).
    static func plainHasControl(_ bytes: [UInt8]) -> Bool {
        var previous: UInt8 = 0
        for byte in bytes {
            if byte < 0x20 || byte == 0x7f || (previous == 0xc2 && byte >= 0x80 && byte <= 0x9f) { return true }
            previous = byte
        }
        return false
    }

    @Test("the word-at-a-time control-character check agrees with the byte rule at every position and length")
    func controlCharacters() {
        // Every byte value at every position of names of 1-24 bytes (the word loop and its tail).
        for length in 1...24 {
            for position in 0..<length {
                for value in 0...255 {
                    var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    bytes[position] = UInt8(value)
                    let fast = bytes.withUnsafeBufferPointer { NewEvent.hasControlCharacter($0) }
                    #expect(fast == Self.plainHasControl(bytes), "byte \(value) at \(position) of \(length)")
                    if fast != Self.plainHasControl(bytes) { return }
                }
            }
        }
        // C1 controls encoded in UTF-8 (two bytes, possibly across a word boundary), and their neighbours.
        for prefix in 0..<10 {
            for second: UInt8 in [0x7f, 0x80, 0x85, 0x9f, 0xa0, 0xbf] {
                let bytes = [UInt8](repeating: UInt8(ascii: "x"), count: prefix) + [0xc2, second] + Array("tail".utf8)
                let fast = bytes.withUnsafeBufferPointer { NewEvent.hasControlCharacter($0) }
                #expect(fast == Self.plainHasControl(bytes), "0xC2 0x\(String(second, radix: 16)) after \(prefix) bytes")
            }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...40, using: &rng)).map { _ in
                Bool.random(using: &rng) ? UInt8.random(in: 0x20...0x7e, using: &rng) : UInt8.random(in: 0...255, using: &rng)
            }
            let fast = bytes.withUnsafeBufferPointer { NewEvent.hasControlCharacter($0) }
            #expect(fast == Self.plainHasControl(bytes), "\(bytes)")
        }
    }

    @Test("names are refused for a control character wherever it is, and accepted in UTF-8 otherwise")
    func namesValidated() throws {
        for i in 0..<20 {
            var name = Array("run/daily_sales/2026-11-2".utf8)
            name.insert(0x7f, at: i)
            let event = NewEvent(type: "t", stream: String(decoding: name, as: UTF8.self))
            #expect(throws: LedgerError.self) { try event.validate() }
        }
        try NewEvent(type: "tâche.réussie", stream: "run/données/été", actor: "机器-7").validate()
    }

    @Test("the string cache returns the string of the bytes asked for, whatever collides, across many strings")
    func stringCache() throws {
        var cache = StringCache()
        var single = StringCache(slotBits: 0)
        // Many more strings than slots, of lengths around the 8-byte loads, repeated in shuffled orders,
        // some differing only in the middle (same length, first and last eight bytes: the same slot).
        var names: [String] = []
        for i in 0..<600 {
            names.append("run/etl/\(i)")
            names.append(String(repeating: "s", count: i % 20 + 1))
            names.append("run/daily_sales/\(i)/2026-11-21T00")
            names.append("prefix-\(i % 10)-middle-\(i / 10)-suffix--")
        }
        // 17 to 24 bytes: the first and last eight bytes alike, the one to eight bytes between them not.
        for width in 1...8 {
            for i in 0..<12 { names.append("abcdefgh" + String(String(repeating: "0", count: width) + String(i)).suffix(width) + "stuvwxyz") }
        }
        names.append("été/données/机器")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3 {
            for name in names.shuffled(using: &rng) {
                var copy = name
                let a = try copy.withUTF8 { try cache.string(UnsafeRawBufferPointer($0)) }
                let b = try copy.withUTF8 { try single.string(UnsafeRawBufferPointer($0)) }
                #expect(a == name && b == name)
                if a != name || b != name { return }
            }
        }
    }

    @Test("invalid UTF-8 in a stored name is reported as corruption, cached or not")
    func invalidUTF8() {
        var cache = StringCache()
        for bad: [UInt8] in [[0xff], [0x61, 0xc3], [0xc3, 0x28, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67], [0xed, 0xa0, 0x80]] {
            let error = #expect(throws: LedgerError.self) { try bad.withUnsafeBytes { try cache.string($0) } }
            #expect(error?.code == .corrupted)
        }
        #expect((try? [UInt8]("ok".utf8).withUnsafeBytes { try cache.string($0) }) == "ok")
    }

    @Test("a scan of interleaved streams reads back every event exactly as appended")
    func interleavedScan() async throws {
        try await withTemporaryLedger { ledger, _ in
            var appended: [NewEvent] = []
            for i in 0..<3_000 {
                // 400 streams interleaved, names longer than a small string, some non-ASCII.
                let stream = i % 7 == 0 ? "run/données/\(i % 400)/été" : "run/daily_sales/2026-11-21T00/\(i % 400)"
                appended.append(sampleEvent(i, stream: stream))
            }
            for batch in stride(from: 0, to: appended.count, by: 250) {
                try await ledger.append(contentsOf: Array(appended[batch..<batch + 250]))
            }
            var i = 0
            try ledger.scan { event in
                let e = appended[i]
                #expect(event.stream == e.stream && event.type == e.type && event.actor == e.actor && event.payload == e.payload)
                i += 1
                return true
            }
            #expect(i == appended.count)
            let one = try #require(try ledger.event(at: 1_401))
            #expect(one.stream == appended[1_400].stream && one.payload == appended[1_400].payload)
        }
    }

    @Test("stream keys split at any point give back each event's stream")
    func streamKeys() {
        let streams = (0..<40).map { i in i % 5 == 0 ? "run/été/\(i)" : "run/etl/\(i * 7919)" }
        var keys = StreamKeys()
        for s in streams { keys.append(s) }
        func strings(_ k: StreamKeys) -> [String] {
            var out: [String] = []
            k.forEachInKeyOrder { i, raw in
                #expect(i == out.count)
                out.append(String(decoding: raw, as: UTF8.self))
            }
            return out
        }
        #expect(strings(keys) == streams)
        for lower in 0...streams.count {
            for upper in lower...streams.count {
                let part = keys[lower..<upper]
                #expect(part.count == upper - lower)
                #expect(strings(part) == Array(streams[lower..<upper]))
                #expect(strings(part[0..<part.count]) == Array(streams[lower..<upper]))
            }
        }
    }

    @Test("sorted for the index, stream keys come in LMDB's key order, a prefix first, one stream's events in their order")
    func streamKeysInKeyOrder() {
        let streams = ["run/b", "run/a", "run/ab", "run/été", "run/a", "run/b", "run/etl", "r", "run/a"]
        var keys = StreamKeys()
        for s in streams { keys.append(s) }
        keys.sortForIndex()
        var seen: [(Int, [UInt8])] = []
        keys.forEachInKeyOrder { i, raw in seen.append((i, Array(raw))) }
        #expect(seen.map(\.0) == [7, 1, 4, 8, 2, 0, 5, 6, 3])
        #expect(seen.allSatisfy { Array(streams[$0.0].utf8) == $0.1 })
        // The order is LMDB's default comparison of keys: bytes, then length (`[UInt8]`'s lexicographic order).
        #expect(zip(seen, seen.dropFirst()).allSatisfy { a, b in a.1 == b.1 ? a.0 < b.0 : a.1.lexicographicallyPrecedes(b.1) })
        // A part of the keys is not sorted until asked, and then sorts its own events.
        var part = keys[2..<6]
        var inOrder: [Int] = []
        part.forEachInKeyOrder { i, _ in inOrder.append(i) }
        #expect(inOrder == [0, 1, 2, 3])
        part.sortForIndex()
        inOrder = []
        part.forEachInKeyOrder { i, _ in inOrder.append(i) }
        #expect(inOrder == [2, 0, 3, 1])  // run/a, run/ab, run/b, run/été
    }

    @Test("a large batch prepared in parts on several threads appends as one: consecutive seqs, every event and stream index entry, a valid tree")
    func batchPreparedInParts() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(sampleEvent(0))
            let batch = (1...5_003).map { sampleEvent($0, stream: "run/part/\($0 % 37)") }
            #expect(batch.count / Ledger.preparePartEvents >= 2)
            let seqs = try await ledger.append(contentsOf: batch)
            #expect(seqs == 2..<5_005)
            let read = try ledger.events(2...5_004)
            #expect(read.map(\.stream) == batch.map(\.stream))
            #expect(read.map(\.payload) == batch.map(\.payload))
            #expect(try ledger.seqs(inStream: "run/part/5") == (1...5_003).filter { $0 % 37 == 5 }.map { UInt64($0) + 1 })
            #expect(try ledger.verify().isValid)
        }
    }

    @Test("the first invalid event of a batch prepared in parts is the one named, whichever part it is in, and nothing is written")
    func invalidEventInAPart() async throws {
        try await withTemporaryLedger { ledger, _ in
            try await ledger.append(sampleEvent(0))
            for bad in [[1_700], [300, 1_700], [1_999], [0, 1_999]] {
                var batch = (1...2_000).map { sampleEvent($0) }
                for i in bad { batch[i] = NewEvent(type: "t\n", stream: "s") }
                let error = await #expect(throws: LedgerError.self) { try await ledger.append(contentsOf: batch) }
                #expect(error?.code == .invalidInput)
                #expect(error?.message.contains("event \(bad[0] + 1) of 2000") == true, "\(error?.message ?? "")")
            }
            #expect(try ledger.lastSeq == 1)
            #expect(try ledger.verify().isValid)
        }
    }
}
