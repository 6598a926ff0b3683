public import ClewCore
import Foundation

/// When a DAG runs: a cron expression or a fixed interval. Each firing covers one *partition*, the interval
/// from one firing to the next, keyed by its start (Airflow's `data_interval_start`), and the run for a
/// partition starts once the partition has ended.
public enum ScheduleSpec: Sendable, Hashable, Codable {
    case cron(CronExpression)
    /// Every `seconds`, aligned to the Unix epoch.
    case interval(seconds: Int64)

    /// Parses `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`, `every 15m` (s, m, h, d) or five cron fields.
    /// - Throws: ``ScheduleError`` naming the bad field.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("every ") {
            self = .interval(seconds: try Self.parseDuration(String(t.dropFirst(6)), what: "interval"))
        } else {
            self = .cron(try CronExpression(t))
        }
    }

    /// Parses durations like `90s`, `15m`, `1h`, `2d`, `500ms` (a bare number is seconds); returns seconds.
    public static func parseDuration(_ text: String, what: String) throws -> Int64 {
        let ms = try parseMillis(text, what: what)
        guard ms % 1000 == 0, ms > 0 else {
            throw ScheduleError("\(what) '\(text)' must be a positive whole number of seconds")
        }
        return ms / 1000
    }

    /// The longest duration a schedule, timeout, SLA or delay may name: 100 years (in milliseconds), so
    /// that every sum and product of times in microseconds stays far inside Int64.
    public static let maxMillis: Int64 = 100 * 366 * 86_400_000

    /// Parses durations like `500ms`, `90s`, `15m`, `1h`, `2d` into milliseconds (at most ``maxMillis``).
    public static func parseMillis(_ text: String, what: String) throws -> Int64 {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        var millis: Int64?
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            if let n = Int64(t.dropLast(suffix.count)), n >= 0 {
                // n * factor overflowed and trapped for `99999999999999999d` (a pipeline file's sla:).
                let (product, overflow) = n.multipliedReportingOverflow(by: factor)
                millis = overflow ? .max : product
            }
            break
        }
        if millis == nil, let n = Int64(t), n >= 0 {
            let (product, overflow) = n.multipliedReportingOverflow(by: 1000)
            millis = overflow ? .max : product
        }
        guard let millis else { throw ScheduleError("\(what) '\(text)' is not a duration (use e.g. 500ms, 30s, 15m, 1h, 1d)") }
        guard millis <= maxMillis else { throw ScheduleError("\(what) '\(text)' is longer than 100 years") }
        return millis
    }

    /// The first firing strictly after `micros`.
    public func next(after micros: Int64) -> Int64? {
        switch self {
        case .interval(let seconds):
            // A decoded definition is outside input too: no step that overflows, none below one second.
            let (step, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
            guard !overflow, step > 0 else { return nil }
            let (next, past) = (micros.floorDiv(step) + 1).multipliedReportingOverflow(by: step)
            return past ? nil : next
        case .cron(let cron):
            return cron.next(after: micros)
        }
    }

    /// The partition (start, end) that ends at or before `micros` and is the latest such.
    public func latestPartition(endingBy micros: Int64, notBefore start: Int64) -> (start: Int64, end: Int64)? {
        partitions(from: start, endingBy: micros).last
    }

    /// Every partition starting at a firing ≥ `from` and ending by `until`, in order (at most 100,000).
    public func partitions(from: Int64, endingBy until: Int64) -> [(start: Int64, end: Int64)] {
        var out: [(Int64, Int64)] = []
        guard var s = next(after: from - 1) else { return [] }
        while out.count < 100_000, let e = next(after: s), e <= until {
            out.append((s, e))
            s = e
        }
        return out
    }

    public var description: String {
        switch self {
        case .cron(let c): return c.text
        case .interval(let s): return "every \(s)s"
        }
    }
}

/// A bad schedule, cron expression or duration.
public struct ScheduleError: ClewError {
    public var description: String
    public init(_ description: String) { self.description = description }
    public var category: ErrorCategory { .invalidInput }
}

/// A five-field cron expression (minute hour day-of-month month day-of-week), UTC, with `*`, lists,
/// ranges, steps, month and weekday names, and the `@hourly`-style macros.
public struct CronExpression: Sendable, Hashable, Codable {
    public let text: String
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let dayRestricted: Bool, weekdayRestricted: Bool

    enum CodingKeys: String, CodingKey { case text, minutes, hours, days, months, weekdays, dayRestricted, weekdayRestricted }

