import ArgumentParser
import ClewBenchmarks
import Foundation

extension Bench {
    /// `clew bench python`: what `@clew.trace` costs a pure-Python ETL function, in the same process,
    /// capture off against on.
    struct PythonBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "python",
            abstract: "What @clew.trace costs a pure-Python ETL function (parse CSV rows, filter, group, aggregate): capture off against on.",
            discussion: """
                Runs the function on the same rows without and with capture in one Python process (the one given by \
                --python, which must import Clew's package: pip install ./python; tools/setup.sh installs it into \
                ~/.cache/clew/venvs/clew-python), medians of --repetitions, and reports capture_overhead = on/off - 1 \
                (goal <= 1.0) and the steps one traced call writes. Also the line-by-line fallback (for what cannot be \
                compiled again: sys.monitoring on Python 3.12+, else sys.settrace) on a tenth of the rows, for comparison; and the same body as a Swift DSL \
                closure with #traced against it without, in this process (swift_capture_overhead, goal <= 0.3).
                """)

        @OptionGroup var output: OutputOptions

        @Option(name: .long, help: "CSV rows the function parses.")
        var rows = 100_000

        @Option(name: .long, help: "Repetitions (medians are reported).")
        var repetitions = 5

        @Option(name: .long, help: "The Python interpreter (it must import clew).")
        var python = "python3"

        func validate() throws {
            if rows < 100 { throw ValidationError("--rows must be at least 100") }
            if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        }

        struct Figures: Codable {
            var rows: Int
            var repetitions: Int
            var python: String
            var captureOffSeconds: Double
            var captureOnSeconds: Double
            var captureOverhead: Double
            var steps: Int
            var stepBytes: Int
            /// The line-by-line fallback: `sys.monitoring` or `sys.settrace` (``fallbackBackend``).
            var fallbackOverhead: Double
            var fallbackBackend: String
            /// The same for a Swift DSL closure with `#traced` (filled in by this command, not the script).
            var swiftOffSeconds: Double?
            var swiftOnSeconds: Double?
            var swiftOverhead: Double?
            var swiftSteps: Int?

            enum CodingKeys: String, CodingKey {
                case rows, repetitions, python, captureOffSeconds = "capture_off_s", captureOnSeconds = "capture_on_s"
                case captureOverhead = "capture_overhead", steps, stepBytes = "step_bytes", fallbackOverhead = "fallback_overhead"
                case fallbackBackend = "fallback_backend"
                case swiftOffSeconds = "swift_capture_off_s", swiftOnSeconds = "swift_capture_on_s", swiftOverhead = "swift_capture_overhead"
                case swiftSteps = "swift_steps"
            }
        }

        func run() async throws {
            try await reportingErrors {
                let script = FileManager.default.temporaryDirectory.appendingPathComponent("clew-bench-python-\(getpid()).py")
                try Data(Self.script.utf8).write(to: script)
                defer { try? FileManager.default.removeItem(at: script) }
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                p.arguments = [python, script.path, String(rows), String(repetitions)]
                let out = Pipe(), err = Pipe()
                p.standardOutput = out
                p.standardError = err
                do { try p.run() } catch { throw CLIFailure(message: "cannot start \(python): \(error)") }
                Terminal.progress("bench: \(rows) rows, \(repetitions) repetitions in \(python)")
                let stdout = out.fileHandleForReading.readDataToEndOfFile()
                let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                Terminal.endProgress()
                guard p.terminationStatus == 0 else {
                    if stderr.contains("No module named 'clew'") {
                        throw CLIFailure(
                            message: "\(python) cannot import clew: install Clew's Python package there (pip install ./python), or give --python ~/.cache/clew/venvs/clew-python/bin/python3 (tools/setup.sh installs it)")
                    }
                    throw CLIFailure(message: "the benchmark failed in \(python): \(stderr.split(separator: "\n").suffix(3).joined(separator: " | "))")
                }
                var f: Figures
                do { f = try JSONDecoder().decode(Figures.self, from: stdout) } catch {
                    throw CLIFailure(message: "the benchmark printed no figures: \(String(decoding: stdout, as: UTF8.self).prefix(200))")
                }
                Terminal.progress("bench: the same in a Swift DSL closure with #traced")
                let swift = try await MacroBenchmark.run(rows: rows, repetitions: repetitions)
                Terminal.endProgress()
                f.swiftOffSeconds = swift.offSeconds
                f.swiftOnSeconds = swift.onSeconds
                f.swiftOverhead = swift.overhead
                f.swiftSteps = swift.steps
                if output.json {
                    print(try JSONOutput.text(f))
                } else {
                    print("a pure-Python ETL function over \(f.rows) CSV rows (parse, filter, group, aggregate), medians of \(f.repetitions), \(f.python)")
                    print(String(format: "capture off %.3f s, on %.3f s: capture_overhead %.2f (goal <= 1.0); %d steps (%d bytes) per call", f.captureOffSeconds, f.captureOnSeconds, f.captureOverhead, f.steps, f.stepBytes))
                    print(String(format: "the line-by-line fallback (%@) on %d rows: overhead %.1f", f.fallbackBackend, f.rows / 10, f.fallbackOverhead))
                    print(String(format: "Swift, #traced: off %.3f s, on %.3f s: swift_capture_overhead %.2f (goal <= 0.3); %d steps per call", swift.offSeconds, swift.onSeconds, swift.overhead, swift.steps))
                }
            }
        }

        /// The benchmark, run by the chosen interpreter; prints the figures as JSON.
        static let script = #"""
            import csv, io, json, os, statistics, sys, time
            import clew

            def etl(text, min_amount):
                reader = csv.reader(io.StringIO(text))
                header = next(reader)
                by_region = {}
                kept = 0
                for row in reader:
                    amount = float(row[2])
                    if amount < min_amount:
                        continue
                    region = row[1]
                    kept += 1
                    agg = by_region.get(region)
                    if agg is None:
                        agg = [0, 0.0]
                        by_region[region] = agg
                    agg[0] += 1
                    agg[1] += amount
                result = {r: round(v[1] / v[0], 2) for r, v in sorted(by_region.items())}
                return kept, result

            class Sink:
                lines = 0
                size = 0
                def write(self, s):
                    Sink.lines += s.count("\n")
                    Sink.size += len(s)
                def flush(self):
                    pass

            def data(n):
                return "\n".join(["id,region,amount"] + [f"{i},r{i % 12},{(i * 37) % 1000 - 50}.5" for i in range(n)])

            def median_times(fn, text, reps):
                times = []
                result = None
                for _ in range(reps):
                    t = time.perf_counter()
                    result = fn(text, 0.0)
                    times.append(time.perf_counter() - t)
                return statistics.median(times), result

            rows, reps = int(sys.argv[1]), int(sys.argv[2])
            text = data(rows)
            clew._out = Sink()
            os.environ["CLEW_RUN_ID"] = "bench"
            traced = clew.trace(etl)
            Sink.lines = Sink.size = 0
            got = traced(text, 0.0)
            steps, size = Sink.lines, Sink.size
            assert got == etl(text, 0.0), "the traced function returned another result"
            # Off and on alternate, so a machine that slows down or speeds up weighs on both alike.
            offs, ons = [], []
            for _ in range(reps):
                offs.append(median_times(etl, text, 1)[0])
                ons.append(median_times(traced, text, 1)[0])
            off, on = statistics.median(offs), statistics.median(ons)

            # The fallback (what cannot be compiled again is followed line by line: sys.monitoring on
            # 3.12+, sys.settrace before), on a tenth of the rows.
            small = data(rows // 10)
            s_off, _ = median_times(etl, small, max(1, reps // 2))
            lines = clew.trace(etl)
            lines._fast = None
            s_on, _ = median_times(lines, small, max(1, reps // 2))
            print(json.dumps({
                "rows": rows, "repetitions": reps, "python": sys.version.split()[0],
                "capture_off_s": off, "capture_on_s": on, "capture_overhead": on / off - 1,
                "steps": steps, "step_bytes": size, "fallback_overhead": s_on / s_off - 1,
                "fallback_backend": clew.backend(),
            }))
            """#
    }
}
