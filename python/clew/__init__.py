"""Record what a Python task does for Clew's ledger, and read it back when Clew replays the task.

In a Clew command task (``CLEW_RUN_ID`` is set) every call writes one line of the command-task line
protocol (docs/command-tasks.md) to stdout, which the engine records as the attempt's next step. Run
by ``clew replay`` (``CLEW_REPLAY_STEPS`` names the recorded steps), :func:`now` and
:func:`side_effect` return what the recording holds instead of asking the outside world again, and
:func:`random` draws from the attempt's recorded seed, so a deterministic task replays ``identical``.
Outside Clew nothing is written and every function just returns its value.
"""

import datetime as _datetime
import functools as _functools
import inspect as _inspect
import json as _json
import os as _os
import random as _random
import sys as _sys
import threading as _threading

from . import _rewrite

__all__ = [
    "record", "expect", "output", "side_effect", "now", "random", "chunk", "trace", "ReplayMismatch",
    "active", "replaying", "variable", "backend",
]

#: How many changes of one variable at one line are recorded before the rest are summarized: the
#: first ``LOOP_SAMPLES`` are steps of their own, then the last one with how many there were.
LOOP_SAMPLES = 3

_lock = _threading.RLock()
#: Steps the engine took before the command ran (its reads of the task's Variables and Connections):
#: this process's steps are numbered after them, as the engine numbers them.
_step = int(_os.environ.get("CLEW_STEP_BASE", "0")) if _os.environ.get("CLEW_STEP_BASE", "").isdigit() else 0
_rng = None
_replay = None
_out = _sys.stdout


class ReplayMismatch(RuntimeError):
    """A replayed task asked for a step the recording does not have there (it is not deterministic)."""


def active():
    """Whether this process runs as a Clew task (and so records)."""
    return bool(_os.environ.get("CLEW_RUN_ID"))


def replaying():
    """Whether this process is a task being replayed by ``clew replay``."""
    return bool(_os.environ.get("CLEW_REPLAY_STEPS"))


def _recorded():
    global _replay
    if _replay is None:
        path = _os.environ.get("CLEW_REPLAY_STEPS")
        _replay = {}
        if path:
            with open(path, encoding="utf-8") as f:
                for s in _json.load(f):
                    _replay[int(s["step"])] = s
    return _replay


def _escape(text, prop=False):
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C").replace(" ", "%20")
    return text


def _json_text(value):
    try:
        return _json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_fallback)
    except (TypeError, ValueError):
        return _json.dumps(repr(value))


def _fallback(value):
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, (_datetime.datetime, _datetime.date)):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return repr(value)


def _emit(command, props, message):
    head = "::" + command
    if props:
        head += " " + ",".join(f"{k}={_escape(str(v), prop=True)}" for k, v in props.items() if v is not None)
    _out.write(f"{head}::{_escape(message)}\n")


def _step_line(name, value_text, kind="variable", source=None, count=None):
    """Writes one step and returns its number (the engine numbers steps in the order it reads them).
    In an Airflow task with ``CLEW_URL`` set, the step is kept for :func:`_send` instead."""
    global _step
    with _lock:
        _step += 1
        if active():
            _emit("set-variable", {"name": name, "kind": kind, "at": source, "count": count}, value_text)
        elif _airflow.target() is not None:
            step = {"name": name, "kind": kind, "value": _json.loads(value_text)}
            if source:
                step["source"] = source
            if count:
                step["count"] = count
            _airflow.pending.append(step)
            if _airflow.depth == 0:
                _airflow.send()
        return _step


