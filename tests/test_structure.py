"""The shape of the code: subpackages stacked in one order with no import running back up (the
imports made inside functions count too), no circles between modules, and every module small
enough to read."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minirec"

# Bottom to top. A module may import from its own level and the levels below, never above.
# backend.py and inputs.py sit under everything; the package's __init__ gathers the public names.
LEVELS = ["minirec.backend", "minirec.inputs", "minirec.nn", "minirec.io", "minirec.data",
          "minirec.fast", "minirec.train", "minirec.models", "minirec.tools"]


def module_name(path, package=PACKAGE):
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, package_dir=PACKAGE):
    """The minirec modules ``path`` imports, anywhere in the file."""
    name, found = module_name(path, package_dir), set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import x: x is a module of the package
                found |= {f"{target}.{a.name}" for a in node.names}
            else:
                found.add(target)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found |= {m for m in mods if m and m.startswith("minirec")}
    modules = {module_name(p, package_dir) for p in package_dir.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def level(module):
    return next(i for i, top in enumerate(LEVELS) if module == top or module.startswith(top + "."))


def graph(package_dir=PACKAGE):
    g = {module_name(p, package_dir): imports(p, package_dir) for p in package_dir.rglob("*.py")}
    g.pop("minirec")  # the package's __init__ gathers the public names from everything
    return g


def test_every_module_belongs_to_a_level():
    assert [m for m in graph() if not any(m == t or m.startswith(t + ".") for t in LEVELS)] == []


def upward_imports(package_dir=PACKAGE):
    return sorted(f"{m} -> {n}" for m, targets in graph(package_dir).items() for n in targets
                  if level(n) > level(m))


def test_no_import_runs_back_up():
    upward = upward_imports()
    assert upward == [], "imports that run back up the stack " + " > ".join(LEVELS) + ":\n" + \
        "\n".join(upward)


def test_imports_flow_one_way():
    g = graph()
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for n in sorted(g.get(m, ())):
            assert state.get(n) != "open", "import circle: " + " -> ".join(path[path.index(n):] + [n])
            if n not in state:
                visit(n)
        path.pop()
        state[m] = "done"
    for m in sorted(g):
        if m not in state:
            visit(m)


def test_the_structure_test_sees_an_upward_import(tmp_path):
    """Not vacuous: a lazy import of the tools from inside nn, in a function, is found and named."""
    root = tmp_path / "minirec"
    for folder in ("nn", "tools"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "tools" / "cli.py").write_text("")
    (root / "nn" / "layers.py").write_text("def f():\n    from ..tools import cli\n")
    assert upward_imports(root) == ["minirec.nn.layers -> minirec.tools"]


def test_no_two_modules_share_a_name():
    """A learner tells modules apart by name: no file name appears in two subpackages."""
    names = [p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_no_module_is_over_about_400_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert all(n <= 400 for n in sizes.values()), {k: v for k, v in sizes.items() if v > 400}
