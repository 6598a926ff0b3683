"""Unit tests of the clew package, run by tools/test.sh (python3 -m unittest discover -s python/tests).
Each test runs a small script in a child process, as Clew runs a task, and reads what it printed."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run(source, env=None, check=True):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "task.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(source))
        full = {k: v for k, v in os.environ.items() if not k.startswith("CLEW_")}
        full["PYTHONPATH"] = PACKAGE
        full.update(env or {})
        p = subprocess.run([sys.executable, path], capture_output=True, text=True, env=full, cwd=d)
        if check and p.returncode != 0:
            raise AssertionError(p.stderr)
        return p


def steps(stdout):
    out = []
    for line in stdout.splitlines():
        if line.startswith("::set-variable "):
            head, value = line[len("::set-variable "):].split("::", 1)
            props = dict(item.split("=", 1) for item in head.split(","))
            props["value"] = value
            out.append(props)
    return out


TASK = {"CLEW_RUN_ID": "r1", "CLEW_SEED": "42"}


class Recording(unittest.TestCase):
    def test_outside_clew_nothing_is_written(self):
        p = run("""
            import clew
            @clew.trace
            def f(x):
                y = x + 1
                return y
            print(f(1), clew.record("a", 5), clew.side_effect("s", lambda: 3))
        """)
        self.assertEqual(p.stdout.strip(), "2 5 3")

    def test_trace_records_assignments_with_lines_and_summarizes_loops(self):
        p = run("""
            import clew
            @clew.trace(samples=2)
            def f(rows):
                total = 0
                for r in rows:
                    total += r
                seen = {}
                seen["k"] = total
                return total
            f(list(range(10)))
        """, TASK)
        s = steps(p.stdout)
        names = [x["name"] for x in s]
        self.assertEqual(names[0], "rows")  # a small argument, at the function
        totals = [x for x in s if x["name"] == "total"]
        # `total = 0`, then the first 2 runs of `total += r`, then its last value and how often it ran.
        self.assertEqual([t["value"] for t in totals[:3]], ["0", "0", "1"])
        last = totals[-1]
        self.assertEqual((last["value"], last["count"]), ("45", "10"))
        self.assertTrue(all(t["at"].startswith("task.py%3A") for t in totals))
        seen = [x["value"] for x in s if x["name"] == "seen"]
        self.assertEqual(seen, ["{}", '{"k":45}'])  # changed in place, recorded

    def test_functions_that_cannot_be_compiled_again_are_traced_line_by_line(self):
        p = run("""
            import clew
            def outer():
                k = 3
                @clew.trace
                def inner(x):  # a closure (over k): followed by sys.monitoring or sys.settrace
                    y = x * k
                    return y
                return inner(2)
            print(outer())
        """, TASK)
        self.assertEqual([(x["name"], x["value"]) for x in steps(p.stdout)], [("x", "2"), ("y", "6")])

    def test_errors_keep_their_lines_and_the_summary_is_still_written(self):
        p = run("""
            import clew
            @clew.trace(samples=1)
            def f(rows):
                for r in rows:
                    last = 10 / r
                return last
            f([5, 2, 0])
        """, TASK, check=False)
        self.assertIn('line 6, in f', p.stderr)
        self.assertIn("ZeroDivisionError", p.stderr)
        r = [x for x in steps(p.stdout) if x["name"] == "r"]
        self.assertEqual((r[-1]["value"], r[-1]["count"]), ("0", "3"))

    def test_context_manager_traces_the_block(self):
        p = run("""
            import clew
            def g():
                a = 1
                with clew.trace():
                    b = a + 1
                    c = b * 3
                d = 0
                return c
            g()
        """, TASK)
        self.assertEqual([(x["name"], x["value"]) for x in steps(p.stdout)], [("b", "2"), ("c", "6")])

    def test_variables_are_read_from_the_environment_the_engine_sets(self):
        p = run("""
            import clew
            print(clew.variable("region.config"), clew.variable("absent", "fallback"))
        """, {**TASK, "CLEW_VAR_REGION_CONFIG": '{"eu": 1}'})
        self.assertEqual(p.stdout.strip(), '{"eu": 1} fallback')

    def test_values_and_properties_are_escaped(self):

        p = run("""
            import clew
            clew.record("note", "50% done\\nnext: a, b")
            clew.record("a,b c", 1)
        """, TASK)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], '::set-variable name=note,kind=variable,at=task.py%3A3::"50%25 done\\nnext: a, b"')
        self.assertEqual(lines[1], "::set-variable name=a%2Cb%20c,kind=variable,at=task.py%3A4::1")

    def test_random_is_seeded_by_the_attempt(self):
        first = run("import clew; print(clew.random())", TASK).stdout
        again = run("import clew; print(clew.random())", TASK).stdout
        other = run("import clew; print(clew.random())", {**TASK, "CLEW_SEED": "43"}).stdout
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)


GENERATORS = """
    import asyncio, clew, sys
    @clew.trace(samples=1)
    def squares(n):
        for i in range(n):
            sq = i * i
            yield sq
    def outer():
        k = 2
        @clew.trace(samples=1)
        def scaled(n):  # a closure
            for i in range(n):
                v = i * k
                yield v
        @clew.trace
        async def later(x):  # a coroutine closure
            y = x * k
            await asyncio.sleep(0)
            z = y + 1
            return z
        return scaled, later
    scaled, later = outer()
    print(sum(squares(3)), sum(scaled(4)), asyncio.run(later(3)), file=sys.stderr)