class _Airflow:
    """Steps of Python code running in an Airflow task, sent to ``clew serve`` (``CLEW_URL``, with the
    bearer token ``CLEW_TOKEN``) as an OpenLineage RUNNING event of that task's run, with the ids its
    OpenLineage provider gives it, in a ``clew_steps`` run facet: they become the attempt's steps, next
    to the lineage the provider sends. A traced call sends its steps when it ends; other calls at once."""

    PRODUCER = "https://github.com/clew/clew/tree/main/python"
    FACET_SCHEMA = "https://github.com/clew/clew/tree/main/docs/python.md#clew_steps"
    PARENT_SCHEMA = "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet"
    RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

    def __init__(self):
        self.pending = []
        self.call = None  # the outermost traced call: what `clew replay-call` runs again
        self.depth = 0
        self._ids = None
        self._key = None

    def target(self):
        """The task's OpenLineage ids, or None outside an Airflow task or without ``CLEW_URL``."""
        if not _os.environ.get("CLEW_URL"):
            return None
        try:
            try:
                from airflow.sdk import get_current_context  # Airflow 3
            except ImportError:
                from airflow.operators.python import get_current_context  # Airflow 2
            ti = get_current_context()["ti"]
        except Exception:
            return None
        key = (ti.dag_id, ti.task_id, str(getattr(ti, "run_id", "")), getattr(ti, "try_number", 0))
        if self._key != key:
            from airflow.providers.openlineage.plugins import macros
            self._ids = {
                "run": macros.lineage_run_id(ti), "job": macros.lineage_job_name(ti), "namespace": macros.lineage_job_namespace(),
                "root_run": macros.lineage_root_run_id(ti), "root_job": macros.lineage_root_job_name(ti),
                "root_namespace": macros.lineage_root_job_namespace(ti),
            }
            self._key = key
        return self._ids

    def send(self):
        ids, steps, call = self.target(), self.pending, self.call
        self.pending, self.call = [], None
        if ids is None or not steps:
            return
        facet = {"_producer": self.PRODUCER, "_schemaURL": self.FACET_SCHEMA, "steps": steps}
        if call is not None:
            facet["call"] = call
        import urllib.request
        now = _datetime.datetime.now(_datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        event = {
            "eventType": "RUNNING", "eventTime": now, "producer": self.PRODUCER, "schemaURL": self.RUN_EVENT_SCHEMA,
            "run": {"runId": ids["run"], "facets": {
                "parent": {"_producer": self.PRODUCER, "_schemaURL": self.PARENT_SCHEMA,
                           "run": {"runId": ids["root_run"]}, "job": {"namespace": ids["root_namespace"], "name": ids["root_job"]}},
                "clew_steps": facet,
            }},
            "job": {"namespace": ids["namespace"], "name": ids["job"]}, "inputs": [], "outputs": [],
        }
        request = urllib.request.Request(
            _os.environ["CLEW_URL"].rstrip("/") + "/api/v1/lineage", data=_json.dumps(event).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + _os.environ.get("CLEW_TOKEN", "")})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                reply.read()
        except Exception as error:  # the task goes on; the steps are lost, and that is said
            body = getattr(error, "read", lambda: b"")()
            _sys.stderr.write(f"clew: could not send {len(steps)} step(s) to {_os.environ['CLEW_URL']}: {error} {body[:300]!r}\n")


_airflow = _Airflow()


def _caller():
    frame = _sys._getframe(2)
    return f"{_os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def record(name, value):
    """Records ``value`` as variable ``name`` (the attempt's next step) and returns it."""
    _step_line(name, _json_text(value), source=_caller())
    return value


def expect(name, ok, message=""):
    """An expectation on the data: a failed one marks what the task produced invalid and fails it."""
    if active():
        with _lock:
            _emit("expect", {"name": name, "passed": "true" if ok else "false"}, message or "")
    return bool(ok)


def output(value, name=None):
    """The task's output (its children's input). With ``name``, one field of an output object."""
    if active():
        with _lock:
            if name is not None:
                _emit("set-output", {"name": name}, _json_text(value))
            elif isinstance(value, dict):
                for k, v in value.items():
                    _emit("set-output", {"name": k}, _json_text(v))
            else:
                _emit("set-output", {"name": "value"}, _json_text(value))
    return value


