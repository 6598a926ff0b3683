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
    "active", "replaying",
]

#: How many changes of one variable at one line are recorded before the rest are summarized: the
#: first ``LOOP_SAMPLES`` are steps of their own, then the last one with how many there were.
LOOP_SAMPLES = 3

_lock = _threading.RLock()
_step = 0
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
    """Records assignments to the locals of traced frames: on each line event, the locals that were
    bound to another object since the last event, attributed to the line that ran."""

    def __init__(self, codes, samples):
        self.codes = codes
        self.samples = samples
        self.frames = {}

    def global_trace(self, frame, event, arg):
        if event == "call" and frame.f_code in self.codes:
            self.frames[id(frame)] = _frame_state(frame)
            _record_arguments(frame)
            return self.local_trace
        return None

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

    def local_trace(self, frame, event, arg):
        state = self.frames.get(id(frame))
        if state is None:
            return None
        if event == "line":
            self._diff(frame, state)
            state[1] = frame.f_lineno
        elif event == "return":
            self._diff(frame, state)
            del self.frames[id(frame)]
            for (name, line), (count, last) in sorted(state[2].items(), key=lambda kv: kv[0][1]):
                if count > self.samples:
                    source = f"{_os.path.basename(frame.f_code.co_filename)}:{line}"
                    _step_line(name, _json_text(last), source=source, count=count)
        return self.local_trace


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
        if fn is not None:
            _functools.update_wrapper(self, fn)
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
        if _airflow.depth == 0 and not active():
            _airflow.call = self._call_record(args, kwargs)
            if _airflow.call is None:
                _sys.stderr.write(
                    f"clew: {self.fn.__qualname__}'s steps are sent, but Clew cannot run it again (clew replay-call): "
                    "it is defined inside another function, an argument is not JSON, or they exceed 1 MiB\n")
        _airflow.depth += 1
        try:
            if self._fast is not None:
                self._record_arguments(args, kwargs)
                return self._fast(*args, **kwargs)
            tracer = _Tracer({self.fn.__code__}, self.samples)
            previous = _sys.gettrace()
            _sys.settrace(tracer.global_trace)
            try:
                return self.fn(*args, **kwargs)
            finally:
                _sys.settrace(previous)
        finally:
            _out.flush()
            _airflow.depth -= 1
            if _airflow.depth == 0:
                _airflow.send()

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
        self._tracer = _Tracer({frame.f_code}, self.samples)
        self._tracer.frames[id(frame)] = _frame_state(frame)
        self._previous = _sys.gettrace()
        _sys.settrace(self._tracer.global_trace)
        frame.f_trace = self._tracer.local_trace
        return self

    def __exit__(self, *exc):
        frame = _sys._getframe(1)
        state = self._tracer.frames.pop(id(frame), None)
        if state is not None:
            self._tracer._diff(frame, state)
            for (name, line), (count, last) in sorted(state[2].items(), key=lambda kv: kv[0][1]):
                if count > self.samples:
                    source = f"{_os.path.basename(frame.f_code.co_filename)}:{line}"
                    _step_line(name, _json_text(last), source=source, count=count)
        frame.f_trace = None
        _sys.settrace(self._previous)
        _out.flush()
        return False
