import ClewModel
import ClewProjections
import Foundation
import Testing

@testable import ClewServer

@Suite("JSON parser")
struct JSONParserTests {
    /// A small deterministic generator (SplitMix64).
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func random(_ rng: inout Rng, depth: Int = 0) -> JSONTree {
        let pieces = ["a", "é", "\"", "\\", "/", "\n", "\t", "\u{1}", "😀", "中文", " ", "x"]
        switch rng.below(depth > 4 ? 4 : 6) {
        case 0: return .null
        case 1: return .bool(rng.below(2) == 0)
        case 2: return .number(Double(Int(rng.below(2_000_001)) - 1_000_000) / Double([1, 10, 1000][rng.below(3)]))
        case 3: return .string((0..<rng.below(8)).map { _ in pieces[rng.below(pieces.count)] }.joined())
        case 4: return .array((0..<rng.below(5)).map { _ in random(&rng, depth: depth + 1) })
        default:
            var o: [String: JSONTree] = [:]
            for _ in 0..<rng.below(5) { o["k\(rng.below(20))\(pieces[rng.below(pieces.count)])"] = random(&rng, depth: depth + 1) }
            return .object(o)
        }
    }

    @Test("2,000 random documents round-trip through text and parse, and agree with Foundation's decoder")
    func roundTrip() throws {
        var rng = Rng(state: 42)
        for _ in 0..<2_000 {
            let tree = Self.random(&rng)
            let text = tree.text
            #expect(try JSONTree.parse(Data(text.utf8)) == tree, "\(text)")
            #expect(try JSONDecoder().decode(JSONTree.self, from: Data(text.utf8)) == tree, "\(text)")
        }
    }

    @Test("escapes, surrogate pairs, exponents and whitespace")
    func details() throws {
        let tree = try JSONTree.parse(Data(#" { "a" : [ 1e3 , -0.5E-2, 0 ] ,"s":"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\", "n": null, "t": true } "#.utf8))
        #expect(tree["a"] == .array([.number(1000), .number(-0.005), .number(0)]))
        #expect(tree["s"] == .string("é😀/\u{8}\u{c}\n\r\t\"\\"))
        #expect(tree["n"] == .null && tree["t"] == .bool(true))
        #expect(try JSONTree.parse(Data(#"{"k":1,"k":2}"#.utf8))["k"] == .number(2), "the last of a repeated key wins")
    }

    @Test("malformed input is refused with the byte offset and what was wrong")
    func malformed() {
        let cases: [(String, String)] = [
            ("", "unexpected end of input"), ("[1,]", "unexpected character"), ("{\"a\" 1}", "expected ':'"),
            ("[1 2]", "expected ',' or ']'"), ("01", "unexpected text after"), ("\"abc", "unterminated string"),
            ("\"a\u{1}\"", "control character"), (#""\ud800""#, "lone surrogate"), (#""\x""#, "invalid escape"),
            ("tru", "unexpected end of input"), ("nul!", "invalid literal"), ("-", "without digits"), ("1.", "after '.'"),
            ("1e", "exponent"), ("{1:2}", "expected a string key"), (String(repeating: "[", count: 600), "nesting deeper than 512"),
        ]
        for (text, expected) in cases {
            #expect(throws: JSONParseError.self, "\(text)") { try JSONTree.parse(Data(text.utf8)) }
            do {
                _ = try JSONTree.parse(Data(text.utf8))
            } catch {
                #expect("\(error)".contains(expected) && "\(error)".contains("at byte"), "\(text): \(error)")
            }
        }
        #expect(throws: JSONParseError.self) { try JSONTree.parse(Data([0x22, 0xFF, 0x22])) }
    }
}

@Suite("OpenLineage string formats")
struct FormatTests {
    @Test("uuid, uri and date-time are checked as the spec says")
    func formats() {
        #expect(OpenLineageSchema.isUUID("01a19eb4-a000-76ca-BACC-784d91643d10"))
        for bad in ["", "01a19eb4a00076cabacc784d91643d10", "01a19eb4-a000-76ca-bacc-784d91643d1", "01a19eb4-a000-76ca-bacc-784d91643d100", "g1a19eb4-a000-76ca-bacc-784d91643d10"] {
            #expect(!OpenLineageSchema.isUUID(bad), "\(bad)")
        }
        for good in ["https://openlineage.io/spec/facets/1-0-1/X.json#/$defs/X", "file:/tmp/x", "s3+x.y-z://b", "urn:x"] {
            #expect(OpenLineageSchema.isAbsoluteURI(good), "\(good)")
        }
        for bad in ["", "://x", "1http://x", "no colon", "http://a b", "ht tp://x", "/relative/path"] {
            #expect(!OpenLineageSchema.isAbsoluteURI(bad), "\(bad)")
        }
        #expect(OpenLineageSchema.isDateTime("2026-11-03T00:00:00.123+01:00") && !OpenLineageSchema.isDateTime("2026-11-03 00:00"))
    }
}