    /// Sets encode sorted: a DAG's version is the hash of its encoded definition and must not depend on
    /// the process's hash seed (it did: a scheduled DAG got a new version in every process).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(text, forKey: .text)
        try c.encode(minutes.sorted(), forKey: .minutes)
        try c.encode(hours.sorted(), forKey: .hours)
        try c.encode(days.sorted(), forKey: .days)
        try c.encode(months.sorted(), forKey: .months)
        try c.encode(weekdays.sorted(), forKey: .weekdays)
        try c.encode(dayRestricted, forKey: .dayRestricted)
        try c.encode(weekdayRestricted, forKey: .weekdayRestricted)
    }

    public init(_ text: String) throws {
        let macros = [
            "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
            "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
        ]
        let expanded = macros[text.lowercased()] ?? text
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ScheduleError("cron '\(text)' has \(fields.count) fields; expected 5 (minute hour day month weekday)")
        }
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        self.text = text
        minutes = try Self.field(fields[0], name: "minute", range: 0...59, names: [], base: 0, cron: text)
        hours = try Self.field(fields[1], name: "hour", range: 0...23, names: [], base: 0, cron: text)
        days = try Self.field(fields[2], name: "day of month", range: 1...31, names: [], base: 1, cron: text)
        months = try Self.field(fields[3], name: "month", range: 1...12, names: monthNames, base: 1, cron: text)
        var wd = try Self.field(fields[4], name: "day of week", range: 0...7, names: dayNames, base: 0, cron: text)
        if wd.remove(7) != nil { wd.insert(0) }
        weekdays = wd
        dayRestricted = fields[2] != "*"
        weekdayRestricted = fields[4] != "*"
    }

    static func field(
        _ text: String, name: String, range: ClosedRange<Int>, names: [String], base: Int, cron: String
    ) throws -> Set<Int> {
        func value(_ s: Substring) throws -> Int {
            if let n = Int(s), range.contains(n) { return n }
            if let i = names.firstIndex(of: s.lowercased()) { return i + base }
            throw ScheduleError("cron '\(cron)': \(name) field '\(text)': '\(s)' is not in \(range.lowerBound)-\(range.upperBound)")
        }
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            var rangePart = part
            var step = 1
            if let slash = part.firstIndex(of: "/") {
                guard let s = Int(part[part.index(after: slash)...]), s > 0 else {
                    throw ScheduleError("cron '\(cron)': \(name) field '\(text)': bad step in '\(part)'")
                }
                step = s
                rangePart = part[..<slash]
            }
            let lo: Int, hi: Int
            if rangePart == "*" {
                (lo, hi) = (range.lowerBound, range.upperBound)
            } else if let dash = rangePart.firstIndex(of: "-") {
                lo = try value(rangePart[..<dash])
                hi = try value(rangePart[rangePart.index(after: dash)...])
                guard lo <= hi else { throw ScheduleError("cron '\(cron)': \(name) field '\(text)': range \(rangePart) is backwards") }
            } else if rangePart.isEmpty {
                throw ScheduleError("cron '\(cron)': \(name) field '\(text)' has an empty item")
            } else {
                lo = try value(rangePart)
                hi = step > 1 ? range.upperBound : lo
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    /// The first matching minute strictly after `micros` (UTC), searching up to 5 years ahead.
    public func next(after micros: Int64) -> Int64? {
        var minute = micros.floorDiv(60_000_000) + 1
        let limit = minute + 5 * 366 * 1440
        while minute < limit {
            let c = CivilTime(minutes: minute)
            if !months.contains(c.month) {
                minute = CivilTime.minutes(year: c.month == 12 ? c.year + 1 : c.year, month: c.month % 12 + 1, day: 1)
                continue
            }
            let dayOK: Bool
            switch (dayRestricted, weekdayRestricted) {
            case (true, true): dayOK = days.contains(c.day) || weekdays.contains(c.weekday)
            case (true, false): dayOK = days.contains(c.day)
            case (false, true): dayOK = weekdays.contains(c.weekday)
            case (false, false): dayOK = true
            }
            if !dayOK {
                minute = (minute.floorDiv(1440) + 1) * 1440
                continue
            }
            if !hours.contains(c.hour) {
                minute = (minute.floorDiv(60) + 1) * 60
                continue
            }
            if minutes.contains(c.minute) { return minute * 60_000_000 }
            minute += 1
        }
        return nil
    }
}

/// UTC calendar fields of a minute since the epoch.
struct CivilTime {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int, weekday: Int

    init(minutes: Int64) {
        let days = minutes.floorDiv(1440)
        let rem = Int(minutes - days * 1440)
        hour = rem / 60
        minute = rem % 60
        weekday = Int((days + 4).floorMod(7))  // 1970-01-01 was a Thursday
        let z = days + 719_468
        let era = z.floorDiv(146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = Int(doy - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
    }

    static func minutes(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = y.floorDiv(400)
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return (era * 146_097 + doe - 719_468) * 1440
    }
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 { self >= 0 ? self / d : (self - d + 1) / d }
    func floorMod(_ d: Int64) -> Int64 { self - floorDiv(d) * d }
}

/// Partition keys and timestamps in the compact UTC form used in run ids and chunk keys.
public enum PartitionKey {
    /// `2026-11-21T10:00:00Z` for a time in microseconds.
    public static func string(micros: Int64) -> String {
        let iso = ISO8601.string(micros: micros)  // 2026-11-21T10:00:00.000000Z
        return String(iso.prefix(19)) + "Z"
    }

    /// Parses `2026-11-21`, `2026-11-21T10:00Z`, `2026-11-21T10:00:00Z` (UTC) into microseconds; years
    /// 1 to 9999. Anything else is nil: this parses outside input (`as_of`, `--partition`, chunk keys),
    /// and `T` alone or a year of 15 digits once trapped here, taking a server down.
    public static func parse(_ text: String) -> Int64? {
        let t = text.hasSuffix("Z") ? String(text.dropLast()) : text
        let parts = t.split(separator: "T", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, parts.count == 1 || !parts[1].isEmpty else { return nil }
        let date = first.split(separator: "-", omittingEmptySubsequences: false)
        guard date.count == 3, date[0].count == 4, let y = Int(date[0]), let m = Int(date[1]), let d = Int(date[2]),
            (1...9999).contains(y), (1...12).contains(m), (1...31).contains(d)
        else { return nil }
        var seconds: Int64 = 0
        if parts.count == 2 {
            let time = parts[1].split(separator: ":")
            guard (2...3).contains(time.count), let h = Int(time[0]), let mi = Int(time[1]),
                (0...23).contains(h), (0...59).contains(mi)
            else { return nil }
            let s = time.count == 3 ? Int(time[2]) : 0
            guard let s, (0...59).contains(s) else { return nil }
            seconds = Int64(h * 3600 + mi * 60 + s)
        }
        return (CivilTime.minutes(year: y, month: m, day: d) * 60 + seconds) * 1_000_000
    }
}
