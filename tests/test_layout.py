"""The package's import graph, read from the source (AST): imports sit at the top of their
module, and ptengine's modules import each other without a cycle.

An import inside a function hides a dependency (and usually a cycle) from the reader and
from this test, so the only ones allowed are listed below with their reason: start-up
laziness (cli.py) and heavy or optional third-party modules.
"""
import ast
import pathlib
import re
import sys

import ptengine

PACKAGE = pathlib.Path(ptengine.__file__).resolve().parent

# cli.py: each subcommand imports what it runs when it runs, so that `ptengine --help` and
# every other subcommand start without loading numpy, pandas, Dask or the models. Any
# import of the package or a third-party module inside these functions is allowed.
LAZY_CLI = {"_parse_params", "_scales", "_list_workloads", "cmd_compare", "cmd_verify",
            "add_bench_arguments", "cmd_bench", "cmd_sweep", "cmd_record", "cmd_replay",
            "cmd_whatif"}

# (module, function, imported module): other imports that stay inside a function, on
# purpose. Never a standard-library module (nothing to gain from importing one late).
LAZY = {
    # numpy starts OpenBLAS worker threads when imported (proc/view.py's _numpy says why);
    # tqdm, matplotlib, pandas, Dask and pyelftools are heavy or optional for `import
    # ptengine` (Debian's python3 has none of them): imported where they are used.
    ("ptengine.verify", "verify", "tqdm"),
    ("ptengine.exec.binfmt_elf", "ElfImage.__init__", "elftools.common.exceptions"),
    ("ptengine.exec.binfmt_elf", "ElfImage.__init__", "elftools.elf.elffile"),
    ("ptengine.trace.report", "plot", "matplotlib"),
    ("ptengine.trace.report", "plot", "matplotlib.pyplot"),
    ("ptengine.workloads.plots", "_format_axis", "matplotlib.ticker"),
    ("ptengine.workloads.plots", "_symmetric_axis", "matplotlib.ticker"),
    ("ptengine.workloads.plots", "plot", "matplotlib.pyplot"),
    ("ptengine.workloads.plots", "figure", "matplotlib"),
    ("ptengine.workloads.plots", "figure", "matplotlib.pyplot"),
    ("ptengine.workloads.table", "frame", "pandas"),
    ("ptengine.sweep", "run", "pandas"),
    ("ptengine.sweep.execute", "local_client", "distributed"),
    ("ptengine.sweep.execute", "connect", "distributed"),
    ("ptengine.sweep.execute", "run_jobs", "distributed"),
    ("ptengine.sweep.execute", "run_jobs", "tqdm"),
    # A Dask worker's own check that it imports this ptengine (the function runs there).
    ("ptengine.sweep.execute", "check_environment.imported", "ptengine"),
}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    """{module name: (path, is a package)} of every .py and .pyx of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".pyx") and "__pycache__" not in path.parts:
            out[module_name(path)] = (path, path.name == "__init__.py")
    return out


def resolve(module, is_package, node):
    """The modules an import statement needs: for `from X import a, b`, X.a and X.b where
    those are modules of the package, and X itself for any name X's __init__ defines."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        base = base[:len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    submodules = [f"{target}.{alias.name}" for alias in node.names]
    known = MODULES.keys()
    out = [m for m in submodules if m in known]
    return out if len(out) == len(submodules) else [target] + out


MODULES = modules()


def imports(module, path, is_package):
    """[(function qualname or None, imported module)] of one module's source."""
    if path.suffix == ".pyx":
        return pyx_imports(module, path, is_package)
    out = []

    def visit(node, scope, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, scope + [child.name], True)
            elif isinstance(child, ast.ClassDef):
                visit(child, scope + [child.name], in_function)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                func = ".".join(scope) if in_function else None
                out.extend((func, m) for m in resolve(module, is_package, child))
            else:
                visit(child, scope, in_function)
    visit(ast.parse(path.read_text()), [], False)
    return out


