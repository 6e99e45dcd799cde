"""The packages' layers, bottom to top: dsp_kernels -> channel_models -> zakotfs (the core)
-> streaming -> the command line (zakotfs.cli), bench and the GNU Radio blocks (gr_zakotfs).
A module imports only from its own layer and those below it, at module level and inside
functions alike; gr_zakotfs, beside the command line, imports nothing of it or of bench."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {"dsp_kernels": 0, "channel_models": 1, "zakotfs": 2, "streaming": 3, "zakotfs.cli": 4, "bench": 4,
          "gr_zakotfs": 4}
"""Layer of each package (the longest matching prefix of a module's name counts)."""


def _layer(module: str) -> int | None:
    """The layer of a dotted module name; None for a module outside the project."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    return None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``tree``, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def _project_modules() -> list[Path]:
    return sorted(p for package in ("dsp_kernels", "channel_models", "zakotfs", "streaming", "bench", "gr_zakotfs")
                  for p in (ROOT / package).rglob("*.py"))


def test_the_layer_map_covers_every_package():
    assert _layer("zakotfs.cli.rx") == 4 and _layer("zakotfs.receiver") == 2 and _layer("numpy") is None
    assert {p.relative_to(ROOT).parts[0] for p in _project_modules()} == {
        "dsp_kernels", "channel_models", "zakotfs", "streaming", "bench", "gr_zakotfs"}


def test_the_import_resolver_reads_relative_and_function_level_imports():
    tree = ast.parse("from .options import x\nfrom .. import config\ndef f():\n    import streaming.io\n")
    assert [name for _, name in _imported(tree, "zakotfs.cli.rx", False)] == [
        "zakotfs.cli.options.x", "zakotfs.config", "streaming.io"]


@pytest.mark.parametrize("path", _project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_from_a_layer_above_its_own(path):
    module = _module_name(path)
    own = _layer(module)
    upward = [f"line {line}: {name} (layer {_layer(name)} above {own})"
              for line, name in _imported(ast.parse(path.read_text()), module, path.name == "__init__.py")
              if (_layer(name) or 0) > own]
    assert not upward, f"{module} imports from a higher layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("path", sorted((ROOT / "gr_zakotfs").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_gnuradio_blocks_use_the_library_not_the_commands(path):
    module = _module_name(path)
    names = [name for _, name in _imported(ast.parse(path.read_text()), module, path.name == "__init__.py")]
    assert not [n for n in names if n.startswith(("zakotfs.cli", "bench"))], module
