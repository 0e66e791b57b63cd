"""Anti-cheat audit, static part: an AST audit of candidate source that rejects without running it.

``static_audit(source)`` returns ``Finding``s (category, message, line) for ``fallback``,
``reference_reuse`` and ``checker_tamper``; the rules are listed in docs/ARCHITECTURE.md
("Static audit rules"). The run-time op policy is ``child/op_policy.py``; the integrity
snapshot ``child/integrity.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from pytest_kernelfalcon.core.verdict import Category


def _words(text: str) -> frozenset[str]:
    """Return the whitespace-separated words of ``text`` as a set (keeps the long lists readable)."""
    return frozenset(text.split())


FALLBACK = Category.FALLBACK
REUSE = Category.REFERENCE_REUSE
TAMPER = Category.CHECKER_TAMPER
_TRY_TYPES: tuple[type, ...] = tuple(t for t in (ast.Try, getattr(ast, "TryStar", None)) if t)
_PROTECTED_ROOTS = _words(
    "torch triton builtins __builtins__ sys os gc inspect importlib numpy math types threading "
    "pytest pytest_kernelfalcon hypothesis functools operator"
)
_FRAME_ATTRS = _words(
    "f_back f_locals f_globals f_builtins f_code f_trace tb_frame tb_next gi_frame cr_frame ag_frame "
    "__traceback__"
)
_PATCH_ATTRS = _words(
    "__class__ __code__ __globals__ __dict__ __bases__ __defaults__ __kwdefaults__ __closure__ "
    "__torch_function__ __torch_dispatch__"
)
_INTROSPECTION_CALLS = _words(
    "sys._getframe sys._current_frames inspect.currentframe inspect.stack inspect.trace "
    "inspect.getouterframes inspect.getinnerframes inspect.getframeinfo gc.get_objects "
    "gc.get_referrers gc.get_referents traceback.extract_stack traceback.walk_stack"
)
_TAMPER_CALLS = _words(
    "sys.settrace sys.setprofile threading.settrace threading.setprofile sys.addaudithook "
    "sys.meta_path sys.path_hooks os.fork os.forkpty os.kill os.killpg os._exit os.abort os.system "
    "os.popen os.putenv os.unsetenv sys.exit exit quit exec eval compile builtins.exec builtins.eval "
    "atexit.register setattr delattr"
)
_DISPATCH_NAMES = _words(
    "TorchDispatchMode TorchFunctionMode __torch_dispatch__ __torch_function__"
)
_DISPATCH_PREFIXES = ("torch.utils._python_dispatch", "torch.overrides", "torch.library", "torch._library")
_DISPATCH_WORDS = ("dispatch", "mode", "torch_function", "tls", "guard", "exclude", "include")
_TAMPER_MODULES = _words(
    "ctypes _ctypes cffi subprocess multiprocessing socket signal pty atexit pytest_kernelfalcon"
)
_MUTABLE_REGISTRIES = _words(
    "sys.modules os.environ sys.meta_path sys.path_hooks builtins.__dict__ __builtins__"
)
_MUTATORS = _words(
    "update pop popitem setdefault clear __setitem__ __delitem__ insert append extend remove"
)
_DYNAMIC_IMPORTS = _words(
    "importlib.import_module importlib.reload importlib.util.spec_from_file_location "
    "importlib.util.module_from_spec importlib.machinery.SourceFileLoader __import__ "
    "builtins.__import__ runpy.run_path runpy.run_module imp.load_source"
)
_FILE_READS = _words(
    "open io.open os.open builtins.open codecs.open tokenize.open linecache.getline linecache.getlines "
    "inspect.getsource inspect.getsourcelines inspect.getfile torch.load pickle.load pickle.loads "
    "numpy.load os.listdir os.scandir os.walk glob.glob"
)
_FILE_METHODS = frozenset({"read_text", "read_bytes"})
_SENSITIVE_STRINGS = _FRAME_ATTRS | _DISPATCH_NAMES | {
    "_getframe", "settrace", "setprofile", "get_objects", "get_referrers", "currentframe", "__builtins__",
}


@dataclass(frozen=True)
class Finding:
    """One static-audit finding: its category, a message naming the construct, and the line."""

    category: Category
    message: str
    line: int


def static_audit(source: str) -> tuple[Finding, ...]:
    """Return the findings of the static audit of candidate source, ordered by line."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 0
        return (Finding(Category.COMPILE_ERROR, f"line {line}: candidate does not parse: {exc}", line),)
    aliases = _aliases(tree)
    findings = [*_fallbacks(tree, aliases), *_suppressions(tree, aliases), *_node_findings(tree, aliases)]
    unique = dict.fromkeys(findings)
    return tuple(sorted(unique, key=lambda f: (f.line, f.category.value, f.message)))


