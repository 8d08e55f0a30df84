"""The console scripts of pyproject.toml: each resolves to an importable function, every tools/NAME.py
is a thin caller of the same function as its vssm-NAME, and each answers --help."""
import ast
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
DEV_TOOLS = {"compare_cpu_builds"}  # needs numba (not a dependency): a tools/ script only
NEEDS_MMLAB = {"vssm-mm-train", "vssm-mm-test", "vssm-toy-twins"}


def _skip_without_mmlab(script):
    if script in NEEDS_MMLAB and (importlib.util.find_spec("mmengine") is None
                                  or not (importlib.util.find_spec("mmdet") or importlib.util.find_spec("mmseg"))):
        pytest.skip("needs the OpenMMLab stack")


def _entry(script):
    module, _, attr = SCRIPTS[script].partition(":")
    return importlib.import_module(module), attr


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"_tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_script_resolves_to_a_function_returning_an_exit_status(script):
    _skip_without_mmlab(script)
    assert script.startswith("vssm-") and SCRIPTS[script].count(":") == 1
    module, attr = _entry(script)
    func = getattr(module, attr)
    assert callable(func)
    # console scripts run sys.exit(func()): a result object there would print and exit 1
    assert inspect.signature(func).return_annotation in (int, "int"), f"{SCRIPTS[script]} must return an int"


def test_every_tool_has_a_script():
    tools = {p.stem for p in (ROOT / "tools").glob("*.py")} - DEV_TOOLS
    assert {f"vssm-{t.replace('_', '-')}" for t in tools} == set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_tool_is_a_thin_caller_of_the_script_function(script):
    _skip_without_mmlab(script)
    name = script.removeprefix("vssm-").replace("-", "_")
    path = ROOT / "tools" / f"{name}.py"
    module, attr = _entry(script)
    tool = _load_tool(name)
    called = [k for k, v in vars(tool).items() if v is getattr(module, attr)]
    assert called, f"{path.name} does not import {SCRIPTS[script]}"
    # nothing but imports and `if __name__ == "__main__": sys.exit(main())` below the docstring
    body = ast.parse(path.read_text()).body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), f"{path.name}: no docstring"
    *imports, guard = body[1:]
    assert all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in imports), path.name
    assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "__name__ == '__main__'", path.name
    assert [ast.unparse(s) for s in guard.body] == [f"sys.exit({called[0]}())"], path.name
    if module.__name__.startswith("vision_ssm.cli."):  # the usage is written once, in the module (--help)
        assert tool.__doc__.split("\n\n")[0] == module.__doc__.split("\n\n")[0], f"{path.name}: another summary"
        assert f"``{module.__name__}``" in tool.__doc__, f"{path.name}'s docstring does not point to {module.__name__}"


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_through_the_entry_point(script, capsys, monkeypatch):
    _skip_without_mmlab(script)
    module, attr = _entry(script)
    monkeypatch.setattr(sys, "argv", [script])
    with pytest.raises(SystemExit) as exit_:
        getattr(module, attr)(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out


def test_installed_script_runs():
    """The installed console script (pip install -e . puts it beside the interpreter)."""
    script = Path(sys.executable).with_name("vssm-render-benchmarks")
    if not script.is_file():
        pytest.skip("vision-ssm's console scripts are not installed in this environment")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=""))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: vssm-render-benchmarks") and "BENCHMARKS.md" in proc.stdout