PYX_IMPORT = re.compile(r"^(\s*)((?:from\s+\S+\s+)?import\s.*)$")


def pyx_imports(module, path, is_package):
    """The Python imports of a .pyx (cimports are compile-time, and the rest of Cython does
    not parse as Python): its import statements, read line by line (continuations in
    parentheses joined); an indented one is inside a function or class body ("<pyx>")."""
    out = []
    lines = iter(path.read_text().splitlines())
    for line in lines:
        m = PYX_IMPORT.match(line)
        if not m or "cimport" in line.split("#")[0]:
            continue
        statement = m.group(2)
        while statement.count("(") > statement.count(")"):
            statement += " " + next(lines).strip()
        node = ast.parse(statement).body[0]
        out.extend(("<pyx>" if m.group(1) else None, target)
                   for target in resolve(module, is_package, node))
    return out


def graph():
    """{module: {(function or None, module it imports)}}: the other packages' modules by
    their name, ptengine's only when they are modules of it."""
    out = {}
    for name, (path, is_package) in MODULES.items():
        out[name] = {(func, target) for func, target in imports(name, path, is_package)
                     if target.split(".")[0] != "ptengine" or target in MODULES}
    return out


def test_no_import_inside_a_function_but_the_listed_ones():
    found = {(module, func, target) for module, edges in graph().items()
             for func, target in edges if func is not None}
    stdlib = {i for i in found if i[2].split(".")[0] in sys.stdlib_module_names}
    assert sorted(stdlib) == [], "standard-library imports inside functions"
    cli = {i for i in found if i[0] == "ptengine.cli" and i[1] in LAZY_CLI}
    assert {func for _, func, _ in cli} == LAZY_CLI, "LAZY_CLI names a function without imports"
    # numpy is lazy wherever it is used: importing it starts OpenBLAS worker threads
    # (proc/view.py's _numpy says why), which `import ptengine` must not do.
    lazy_numpy = {i for i in found if i[2] == "numpy"}
    allowed = LAZY
    assert sorted(found - cli - lazy_numpy - allowed) == [], \
        "imports inside functions, not listed here"
    assert sorted(allowed - found) == [], "listed imports that are gone: drop them here"


def packages_run(module, target):
    """The packages whose __init__ importing `target` from `module` runs first: target's
    enclosing packages, but those enclosing module (already being imported by then)."""
    parts = target.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))
            if not (module + ".").startswith(".".join(parts[:i]) + ".")}


def test_no_import_cycle():
    """The graph of ptengine modules has no cycle (a package's __init__ counts as importing
    what it imports, and importing a module of a package runs the package's __init__)."""
    edges = {module: {m for func, target in deps if target.startswith("ptengine")
                      for m in {target} | packages_run(module, target) if m != module}
             for module, deps in graph().items()}
    cycles = []
    state = {}

    def walk(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node, [])
    assert cycles == []


KERNEL_FILE = re.compile(r"\b(?:mm|fs|kernel|arch|include|lib)/[\w/.-]+\.[ch]\b"
                         r"|mirrors no kernel file")
# A module's docstring, .py or .pyx (whose Cython a Python parser cannot read): the first
# string literal after the leading comments (the compiler directives).
DOCSTRING = re.compile(r'\A(?:\s*#[^\n]*\n)*\s*"""(.*?)"""', re.S)


def test_docstring_summary_names_the_kernel_file_mirrored():
    """Every module's docstring says in its summary (the text before its first blank line)
    which kernel file it mirrors, or that it mirrors none: the tree reads as the kernel's
    own map."""
    missing = []
    for name, (path, _) in MODULES.items():
        m = DOCSTRING.match(path.read_text())
        summary = m.group(1).split("\n\n")[0] if m else ""
        if not KERNEL_FILE.search(summary.replace("\n", " ")):
            missing.append(name)
    assert missing == []