def _finding(category: Category, node: ast.AST, what: str, why: str) -> Finding:
    """Return a finding whose message names the construct ``what`` and its line."""
    line = getattr(node, "lineno", 0)
    return Finding(category, f"line {line}: {what}: {why}", line)


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Return local name -> dotted module path for imports and ``F = torch.nn.functional`` style aliases."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            dotted = _qualname(node.value, aliases)
            if dotted and dotted.split(".")[0] in _PROTECTED_ROOTS and "." in dotted:
                aliases[node.targets[0].id] = dotted
    return aliases


def _qualname(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """Return the dotted name of a ``Name``/``Attribute`` chain with import aliases resolved."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _qualname(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _root(dotted: str | None) -> str:
    """Return the first component of a dotted name (empty for ``None``)."""
    return dotted.split(".")[0] if dotted else ""


# --- fallback -------------------------------------------------------------------------------


def _tries(node: ast.AST, function: str | None = None) -> Iterator[tuple[ast.AST, str | None]]:
    """Yield every try statement with the name of the innermost enclosing function (``None`` at module level)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _tries(child, child.name)
        elif isinstance(child, ast.Lambda):
            yield from _tries(child, "<lambda>")
        else:
            if isinstance(child, _TRY_TYPES):
                yield child, function
            yield from _tries(child, function)


def _fallbacks(tree: ast.Module, aliases: dict[str, str]) -> Iterator[Finding]:
    """Yield ``fallback`` findings for try statements that can swallow a kernel failure."""
    for node, function in _tries(tree):
        handlers: list[ast.ExceptHandler] = getattr(node, "handlers", [])
        swallowing = [h for h in handlers if not (h.body and isinstance(h.body[-1], ast.Raise))]
        final_exit = any(isinstance(n, (ast.Return, ast.Break, ast.Continue)) for s in getattr(node, "finalbody", []) for n in ast.walk(s))
        where = f"in function `{function}`" if function else "at module level"
        if function and swallowing:
            yield _finding(FALLBACK, node, f"try/except {where} (handler at line {swallowing[0].lineno})",
                           "a handler that does not re-raise can swallow a failing kernel and return something else")
        elif function and final_exit:
            yield _finding(FALLBACK, node, f"try/finally {where} returns from `finally`",
                           "this swallows any exception raised by the kernel")
        elif torch_call := next(filter(None, (_torch_call(h, aliases) for h in swallowing)), None):
            yield _finding(FALLBACK, node, f"try/except {where} whose handler calls `{torch_call}`",
                           "falling back to torch when a kernel fails is not allowed")


def _suppressions(tree: ast.Module, aliases: dict[str, str]) -> Iterator[Finding]:
    """Yield ``fallback`` findings for ``with contextlib.suppress(...)`` inside functions."""
    functions = (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    for function in functions:
        for node in ast.walk(function):
            items = node.items if isinstance(node, (ast.With, ast.AsyncWith)) else []
            calls = [i.context_expr for i in items if isinstance(i.context_expr, ast.Call)]
            if any(_qualname(c.func, aliases) == "contextlib.suppress" for c in calls):
                yield _finding(FALLBACK, node, f"`contextlib.suppress` in function `{function.name}`",
                               "suppressing exceptions can swallow a failing kernel")


def _torch_call(handler: ast.ExceptHandler, aliases: dict[str, str]) -> str | None:
    """Return the first call under ``torch`` made by an except handler, if any."""
    calls = (_qualname(n.func, aliases) for n in ast.walk(handler) if isinstance(n, ast.Call))
    return next((c for c in calls if _root(c) == "torch"), None)


# --- per-node rules -------------------------------------------------------------------------


def _node_findings(tree: ast.Module, aliases: dict[str, str]) -> Iterator[Finding]:
    """Yield the reference-reuse and checker-tamper findings of every node."""
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from _import_findings(node)
        elif isinstance(node, ast.ClassDef):
            yield from _class_findings(node, aliases)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in _DISPATCH_NAMES:
            yield _finding(TAMPER, node, f"defines `{node.name}`", "hooking the dispatch machinery hides torch compute from the audit")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            yield from _patch_findings(node, aliases)
        elif isinstance(node, ast.Call):
            yield from _call_findings(node, aliases)
        elif isinstance(node, (ast.Name, ast.Attribute)) and id(node) not in inner:
            yield from _name_findings(node, aliases)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield from _string_findings(node)


def _import_findings(node: ast.Import | ast.ImportFrom) -> Iterator[Finding]:
    """Yield findings for importing ``Model``, introspection helpers or forbidden modules."""
    modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    for module in modules:
        if _root(module) in _TAMPER_MODULES:
            yield _finding(TAMPER, node, f"imports `{module}`", "candidates may not use this module (it can reach outside the kernel)")
    if isinstance(node, ast.ImportFrom):
        for alias in node.names:
            dotted = f"{node.module}.{alias.name}"
            if alias.name == "Model":
                yield _finding(REUSE, node, f"imports `{dotted}`", "the reference `Model` may not be used")
            elif dotted in _INTROSPECTION_CALLS or alias.name in _DISPATCH_NAMES or dotted.startswith(_DISPATCH_PREFIXES):
                yield _finding(TAMPER, node, f"imports `{dotted}`", "introspection and dispatch hooks can fool the checker")


def _class_findings(node: ast.ClassDef, aliases: dict[str, str]) -> Iterator[Finding]:
    """Yield findings for a class named ``Model`` or one subclassing it."""
    if node.name == "Model":
        yield _finding(REUSE, node, "defines a class named `Model`", "it shadows the reference; name the candidate `ModelNew`")
    for base in node.bases:
        if (_qualname(base, aliases) or "").split(".")[-1] == "Model":
            yield _finding(REUSE, node, f"class `{node.name}` subclasses `Model`", "the candidate may not inherit the reference's forward")


def _patch_findings(node: ast.stmt, aliases: dict[str, str]) -> Iterator[Finding]:
    """Yield ``checker_tamper`` findings for assignments into shared modules or special attributes."""
    targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]  # type: ignore[attr-defined]
    for target in (t for top in targets for t in ast.walk(top)):
        if isinstance(target, ast.Attribute) and not isinstance(target.ctx, ast.Load):
            dotted = _qualname(target, aliases) or f"<expr>.{target.attr}"
            if _root(dotted) in _PROTECTED_ROOTS or target.attr in _PATCH_ATTRS:
                yield _finding(TAMPER, node, f"assigns `{dotted}`", "monkey-patching shared modules or objects can fool the checker")
        elif isinstance(target, ast.Subscript) and not isinstance(target.ctx, ast.Load):
            owner = _qualname(target.value, aliases)
            if owner in _MUTABLE_REGISTRIES or _root(owner) in _PROTECTED_ROOTS:
                yield _finding(TAMPER, node, f"writes into `{owner}`", "changing shared registries can fool the checker")


def _call_findings(node: ast.Call, aliases: dict[str, str]) -> Iterator[Finding]:
    """Yield findings for calls that read files, import dynamically, patch or control the process."""
    dotted = _qualname(node.func, aliases)
    method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
    if dotted in _FILE_READS or method in _FILE_METHODS:
        yield _finding(REUSE, node, f"calls `{dotted or method}`", "reading files could load the task or saved reference results")
    elif dotted in _DYNAMIC_IMPORTS:
        yield _finding(REUSE, node, f"calls `{dotted}`", "dynamic imports could load the task module and its `Model`")
    elif dotted in ("setattr", "delattr", "object.__setattr__", "type.__setattr__"):
        owner = _qualname(node.args[0], aliases) if node.args else None
        if _root(owner) in _PROTECTED_ROOTS:
            yield _finding(TAMPER, node, f"calls `{dotted}` on `{owner}`", "monkey-patching shared modules can fool the checker")
    elif dotted in _TAMPER_CALLS or _root(dotted) in ("subprocess", "ctypes") or (dotted or "").startswith(("os.exec", "os.spawn")):
        yield _finding(TAMPER, node, f"calls `{dotted}`", "tracing hooks, dynamic code and process control are not allowed in candidates")
    elif method in _MUTATORS and _qualname(node.func.value, aliases) in _MUTABLE_REGISTRIES:  # type: ignore[attr-defined,operator]
        yield _finding(TAMPER, node, f"calls `{dotted}`", "changing shared registries can fool the checker")


def _name_findings(node: ast.Name | ast.Attribute, aliases: dict[str, str]) -> Iterator[Finding]:
    """Yield findings for a whole name chain using ``Model``, frame attributes, introspection or dispatch internals."""
    attrs: list[str] = []
    base: ast.expr = node
    while isinstance(base, ast.Attribute):
        attrs.append(base.attr)
        base = base.value
    dotted = _qualname(node, aliases)
    parts = dotted.split(".") if dotted else []
    names = {*attrs, *parts, *([base.id] if isinstance(base, ast.Name) else [])}
    shown = dotted or ".".join(reversed(attrs))
    prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
    if "Model" in names:
        yield _finding(REUSE, node, f"uses `{shown}`", "the reference `Model` may not be subclassed, called or inspected")
    elif _FRAME_ATTRS.intersection(attrs):
        yield _finding(TAMPER, node, f"reads frame attribute in `{shown}`", "frame introspection can read or change the checker's state")
    elif prefixes & _INTROSPECTION_CALLS:
        yield _finding(TAMPER, node, f"uses `{shown}`", "frame and heap introspection can read or change the checker's state")
    elif names & _DISPATCH_NAMES or _is_dispatch_internal(dotted or ""):
        yield _finding(TAMPER, node, f"uses `{shown}`", "touching the dispatch machinery can hide torch compute from the audit")


def _is_dispatch_internal(dotted: str) -> bool:
    """Return whether a dotted name is a torch dispatch/mode internal."""
    if dotted.startswith(_DISPATCH_PREFIXES):
        return True
    return dotted.startswith("torch._C.") and any(w in dotted.lower() for w in _DISPATCH_WORDS)


def _string_findings(node: ast.Constant) -> Iterator[Finding]:
    """Yield findings for strings that name the reference, frame internals or ``/proc``."""
    text = str(node.value)
    if text == "Model":
        yield _finding(REUSE, node, "the string 'Model'", "looking the reference up by name is reference reuse")
    elif text in _SENSITIVE_STRINGS:
        yield _finding(TAMPER, node, f"the string {text!r}", "naming introspection or dispatch internals by string (getattr-style access)")
    elif text.startswith("/proc"):
        yield _finding(TAMPER, node, f"the path {text!r}", "reading /proc can reach other processes' memory or environment")






__all__ = ["Finding", "static_audit"]
