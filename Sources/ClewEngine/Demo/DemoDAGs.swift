import ClewModel
import Foundation

/// The demo pipelines shipped in `clew`, modelled on real ones. All data is generated deterministically
/// from params, so every run of a demo is reproducible.
public enum DemoDAGs {
    /// Every demo DAG.
    public static var all: [DAG] { [sensorRollup, csvOrders, shardETL, numericFlow] }

    struct Reading: Codable, Sendable { var sensor: String; var second: Int; var value: Double }

    static let sensors = ["temp-a": "temperature", "temp-b": "temperature", "hum-a": "humidity", "press-a": "pressure"]

    /// (a) Per-second sensor readings averaged to minutes, hours and the day, then per category; daily
    /// partitions, meant to be backfilled.
    public static let sensorRollup = DAG(
        "sensor_rollup", description: "Per-second readings → minute → hour → day averages, then per-category daily figures",
        schedule: "@daily", start: "2026-11-01", catchup: true,
        datasets: [
            DatasetSpec(name: "sensor.seconds", partitioning: .time(seconds: 86_400), requiresValidation: true),
            DatasetSpec(name: "sensor.minutes", partitioning: .time(seconds: 86_400)),
            DatasetSpec(name: "sensor.hours", partitioning: .time(seconds: 86_400)),
            DatasetSpec(name: "sensor.daily", partitioning: .time(seconds: 86_400)),
        ]
    ) {
        Op("ingest_seconds") { ctx in
            var readings: [String: [Float]] = [:]
            for (sensor, _) in sensors.sorted(by: { $0.key < $1.key }) {
                let base: Float = sensor.hasPrefix("temp") ? 18 : sensor.hasPrefix("hum") ? 55 : 1013
                readings[sensor] = (0..<86_400).map { s in
                    base + 3 * sin(Float(s) / 86_400 * 2 * .pi) + Float(ctx.randomUnit() - 0.5)
                }
            }
            try write(readings, ctx, "sensor.seconds")
            let count = readings.values.map(\.count).reduce(0, +)
            try ctx.record("readings", count)
            ctx.expect("one reading per second per sensor", count == 86_400 * sensors.count, "\(count) readings")
            ctx.expect("values are finite", readings.values.allSatisfy { $0.allSatisfy(\.isFinite) })
            return count
        }.produces("sensor.seconds")
        Op("minute_averages", after: "ingest_seconds") { ctx in
            let seconds: [String: [Float]] = try read(ctx, "sensor.seconds")
            let minutes = seconds.mapValues { v in stride(from: 0, to: v.count, by: 60).map { v[$0..<min($0 + 60, v.count)].reduce(0, +) / 60 } }
            try write(minutes, ctx, "sensor.minutes")
            try ctx.record("minutes_per_sensor", minutes.values.first?.count ?? 0)
            return minutes.values.first?.count ?? 0
        }.consumes("sensor.seconds").produces("sensor.minutes")
        Op("hour_averages", after: "minute_averages") { ctx in
            let minutes: [String: [Float]] = try read(ctx, "sensor.minutes")
            let hours = minutes.mapValues { v in stride(from: 0, to: v.count, by: 60).map { v[$0..<min($0 + 60, v.count)].reduce(0, +) / 60 } }
            try write(hours, ctx, "sensor.hours")
            return hours.values.first?.count ?? 0
        }.consumes("sensor.minutes").produces("sensor.hours")
        Op("day_averages", after: "hour_averages") { ctx in
            let hours: [String: [Float]] = try read(ctx, "sensor.hours")
            let daily = hours.mapValues { Double($0.reduce(0, +) / Float($0.count) * 1000).rounded() / 1000 }
            for (sensor, avg) in daily.sorted(by: { $0.key < $1.key }) { try ctx.record("avg.\(sensor)", avg) }
            return daily
        }.consumes("sensor.hours").produces("sensor.daily")
        Op("category_daily", after: "day_averages") { ctx in
            let daily = try ctx.input("day_averages", as: [String: Double].self)
            var byCategory: [String: [Double]] = [:]
            for (sensor, avg) in daily { byCategory[sensors[sensor] ?? "other", default: []].append(avg) }
            let result = byCategory.mapValues { ($0.reduce(0, +) / Double($0.count) * 1000).rounded() / 1000 }
            for (category, avg) in result.sorted(by: { $0.key < $1.key }) { try ctx.record("category.\(category)", avg) }
            return result
        }
    }

    static func write<T: Encodable>(_ value: T, _ ctx: TaskContext, _ dataset: String) throws {
        try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
        try JSONEncoder().encode(value).write(to: ctx.outputDirectory.appendingPathComponent(dataset))
    }