def chunk(dataset, key, path):
    """Declares a chunk of ``dataset`` this task wrote at ``path`` (relative to its output directory)."""
    if active():
        with _lock:
            _emit("chunk", {"dataset": dataset, "key": key}, path)
    return _os.path.join(_os.environ.get("CLEW_OUTPUT_DIR", "."), path)


def variable(key, default=None):
    """An operator Variable (``clew variables set``) the task lists in its pipeline file
    (``variables: [key]``): the engine read it when the attempt started, recorded which value it got
    and who set it, and passes it as ``CLEW_VAR_<KEY>``; a replay passes the value the run read.
    Returns ``default`` when the task does not list it (outside Clew, or not declared)."""
    name = "CLEW_VAR_" + "".join(c if c.isalnum() else "_" for c in key.upper())
    return _os.environ.get(name, default)


def _replayed(kind, name):
    """The recorded value of the next step, which must be a ``kind`` step called ``name``."""
    with _lock:
        step = _step + 1
        r = _recorded().get(step)
    if r is None or r.get("kind") != kind or r.get("name") != name:
        had = f"{r.get('kind')} '{r.get('name')}'" if r else "nothing"
        raise ReplayMismatch(f"at step {step} the task asked for {kind} '{name}' where the record has {had}; "
                             "outside calls are not repeated in a replay")
    return r.get("value")


