"""The code's shape, as docs/architecture.md describes it: the package root keeps only the core
modules, no two modules import each other (directly or round a loop, counting imports inside
functions and under TYPE_CHECKING: a cycle is a cycle even when Python tolerates it), and no
function is over 100 lines. Read from the source with `ast`; nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "localswap"
ROOT_MODULES = {"__init__", "__main__", "cli", "settings", "choices", "errors", "progress",
                "workspace", "media", "gpu"}
# The layers, lowest first (docs/architecture.md): a module imports only modules of its own
# layer or of a lower one. Every module of the package is in exactly one layer.
LAYERS = [
    ("base", {"localswap", "localswap.choices", "localswap.errors", "localswap.progress",
              "localswap.settings", "localswap.workspace", "localswap.media", "localswap.gpu",
              "localswap.system"}),
    ("faces", {"localswap.faces"}),
    ("train", {"localswap.train"}),
    ("convert", {"localswap.convert"}),
    ("evaluate", {"localswap.evaluate"}),
    ("models", {"localswap.models"}),
    ("swap", {"localswap.swap"}),
    ("jobs", {"localswap.jobs"}),
    ("bench", {"localswap.bench"}),
    ("ui", {"localswap.ui"}),
    ("cli", {"localswap.cli", "localswap.__main__"}),
]
MAX_FUNCTION_LINES = 100


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, wherever in the file the import stands."""
    return set(import_lines(name, path, known))


def import_lines(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """{module of the package that `name` imports: the line of the first import of it},
    counting imports inside functions and under TYPE_CHECKING."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: dict[str, int] = {}

    def add(module: str, line: int) -> None:
        found[module] = min(line, found.get(module, line))
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in known:
                    add(a.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    add(full, node.lineno)    # a module: from pkg import module
                elif base in known:
                    add(base, node.lineno)    # a name defined in the module `base`
    found.pop(name, None)
    return found


def layer_of(module: str) -> int:
    """The index in LAYERS of the layer holding `module` (by its longest listed prefix)."""
    best, index = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    assert index >= 0, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return index


def layer_violations(known: dict[str, Path], root: Path = ROOT) -> list[str]:
    """'module (layer) imports module (higher layer) at file:line' for each upward import."""
    found = []
    for name, path in sorted(known.items()):
        mine = layer_of(name)
        for other, line in sorted(import_lines(name, path, known).items()):
            theirs = layer_of(other)
            if theirs > mine:
                found.append(f"{name} ({LAYERS[mine][0]}) imports {other} "
                             f"({LAYERS[theirs][0]}) at {path.relative_to(root)}:{line}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_loop_of_three_and_nothing_in_a_tree():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_between_modules():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert len(graph) > 100 and graph["localswap.cli"]     # the walk sees the package
    found = cycles(graph)
    detail = [" -> ".join(c) + ": " + "; ".join(
        f"{m} imports {sorted(graph[m] & set(c))}" for m in c) for c in found]
    assert not found, "import cycles:\n" + "\n".join(detail)


def test_no_module_imports_a_higher_layer():
    """The base sits below the stages, the stages below models/ and swap/, those below jobs/,
    and ui/ and the CLI on top: no exceptions, function-level imports counted."""
    known = modules()
    assert layer_of("localswap.settings") < layer_of("localswap.faces.detect") \
        < layer_of("localswap.jobs.submit") < layer_of("localswap.ui.app")
    found = layer_violations(known)
    assert not found, "imports of a higher layer:\n" + "\n".join(found)


def test_the_layer_check_names_an_upward_import_inside_a_function(tmp_path):
    """A stage importing the jobs layer inside a function is found, with module and line."""
    base = tmp_path / "localswap"
    (base / "convert").mkdir(parents=True)
    (base / "jobs").mkdir()
    for init in (base, base / "convert", base / "jobs"):
        (init / "__init__.py").write_text("")
    (base / "jobs" / "submit.py").write_text("def checked():\n    pass\n")
    (base / "convert" / "preview.py").write_text(
        "import numpy\n\n\ndef settings_from():\n"
        "    from localswap.jobs.submit import checked\n    return checked()\n")
    known = {"localswap": base / "__init__.py",
             "localswap.convert": base / "convert" / "__init__.py",
             "localswap.convert.preview": base / "convert" / "preview.py",
             "localswap.jobs": base / "jobs" / "__init__.py",
             "localswap.jobs.submit": base / "jobs" / "submit.py"}
    assert layer_violations(known, tmp_path) == [
        "localswap.convert.preview (convert) imports localswap.jobs.submit (jobs) at "
        "localswap/convert/preview.py:5"]
    (base / "convert" / "preview.py").write_text("import numpy\n")
    (base / "jobs" / "submit.py").write_text("from localswap.convert import preview\n")
    assert layer_violations(known, tmp_path) == []      # downward: allowed


def test_the_package_root_holds_only_the_core_modules():
    here = {p.stem for p in PACKAGE.glob("*.py")}
    assert here - ROOT_MODULES == set(), "move these into a folder: " + \
        ", ".join(sorted(here - ROOT_MODULES))


def test_no_function_is_over_100_lines():
    files = [*PACKAGE.rglob("*.py"), ROOT / "launch.py", *(ROOT / "tools").glob("*.py")]
    long = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                f"({lines} lines)")
    assert len(files) > 100
    assert not long, "split these functions:\n" + "\n".join(long)


def test_every_folder_of_the_package_is_a_package():
    """pyproject's package discovery installs only folders with an __init__.py."""
    folders = [d for d in PACKAGE.rglob("*") if d.is_dir() and d.name != "__pycache__"]
    assert folders and all((d / "__init__.py").is_file() for d in folders), \
        [str(d) for d in folders if not (d / "__init__.py").is_file()]


def test_in_ci_a_skipped_test_fails(tmp_path):
    """tests/ci_skips.py: with CI set a skip is a failure (a hardware skip excepted); without
    it a skip stays a skip. Run on a test file of its own, in a fresh pytest."""
    import os
    import subprocess
    import sys
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n"
        "def test_browser():\n    pytest.skip('Debian chromium is not installed')\n"
        "def test_gpu():\n    pytest.skip('a GPU is here: doctor runs its CUDA checks')\n"
        "def test_runs():\n    assert True\n")

    def run(ci: bool) -> str:
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env["PYTHONPATH"] = str(ROOT / "tests")
        if ci:
            env["CI"] = "1"
        out = subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_skips", "-q",
                              "-p", "no:cacheprovider", "test_skips.py"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
        return out.stdout.strip().splitlines()[-1]

    assert run(ci=False).startswith("1 passed, 2 skipped")
    line = run(ci=True)
    assert line.startswith("1 failed, 1 passed, 1 skipped"), line


