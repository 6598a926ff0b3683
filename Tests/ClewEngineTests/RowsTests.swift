import ClewEngine
import ClewModel
import Testing

@Suite("Row-level lineage")
struct RowsTests {
    @Test("map, filter and group keep each output row's source rows, composed through a chain")
    func composition() {
        let input = Array(0..<20)
        let rows = Rows(input)
        let kept = rows.filter { $0 % 3 != 0 }.map { $0 * 10 }
        #expect(kept.elements == input.filter { $0 % 3 != 0 }.map { $0 * 10 })
        for (i, v) in kept.elements.enumerated() { #expect(kept.origin.sources(of: i) == [v / 10]) }
        let groups = kept.group(by: { $0 % 4 }) { key, members in (key, members.count) }
        for (g, (key, count)) in groups.elements.enumerated() {
            let sources = groups.origin.sources(of: g)
            #expect(sources.count == count)
            #expect(sources.allSatisfy { ($0 * 10) % 4 == key && $0 % 3 != 0 })
        }
        // A filter of groups, then a group of groups, still reach the original rows.
        let big = groups.filter { $0.1 >= 3 }
        #expect(big.origin.sources(of: 0) == groups.origin.sources(of: 0))
        let all = groups.group(by: { _ in 0 }) { _, m in m.count }
        #expect(Set(all.origin.sources(of: 0)) == Set(input.filter { $0 % 3 != 0 }))
        // Untracked: same elements, no lineage.
        let plain = Rows(untracked: input).filter { $0 % 3 != 0 }.map { $0 * 10 }.group(by: { $0 % 4 }) { key, members in (key, members.count) }
        #expect(plain.elements.map(\.1) == groups.elements.map(\.1))
        #expect(plain.origin.sources(of: 0).isEmpty)
        // The recorded form round-trips.
        let record = RowLineageRecord(source: nil, rows: groups.count, origin: groups.origin)
        #expect(record.origin == groups.origin)
    }
}