def now():
    """The current time (UTC), recorded; in a replay, the time the recording got."""
    if replaying():
        value = _replayed("now", "now")
        _step_line("now", _json_text(value), kind="now", source=_caller())
        return _datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    t = _datetime.datetime.now(_datetime.timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    _step_line("now", _json_text(text), kind="now", source=_caller())
    return _datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def side_effect(name, fn, *args, **kwargs):
    """Calls ``fn`` (an outside call: an HTTP request, a query) and records its JSON result; in a
    replay, returns the recorded result without calling it."""
    if replaying():
        value = _replayed("side_effect", name)
        _step_line(name, _json_text(value), kind="side_effect", source=_caller())
        return value
    value = fn(*args, **kwargs)
    _step_line(name, _json_text(value), kind="side_effect", source=_caller())
    return value


def random():
    """A float in [0, 1) from a generator seeded by the attempt's recorded seed (``CLEW_SEED``)."""
    global _rng
    with _lock:
        if _rng is None:
            seed = _os.environ.get("CLEW_SEED")
            _rng = _random.Random(int(seed) if seed and seed.lstrip("-").isdigit() else seed)
        return _rng.random()


#: Containers up to this many items are compared item by item on each line, so a change made in
#: place (``totals[region] += amount``) is recorded; larger ones only when the name is bound again.
SMALL_CONTAINER = 64


def _small_copy(value):
    if isinstance(value, (dict, list, set)) and len(value) <= SMALL_CONTAINER:
        return value.copy()
    return None


def _same(copy, value):
    try:
        return bool(copy == value)
    except Exception:  # an element whose comparison fails: treat as unchanged
        return True


def _small_argument(value):
    """Whether an argument is recorded: a scalar, a string of up to 4,096 characters or a small
    container. A large input (a file's text, 100,000 rows) is not copied into the ledger on each call."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return len(value) <= 4096
    return _small_copy(value) is not None


def _frame_state(frame):
    """What a traced frame needs: the locals as last seen, the line that runs, each assignment's
    count and last value, copies of small containers."""
    locals_ = dict(frame.f_locals)
    return [locals_, frame.f_lineno, {}, {k: c for k, v in locals_.items() if (c := _small_copy(v)) is not None}]


def _record_arguments(frame):
    """The traced function's arguments as its first steps (at its ``def`` line): scalars and small
    containers; a large input (a list of 100,000 rows) is not copied into the ledger on every call."""
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    _record_argument_values(code, ((name, frame.f_locals[name]) for name in names if name in frame.f_locals))


def _record_argument_values(code, arguments):
    """Records each (name, value) that :func:`_small_argument` keeps, at ``code``'s first line."""
    source = f"{_os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    for name, value in arguments:
        if name not in ("self", "cls") and _small_argument(value):
            _step_line(name, _json_text(value), source=source)


class _Tracer:
    """Records assignments to the locals of traced frames: at each new line, the locals that were
    bound to another object since the last one, attributed to the line that ran. Driven by
    ``sys.settrace`` (:meth:`global_trace`) or by ``sys.monitoring`` (:class:`_Monitor`)."""

    def __init__(self, codes, samples, resumable=False):
        self.codes = codes
        self.samples = samples
        self.frames = {}
        # A generator or coroutine under sys.settrace: "call" and "return" come at each resumption
        # and suspension, so only :func:`_drive` ends its frames.
        self.resumable = resumable

    def start(self, frame, arguments=True):
        self.frames[id(frame)] = _frame_state(frame)
        if arguments:
            _record_arguments(frame)

    def line(self, frame):
        state = self.frames.get(id(frame))
        if state is not None:
            self._diff(frame, state)
            state[1] = frame.f_lineno

    def finish(self, frame, diff=True):
        """The frame ends (returns or raises): its last changes, then each assignment that ran more
        than ``samples`` times once more with its last value and count."""
        state = self.frames.pop(id(frame), None)
        if state is None:
            return
        if diff:
            self._diff(frame, state)
        for (name, line), (count, last) in sorted(state[2].items(), key=lambda kv: kv[0][1]):
            if count > self.samples:
                source = f"{_os.path.basename(frame.f_code.co_filename)}:{line}"
                _step_line(name, _json_text(last), source=source, count=count)

    def _diff(self, frame, state):
        before, line, seen, copies = state
        now = frame.f_locals
        source = f"{_os.path.basename(frame.f_code.co_filename)}:{line}"
        for name, value in now.items():
            if name in before and before[name] is value:
                # The same object: changed only if it is a small container whose items changed
                # (`totals[key] = …`); larger ones are followed by rebinding only.
                copy = copies.get(name)
                if copy is None or _same(copy, value):
                    continue
            copies[name] = _small_copy(value)
            key = (name, line)
            count = seen.get(key, [0, None])
            count[0] += 1
            count[1] = value
            seen[key] = count
            if count[0] <= self.samples:
                _step_line(name, _json_text(value), source=source)
        state[0] = dict(now)

    # sys.settrace: a "call" event for every call in the thread, a "line" event for each line of the
    # frames this returns local_trace for, "return" when one ends (also at each yield).

    def global_trace(self, frame, event, arg):
        if event == "call" and frame.f_code in self.codes:
            if id(frame) not in self.frames:  # not a generator resumed
                self.start(frame)
            return self.local_trace
        return None

    def local_trace(self, frame, event, arg):
        if id(frame) not in self.frames:
            return None
        if event == "line":
            self.line(frame)
        elif event == "return":
            if self.resumable:
                self.line(frame)
            else:
                self.finish(frame)
        return self.local_trace


def _drive(gen, tracer):
    """Runs a generator or coroutine made by a function ``tracer`` follows, with ``sys.settrace``
    set only while it runs (each resumption), and forwards what is sent or thrown into it; its frame's
    summaries are written when it ends. Returns what it returns."""
    frame = gen.gi_frame if hasattr(gen, "gi_frame") else gen.cr_frame
    value, error = None, None
    try:
        while True:
            previous = _sys.gettrace()
            _sys.settrace(tracer.global_trace)
            try:
                item = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as stop:
                return stop.value
            finally:
                _sys.settrace(previous)
            value, error = None, None
            try:
                value = yield item
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as e:  # thrown in by the caller (or the event loop): pass it on
                error = e
    finally:
        if frame is not None:
            tracer.finish(frame, diff=False)


class _Awaiting:
    """Awaits a coroutine through :func:`_drive`."""

    def __init__(self, driver):
        self.driver = driver

    def __await__(self):
        return self.driver


class _Monitor:
    """``sys.monitoring`` (PEP 669, Python 3.12+) for the code objects being traced, and only those:
    unlike ``sys.settrace``, no other call in the process pays for a trace function. One tool id is
    claimed on first use (one that debuggers, coverage and profilers do not use by default); when none
    is free, or on Python 3.11, :attr:`usable` is False and ``sys.settrace`` is used instead.

    A code object maps to the :class:`_Tracer` that follows it and how many traces hold it (a traced
    function calling itself); its events are switched off when the last one ends. ``PY_UNWIND`` (a
    frame left by an exception) can only be enabled for the whole process; its callback ignores code
    it does not follow."""

    def __init__(self):
        self._tool = None
        self._tried = False
        self._codes = {}

    @property
    def usable(self):
        if not self._tried:
            self._tried = True
            self._tool = self._claim()
        return self._tool is not None

    def _claim(self):
        if _os.environ.get("CLEW_TRACE_BACKEND") == "settrace" or not hasattr(_sys, "monitoring"):
            return None
        mon = _sys.monitoring
        events = mon.events
        for tool in (4, 3):
            try:
                mon.use_tool_id(tool, "clew")
            except ValueError:
                continue  # another tool has it
            mon.register_callback(tool, events.PY_START, self._on_start)
            mon.register_callback(tool, events.PY_RESUME, self._on_resume)
            mon.register_callback(tool, events.LINE, self._on_line)
            mon.register_callback(tool, events.PY_YIELD, self._on_yield)
            mon.register_callback(tool, events.PY_RETURN, self._on_return)
            mon.register_callback(tool, events.PY_UNWIND, self._on_unwind)
            return tool
        return None

    def follow(self, code, tracer, calls=True):
        """Follows ``code`` with ``tracer`` (or the tracer already following it): each line, and
        with ``calls`` each frame's start (its arguments), suspension and end (its summaries). A
        context manager follows a frame already running, without ``calls``."""
        events = _sys.monitoring.events
        wanted = events.LINE
        if calls:
            wanted |= events.PY_START | events.PY_RESUME | events.PY_YIELD | events.PY_RETURN
        with _lock:
            entry = self._codes.get(code)
            if entry is None:
                entry = self._codes[code] = [tracer, 0, 0]
            entry[1] += 1
            if entry[2] | wanted != entry[2]:
                entry[2] |= wanted
                _sys.monitoring.set_local_events(self._tool, code, entry[2])
            _sys.monitoring.set_events(self._tool, events.PY_UNWIND)

    def leave(self, code):
        with _lock:
            entry = self._codes.get(code)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del self._codes[code]
                _sys.monitoring.set_local_events(self._tool, code, 0)
                if not self._codes:
                    _sys.monitoring.set_events(self._tool, 0)

    # Each callback runs in the monitored frame's own call: sys._getframe(1) is that frame.

    def tracer(self, code):
        """The tracer following ``code``, or None."""
        entry = self._codes.get(code)
        return None if entry is None else entry[0]

    def _on_start(self, code, offset):
        tracer = self.tracer(code)
        if tracer is not None:
            tracer.start(_sys._getframe(1))

    def _on_resume(self, code, offset):
        tracer = self.tracer(code)
        frame = _sys._getframe(1)
        if tracer is not None and id(frame) not in tracer.frames:
            tracer.start(frame, arguments=False)  # a generator made before the trace began

    def _on_line(self, code, line):
        tracer = self.tracer(code)
        if tracer is not None:
            tracer.line(_sys._getframe(1))

    def _on_yield(self, code, offset, value):
        tracer = self.tracer(code)
        if tracer is not None:
            tracer.line(_sys._getframe(1))

    def _on_return(self, code, offset, value):
        tracer = self.tracer(code)
        if tracer is not None:
            tracer.finish(_sys._getframe(1))

    def _on_unwind(self, code, offset, exception):
        tracer = self.tracer(code)
        if tracer is not None:
            tracer.finish(_sys._getframe(1))


_monitor = _Monitor()


def backend():
    """How :class:`trace` follows what it cannot compile again (and the context manager):
    ``"sys.monitoring"`` on Python 3.12+ when a tool id is free, else ``"sys.settrace"``.
    ``CLEW_TRACE_BACKEND=settrace`` forces the latter."""
    return "sys.monitoring" if _monitor.usable else "sys.settrace"


class trace:
    """Records every assignment to a local variable of a function, with file and line, in order,
    with no calls in its body: as a decorator (``@clew.trace``, ``@clew.trace(samples=5)``) or, around
    a block of code, a context manager (``with clew.trace():``) that traces the calling function.

    The decorator compiles the function again from its source with, after each assignment (``x =``,
    ``x +=``, ``a[i] =`` which changes ``a``, a ``for`` or ``with`` target), a count, a reference to the
    value and, for the first ``samples`` runs of that assignment, a step; when the call ends, each
    assignment that ran more often is recorded once more with its last value and ``count``, how many
    times it ran. So a 1M-row loop writes a handful of steps at a fraction of the function's own cost.
    The function's scalar and small arguments are its first steps. What cannot be compiled again (no
    source, a generator or coroutine, a closure) and the context manager use ``sys.settrace``: a line
    event per line, much slower, changes found by comparing the locals.
    """

    def __init__(self, fn=None, samples=None):
        self.fn = fn
        self.samples = LOOP_SAMPLES if samples is None else samples
        self._previous = None
        self._tracer = None
        self._fast = None
        self._kind = None
        if fn is not None:
            _functools.update_wrapper(self, fn)
            self._kind = ("generator" if _inspect.isgeneratorfunction(fn) else
                          "coroutine" if _inspect.iscoroutinefunction(fn) else
                          "async generator" if _inspect.isasyncgenfunction(fn) else "function")
            self._fast = self._compile()
            try:
                self._signature = _inspect.signature(fn)
            except (TypeError, ValueError):
                self._signature = None

    def _compile(self):
        keys, lines = [], []
        samples = self.samples

        def record(key, value):
            name, source = keys[key]
            _step_line(name, _json_text(value), source=source)

        def finish(counts, values):
            for key, count in sorted(enumerate(counts), key=lambda kc: lines[kc[0]]):
                if count > samples:
                    name, source = keys[key]
                    _step_line(name, _json_text(values[key]), source=source, count=count)
            _out.flush()

        made = _rewrite.rewrite(self.fn, samples, record, finish)
        if made is None:
            return None
        keys.extend(made[1])
        lines.extend(int(source.rsplit(":", 1)[1]) for _, source in made[1])
        return made[0]

    def __call__(self, *args, **kwargs):
        if self.fn is None:  # @clew.trace(samples=…)
            return trace(args[0], samples=self.samples)
        if not active() and _airflow.target() is None:
            return self.fn(*args, **kwargs)
        if self._kind == "generator":
            return self._generator(args, kwargs)
        if self._kind == "coroutine":
            return self._coroutine(args, kwargs)
        if self._kind == "async generator":
            return self._async_generator(args, kwargs)
        self._begin(args, kwargs)
        try:
            if self._fast is not None:
                return self._fast(*args, **kwargs)
            if self._monitored:
                return self.fn(*args, **kwargs)
            tracer = _Tracer({self.fn.__code__}, self.samples)
            previous = _sys.gettrace()
            _sys.settrace(tracer.global_trace)
            try:
                return self.fn(*args, **kwargs)
            finally:
                _sys.settrace(previous)
        finally:
            self._end()

    @property
    def _monitored(self):
        """Whether this function, which cannot be compiled again, is followed with sys.monitoring."""
        return self._fast is None and _monitor.usable

    def _begin(self, args, kwargs):
        """A traced call starts: in Airflow, its call record (outermost call only); the arguments
        (compiled copy) or the code followed (sys.monitoring)."""
        if _airflow.depth == 0 and not active():
            _airflow.call = self._call_record(args, kwargs)
            if _airflow.call is None:
                _sys.stderr.write(
                    f"clew: {self.fn.__qualname__}'s steps are sent, but Clew cannot run it again (clew replay-call): "
                    "it is defined inside another function, an argument is not JSON, or they exceed 1 MiB\n")
        _airflow.depth += 1
        if self._fast is not None:
            self._record_arguments(args, kwargs)
        elif self._monitored:
            if self._tracer is None:
                self._tracer = _Tracer({self.fn.__code__}, self.samples)
            _monitor.follow(self.fn.__code__, self._tracer)

    def _end(self):
        if self._monitored:
            _monitor.leave(self.fn.__code__)
        _out.flush()
        _airflow.depth -= 1
        if _airflow.depth == 0:
            _airflow.send()

    # A generator's or coroutine's body runs after the call returns: these wrappers begin when it
    # first runs and end when it finishes, so its steps (and in Airflow, its call) are all there.

    def _generator(self, args, kwargs):
        self._begin(args, kwargs)
        try:
            if self._fast is not None or self._monitored:
                return (yield from (self._fast or self.fn)(*args, **kwargs))
            tracer = _Tracer({self.fn.__code__}, self.samples, resumable=True)
            return (yield from _drive(self.fn(*args, **kwargs), tracer))
        finally:
            self._end()

    async def _coroutine(self, args, kwargs):
        self._begin(args, kwargs)
        try:
            if self._fast is not None or self._monitored:
                return await (self._fast or self.fn)(*args, **kwargs)
            tracer = _Tracer({self.fn.__code__}, self.samples, resumable=True)
            return await _Awaiting(_drive(self.fn(*args, **kwargs), tracer))
        finally:
            self._end()

    async def _async_generator(self, args, kwargs):
        """Items are passed on; ``asend``/``athrow`` are not (an async generator that needs them
        is run untraced)."""
        self._begin(args, kwargs)
        try:
            if self._fast is None and not self._monitored:
                _sys.stderr.write(f"clew: {self.fn.__qualname__} is not traced: an async generator closure "
                                  "needs sys.monitoring (Python 3.12+)\n")
            async for item in (self._fast or self.fn)(*args, **kwargs):
                yield item
        finally:
            self._end()

    #: Arguments larger than this (as JSON) make a call not replayable from Clew.
    CALL_LIMIT = 1 << 20

    def _call_record(self, args, kwargs):
        """The function's file, name and every argument as JSON, so Clew can call it again
        (``clew replay-call``); None when an argument is not JSON or they are too large."""
        if self._signature is None or "<locals>" in self.fn.__qualname__:
            return None  # a function defined inside another cannot be found again by its name
        try:
            bound = self._signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            text = _json.dumps(arguments, allow_nan=False)
        except (TypeError, ValueError):
            return None
        if len(text) > self.CALL_LIMIT:
            return None
        return {"file": _os.path.abspath(self.fn.__code__.co_filename), "function": self.fn.__qualname__,
                "arguments": _json.loads(text)}

    def _record_arguments(self, args, kwargs):
        if self._signature is None:
            return
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError:
            return  # the call itself will say what is wrong
        _record_argument_values(self.fn.__code__, bound.arguments.items())

    def __get__(self, obj, objtype=None):
        return self if obj is None else _functools.partial(self.__call__, obj)

    def __enter__(self):
        frame = _sys._getframe(1)
        if _monitor.usable:
            _monitor.follow(frame.f_code, _Tracer({frame.f_code}, self.samples), calls=False)
            self._tracer = _monitor.tracer(frame.f_code)
            self._tracer.start(frame, arguments=False)
            return self
        self._tracer = _Tracer({frame.f_code}, self.samples)
        self._tracer.start(frame, arguments=False)
        self._previous = _sys.gettrace()
        _sys.settrace(self._tracer.global_trace)
        frame.f_trace = self._tracer.local_trace
        return self

    def __exit__(self, *exc):
        frame = _sys._getframe(1)
        self._tracer.finish(frame)
        if _monitor.usable:
            _monitor.leave(frame.f_code)
        else:
            frame.f_trace = None
            _sys.settrace(self._previous)
        _out.flush()
        return False