"""
GENERATOR_STEPS = [
    ("n", "3", "task.py:3", None), ("i", "0", "task.py:5", None), ("sq", "0", "task.py:6", None),
    ("i", "2", "task.py:5", "3"), ("sq", "4", "task.py:6", "3"),
    ("n", "4", "task.py:10", None), ("i", "0", "task.py:12", None), ("v", "0", "task.py:13", None),
    ("i", "3", "task.py:12", "4"), ("v", "6", "task.py:13", "4"),
    ("x", "3", "task.py:15", None), ("y", "6", "task.py:17", None), ("z", "7", "task.py:19", None),
]


def interpreters():
    """This interpreter and, for the sys.monitoring backend, each Python 3.12+ that pyenv has
    (tools/test.sh requires one)."""
    found = [sys.executable]
    root = os.path.expanduser("~/.pyenv/versions")
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name, "bin", "python3")
        if name.split(".")[:2] in (["3", "12"], ["3", "13"], ["3", "14"]) and os.path.exists(path):
            found.append(path)
    return found


class Backends(unittest.TestCase):
    """What cannot be compiled again is followed by sys.monitoring on 3.12+, sys.settrace before:
    the same steps either way, for functions, generators and coroutines."""

    def steps_with(self, python, source, env):
        p = subprocess.run([python, "-c", textwrap.dedent(source)], capture_output=True, text=True,
                           env={**{k: v for k, v in os.environ.items() if not k.startswith("CLEW_")},
                                "PYTHONPATH": PACKAGE, **TASK, **env})
        self.assertEqual(p.returncode, 0, p.stderr)
        return [(x["name"], x["value"], x["at"].replace("%3A", ":").replace("<string>", "task.py"),
                 x.get("count")) for x in steps(p.stdout)], p.stderr

    def test_generators_and_coroutines_are_traced_as_they_run(self):
        for python in interpreters():
            for forced in ({}, {"CLEW_TRACE_BACKEND": "settrace"}):
                with self.subTest(python=python, forced=forced):
                    got, err = self.steps_with(python, GENERATORS, forced)
                    self.assertIn("5 12 7", err)
                    self.assertEqual(got, GENERATOR_STEPS)

    def test_the_backend_is_sys_monitoring_where_python_has_it(self):
        newer = [p for p in interpreters() if p != sys.executable or sys.version_info >= (3, 12)]
        self.assertTrue(newer, "no Python 3.12+ found to test the sys.monitoring backend (pyenv ~/.pyenv/versions/3.12.*)")
        source = """
            import clew, sys
            print(clew.backend(), file=sys.stderr)
            def outer():
                k = 1
                @clew.trace
                def f(x):
                    t = sys.gettrace()  # no trace function for the whole thread
                    return x + k
                return f
            outer()(1)
        """
        for python in newer:
            got, err = self.steps_with(python, source, {})
            self.assertEqual(err.strip(), "sys.monitoring")
            self.assertEqual(got, [("x", "1", "task.py:6", None), ("t", "null", "task.py:8", None)])
            got, err = self.steps_with(python, source, {"CLEW_TRACE_BACKEND": "settrace"})
            self.assertEqual(err.strip(), "sys.settrace")
            self.assertEqual([x[0] for x in got], ["x", "t"])
            self.assertNotEqual(got[1][1], "null")


def module_level(rows, factor=2):
    return factor


class Calls(unittest.TestCase):
    def test_a_call_is_replayable_only_with_json_arguments_under_the_limit(self):
        sys.path.insert(0, PACKAGE)
        import clew

        traced = clew.trace(module_level)
        call = traced._call_record(([[1, 2]],), {})
        self.assertEqual(call["function"], "module_level")
        self.assertEqual(call["arguments"], {"rows": [[1, 2]], "factor": 2})
        self.assertTrue(call["file"].endswith("test_clew.py"))
        self.assertIsNone(traced._call_record((object(),), {}))
        self.assertIsNone(traced._call_record(("x" * (clew.trace.CALL_LIMIT + 1),), {}))

        def nested(x):
            return x

        self.assertIsNone(clew.trace(nested)._call_record((1,), {}))  # not found again by its name


class Replaying(unittest.TestCase):
    def replay(self, source, recorded):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(recorded, f)
        try:
            return run(source, {**TASK, "CLEW_REPLAY_STEPS": f.name}, check=False)
        finally:
            os.unlink(f.name)

    def test_now_and_side_effects_come_back_as_recorded(self):
        p = self.replay("""
            import clew
            t = clew.now()
            v = clew.side_effect("rate", lambda: 1 / 0)  # not called in a replay
            print(t.isoformat(), v)
        """, [{"step": 1, "kind": "now", "name": "now", "value": "2026-01-02T03:04:05.678Z"},
              {"step": 2, "kind": "side_effect", "name": "rate", "value": 0.9}])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2026-01-02T03:04:05.678000+00:00 0.9", p.stdout)
        self.assertEqual([x["kind"] for x in steps(p.stdout)], ["now", "side_effect"])

    def test_steps_are_numbered_after_the_engines_own(self):
        # The engine read two Variables (steps 1, 2) before the command started: the task's clock is step 3.
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump([{"step": 1, "kind": "variable_read", "name": "region", "value": "eu"},
                       {"step": 2, "kind": "variable_read", "name": "limits", "value": "{}"},
                       {"step": 3, "kind": "now", "name": "now", "value": "2026-01-02T03:04:05Z"}], f)
        try:
            p = run("""
                import clew
                print(clew.now().year)
            """, {**TASK, "CLEW_REPLAY_STEPS": f.name, "CLEW_STEP_BASE": "2"}, check=False)
        finally:
            os.unlink(f.name)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines()[-1], "2026")

    def test_a_step_the_record_does_not_have_there_stops_the_task(self):

        p = self.replay("""
            import clew
            clew.side_effect("other", lambda: 1)
        """, [{"step": 1, "kind": "now", "name": "now", "value": "2026-01-02T03:04:05.678Z"}])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at step 1 the task asked for side_effect 'other' where the record has now 'now'", p.stderr)


if __name__ == "__main__":
    unittest.main()