def test_the_settings_choices_are_the_registries():
    """settings.py lists no choice of its own: the choice lists live in localswap/choices.py
    (below the stages), and the stages that act on them read the same objects, so a new
    detector, colour transfer, blend, mask, face type or architecture is a choice everywhere."""
    from dataclasses import fields

    from localswap import choices
    from localswap.convert import color
    from localswap.faces import align, detect
    from localswap.settings import ConvertSettings, ExtractSettings, TrainSettings
    from localswap.train import models

    def choices_of(cls, name):
        return next(f.metadata["choices"] for f in fields(cls) if f.name == name)
    assert choices_of(ConvertSettings, "color") is choices.COLOR_METHODS is color.METHODS
    assert choices_of(ConvertSettings, "blend") is choices.BLENDS
    assert choices_of(ConvertSettings, "mask") is choices.MASKS
    assert choices_of(ConvertSettings, "occlusion") is choices.OCCLUSION
    assert choices_of(ConvertSettings, "glasses") is choices.GLASSES
    assert choices_of(ConvertSettings, "detector") == choices_of(ExtractSettings, "detector") \
        == tuple(choices.DETECTORS)
    assert detect.DETECTORS is choices.DETECTORS and align.FACE_TYPE_BOX is choices.FACE_TYPE_BOX
    assert choices_of(ExtractSettings, "face_type") == tuple(choices.FACE_TYPE_BOX)
    assert choices_of(TrainSettings, "arch") == ("auto", *choices.ARCHS)
    assert models.ARCHS is choices.ARCHS and models.RESOLUTIONS is choices.RESOLUTIONS
    assert choices_of(TrainSettings, "resolution") == (0, *choices.RESOLUTIONS)
