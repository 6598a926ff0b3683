"""``@clew.trace`` by rewriting: the function is compiled again from its source with, after each
assignment, a counter, a reference to the value and (for the first few) a call that records it.

A line event per line (``sys.settrace``) made a 100,000-row function 47 times slower; three inline
statements per assignment cost a fraction of the function's own work. What this cannot rewrite (no
source, a closure) is followed with ``sys.monitoring`` (Python 3.12+) or ``sys.settrace`` instead.
"""

import ast
import inspect
import os
import textwrap

import itertools

_COUNTS, _VALUES = "_clew_count_", "_clew_value_"
_serial = itertools.count(1)


def _names(target):
    """The local names an assignment target binds or changes (``a[i] = …`` changes ``a``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for e in target.elts for n in _names(e)]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    if isinstance(target, (ast.Subscript, ast.Attribute)):
        base = target.value
        while isinstance(base, (ast.Subscript, ast.Attribute)):
            base = base.value
        return [base.id] if isinstance(base, ast.Name) and base.id not in ("self", "cls") else []
    return []


class _Inserter(ast.NodeTransformer):
    """Adds the recording statements after each assignment of the function's own body (not inside
    nested functions, classes or lambdas, which are scopes of their own)."""

    def __init__(self, samples, record):
        self.samples = samples
        self.record = record
        self.keys = []  # (name, line) per key
        self.depth = 0

    def _record(self, name, line):
        key = len(self.keys)
        self.keys.append((name, line))
        # Plain locals: a local's add and store cost a third of a list item's.
        return ast.parse(
            f"{_COUNTS}{key} += 1\n{_VALUES}{key} = {name}\n"
            f"if {_COUNTS}{key} <= {self.samples}: {self.record}({key}, {name})\n"
        ).body

    def _after(self, node, targets):
        out = [node]
        for name in dict.fromkeys(n for t in targets for n in _names(t)):
            out += self._record(name, node.lineno)
        return out

    def visit_FunctionDef(self, node):
        if self.depth > 0:
            return node  # a nested function: a scope of its own
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        return node

    def visit_Lambda(self, node):
        return node

    def visit_Assign(self, node):
        return self._after(node, node.targets)

    def visit_AugAssign(self, node):
        return self._after(node, [node.target])

    def visit_AnnAssign(self, node):
        return self._after(node, [node.target]) if node.value is not None else node

    def _loop(self, node):
        self.generic_visit(node)
        names = list(dict.fromkeys(_names(node.target)))
        head = [s for n in names for s in self._record(n, node.lineno)]
        node.body = head + node.body
        return node

    visit_For = _loop
    visit_AsyncFor = _loop

    def visit_With(self, node):
        self.generic_visit(node)
        names = [n for item in node.items if item.optional_vars is not None for n in _names(item.optional_vars)]
        node.body = [s for n in dict.fromkeys(names) for s in self._record(n, node.lineno)] + node.body
        return node

    visit_AsyncWith = visit_With


def rewrite(fn, samples, record, finish):
    """``fn`` compiled again with its assignments recorded, or None when it cannot be (no source, a
    closure). Generators and coroutines too: the statements run as their bodies do, the summary in a
    ``finally`` when they end or are closed. ``record(key, value)`` gets the first ``samples`` values
    of each key; ``finish(counts, values)`` runs when a call ends; ``keys`` maps a key to
    ``(name, line)``."""
    code = fn.__code__
    if code.co_freevars:
        return None  # its closure's cells could not be shared by the copy
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    func = tree.body[0] if tree.body else None
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or func.name != fn.__name__:
        return None
    func.decorator_list = []
    # The recording functions live in the function's own module globals, under names of their own,
    # so the copy reads and writes the same globals as the original.
    serial = next(_serial)
    record_name, finish_name = f"_clew_record_{serial}", f"_clew_finish_{serial}"
    inserter = _Inserter(samples, record_name)
    inserter.visit(func)
    n = len(inserter.keys)
    setup = ast.parse("".join(f"{_COUNTS}{k} = 0\n{_VALUES}{k} = None\n" for k in range(n))).body
    counts = ", ".join(f"{_COUNTS}{k}" for k in range(n))
    values = ", ".join(f"{_VALUES}{k}" for k in range(n))
    func.body = setup + [ast.Try(
        body=func.body, handlers=[], orelse=[],
        finalbody=ast.parse(f"{finish_name}(({counts}{',' if n == 1 else ''}), ({values}{',' if n == 1 else ''}))").body)]
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, code.co_firstlineno - 1)
    namespace = {}
    try:
        compiled = compile(tree, code.co_filename, "exec")
    except Exception:
        return None
    fn.__globals__[record_name] = record
    fn.__globals__[finish_name] = finish
    exec(compiled, fn.__globals__, namespace)
    new = namespace[fn.__name__]
    new.__defaults__ = fn.__defaults__
    new.__kwdefaults__ = fn.__kwdefaults__
    offset = code.co_firstlineno - 1  # the keys were taken before the tree's lines were moved
    return new, [(name, f"{os.path.basename(code.co_filename)}:{line + offset}") for name, line in inserter.keys]