    static func read<T: Decodable>(_ ctx: TaskContext, _ dataset: String) throws -> T {
        guard let url = ctx.chunk(dataset)?.url else { throw EngineError("no admitted chunk of \(dataset)") }
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    struct Order: Codable, Sendable, Hashable { var id: String; var customer: String; var amount: Double; var currency: String }
    struct CustomerTotal: Codable, Sendable, Hashable { var customer: String; var orders: Int; var amount: Double }

    /// (b) A CSV resource loaded with run params (`rows`, `currency`, `source`), validated, converted to JSON
    /// and upserted into a local JSON-lines store.
    public static let csvOrders = DAG(
        "csv_orders", description: "CSV resource → validate → JSON → local store",
        params: ["rows": "250", "currency": "EUR", "source": ""],
        datasets: [
            DatasetSpec(name: "orders.csv", partitioning: .key, requiresValidation: false),
            DatasetSpec(name: "orders.json", partitioning: .key, requiresValidation: true),
        ]
    ) {
        Op("fetch_csv") { ctx in
            try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
            let target = ctx.outputDirectory.appendingPathComponent("orders.csv")
            if let source = ctx.param("source"), !source.isEmpty {
                let data = try await ctx.sideEffect("download \(source)") { try String(contentsOfFile: source, encoding: .utf8) }
                try data.write(to: target, atomically: true, encoding: .utf8)
            } else {
                let rows = Int(ctx.param("rows") ?? "") ?? 250
                var csv = "id,customer,amount,currency\n"
                for i in 0..<rows {
                    csv += "o-\(1000 + i),c-\(ctx.random(in: 0..<40)),\(Double(ctx.random(in: 100..<50_000)) / 100),\(ctx.param("currency") ?? "EUR")\n"
                }
                try csv.write(to: target, atomically: true, encoding: .utf8)
            }
            return try String(contentsOf: target, encoding: .utf8).split(separator: "\n").count - 1
        }.produces("orders.csv", key: "{run}")
        Op("validate_and_convert", after: "fetch_csv") { ctx in
            guard let url = ctx.chunk("orders.csv")?.url else { throw EngineError("no CSV admitted") }
            let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
            ctx.expect("header is id,customer,amount,currency", lines.first == "id,customer,amount,currency")
            var orders: [Order] = []
            var bad: [Int] = []
            for (n, line) in lines.dropFirst().enumerated() {
                let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                if f.count == 4, let amount = Double(f[2]), amount >= 0 { orders.append(Order(id: f[0], customer: f[1], amount: amount, currency: f[3])) } else { bad.append(n + 2) }
            }
            ctx.expect("every row parses", bad.isEmpty, bad.isEmpty ? "" : "bad rows at lines \(bad.prefix(5))")
            ctx.expect("ids are unique", Set(orders.map(\.id)).count == orders.count)
            ctx.expect("one currency", Set(orders.map(\.currency)).count <= 1)
            try ctx.record("rows", orders.count)
            try ctx.record("total_amount", (orders.map(\.amount).reduce(0, +) * 100).rounded() / 100)
            try FileManager.default.createDirectory(at: ctx.outputDirectory, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(orders).write(to: ctx.outputDirectory.appendingPathComponent("orders.json"))
            return orders.count
        }.consumes("orders.csv", key: "{run}").produces("orders.json", key: "{run}")
        Op("load_store", after: "validate_and_convert") { ctx in
            guard let url = ctx.chunk("orders.json")?.url else { throw EngineError("no JSON admitted") }
            let orders = try JSONDecoder().decode([Order].self, from: Data(contentsOf: url))
            // The local store (one JSON line per order id, upserted) lives outside the run: reading and writing
            // it are side effects, recorded, so a replay gets the same answers and leaves the store alone.
            let store = ctx.outputDirectory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("store")
            let file = store.appendingPathComponent("orders.jsonl")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let lines = try orders.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
            let counts = try await ctx.sideEffect("upsert \(orders.count) orders into store/orders.jsonl") { () -> [String: Int] in
                try FileManager.default.createDirectory(at: store, withIntermediateDirectories: true)
                var existing: [String: String] = [:]
                if let text = try? String(contentsOf: file, encoding: .utf8) {
                    for line in text.split(separator: "\n") {
                        if let o = try? JSONDecoder().decode(Order.self, from: Data(line.utf8)) { existing[o.id] = String(line) }
                    }
                }
                var inserted = 0
                for (o, line) in zip(orders, lines) {
                    if existing[o.id] != line { inserted += 1 }
                    existing[o.id] = line
                }
                try (existing.keys.sorted().map { existing[$0]! }.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
                return ["upserted": inserted, "store_rows": existing.count]
            }
            try ctx.record("store_rows", counts["store_rows"] ?? 0)
            return counts
        }.consumes("orders.json", key: "{run}")
        // Row-level lineage: each customer's total remembers which orders (rows of the chunk) made it.
        Op("customer_totals", after: "validate_and_convert") { ctx in
            let orders = try ctx.rows(chunk: "orders.json", as: Order.self)
            let totals = orders.filter { $0.amount > 0 }.group(by: \.customer) { customer, rows in
                CustomerTotal(customer: customer, orders: rows.count, amount: (rows.map(\.amount).reduce(0, +) * 100).rounded() / 100)
            }
            try ctx.record("customers", totals.count)
            return try ctx.output(totals)
        }.consumes("orders.json", key: "{run}")
    }

    /// (c) A 100-shard extract/load. Roughly 1% of shards fail transiently on their first attempt
    /// (`fail_first_attempt=true`, the default); resubmitting the run recovers them.
    public static let shardETL = DAG(
        "shard_etl", description: "100 shards extracted and loaded in parallel; transient failures recovered by resubmit",
        params: ["shards": "100", "fail_first_attempt": "true"], datasets: [DatasetSpec(name: "shards.extracted", partitioning: .key)],
        maxActiveTasks: 8
    ) {
        for shard in 0..<100 {
            Op("extract_\(shard)") { ctx in
                let key = "\(ctx.runID)/\(shard)"
                let h = UInt64(ContentDigest.sha256(Data(key.utf8)).prefix(8), radix: 16) ?? 0
                if ctx.param("fail_first_attempt") == "true", ctx.attempt == 1, h % 100 == 0 || shard == 37 {
                    throw EngineError("shard \(shard): connection reset by source (transient)")
                }
                let rows = 1000 + Int(h % 500)
                try ctx.record("rows", rows)
                return rows
            }.produces("shards.extracted", key: "{run}/\(shard)")
            Op("load_\(shard)", after: "extract_\(shard)") { ctx in
                let rows = try ctx.input("extract_\(shard)", as: Int.self)
                ctx.expect("rows loaded = rows extracted", true, "\(rows) rows")
                return rows
            }.consumes("shards.extracted", key: "{run}/\(shard)")
        }
        Op("summary") { ctx in
            try ctx.inputTasks.map { try ctx.input($0, as: Int.self) }.reduce(0, +)
        }.after((0..<100).map { "load_\($0)" })
    }

    /// (d) A numeric dataflow with branching in which one batch silently produces a wrong value: batch 7's
    /// unit conversion divides by 10,000 instead of 1,000, so its total is ten times too small, passes every
    /// check and is published like any other. Batches 4 and 8 are genuinely heavy and routed for review.
    /// No exception is thrown; only the recorded values show what went wrong.
    public static let numericFlow = DAG(
        "numeric_flow", description: "Numeric batches → convert → aggregate → branch on threshold; batch 7 goes silently wrong",
        params: ["batch": "1", "threshold_kg": "2000"],
        datasets: [DatasetSpec(name: "weights.raw", partitioning: .sequence), DatasetSpec(name: "weights.kg", partitioning: .sequence)]
    ) {
        Op("read_batch") { ctx in
            let batch = Int(ctx.param("batch") ?? "1") ?? 1
            var rng = SplitMix64(seed: UInt64(batch) &* 0x9E37_79B9)
            let scale = batch % 4 == 0 ? 2.0 : 1.0
            let grams = (0..<20).map { _ in Double(50_000 + rng.next(below: 20_000)) * scale }
            try ctx.record("grams", grams)
            return grams
        }.produces("weights.raw", key: "{param.batch}")
        Op("convert_units", after: "read_batch") { ctx in
            let grams = try ctx.input("read_batch", as: [Double].self)
            let batch = Int(ctx.param("batch") ?? "1") ?? 1
            let factor = batch == 7 ? 0.0001 : 0.001  // the silent bug
            try ctx.record("factor", factor)
            let kg = grams.map { ($0 * factor * 1000).rounded() / 1000 }
            try ctx.record("kg", kg)
            return kg
        }.consumes("weights.raw", key: "{param.batch}").produces("weights.kg", key: "{param.batch}")
        Op("aggregate", after: "convert_units") { ctx in
            let kg = try ctx.input("convert_units", as: [Double].self)
            let total = (kg.reduce(0, +) * 1000).rounded() / 1000
            try ctx.record("total_kg", total)
            try ctx.record("mean_kg", (total / Double(kg.count) * 1000).rounded() / 1000)
            return total
        }.consumes("weights.kg", key: "{param.batch}")
        Branch("route", after: "aggregate") { ctx in
            let total = try ctx.input("aggregate", as: Double.self)
            return total > Double(ctx.param("threshold_kg") ?? "2000") ?? 2000 ? ["flag_heavy"] : ["publish"]
        }
        Op("publish", after: "route") { ctx in
            let total = try ctx.input("aggregate", as: Double.self)
            try ctx.record("published_total_kg", total)
            return total
        }.after(["aggregate"])
        Op("flag_heavy", after: "route") { ctx in
            try ctx.record("flagged", true)
            return "heavy batch routed for review"
        }
        Op("report", after: "publish", "flag_heavy") { ctx in ctx.inputTasks }.rule(.noneFailed)
    }
}
