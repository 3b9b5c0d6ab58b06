"""The project's shape: the runtime reads forms without training or synthesis code, modules stay small, and the
exit codes and the two commands are what the README and the model cards say."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from formocr.errors import (
    ConfigError,
    CorruptInputError,
    DatasetError,
    DependencyError,
    ExitCode,
    FormOcrError,
    InputError,
    ModelError,
    RegistrationError,
    Timeout,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "formocr"
OFF_RUNTIME = ("formocr.train", "formocr.synth")
NOT_RUNTIME = (*OFF_RUNTIME, "formocr.data", "formocr.__main__")  # data: the training datasets' loaders
MAX_LINES = 450

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as formocr.options reads TOML
    import tomli as tomllib


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_files() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not _module(p).startswith(NOT_RUNTIME)]


def test_the_runtime_imports_no_training_or_synthesis() -> None:
    """Importing every runtime module (the CLI and batch included) loads nothing of formocr.train or formocr.synth."""
    modules = [_module(p) for p in _runtime_files()]
    assert {"formocr", "formocr.cli", "formocr.api", "formocr.pipeline", "formocr.batch.worker"} <= set(modules)
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            f"bad = sorted(m for m in sys.modules if m.startswith({OFF_RUNTIME!r}))\nassert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr


def test_no_runtime_source_imports_training_or_synthesis() -> None:
    """Not even lazily, inside a function: such an import would only fail at the moment it runs."""
    found = []
    for path in _runtime_files():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.startswith(OFF_RUNTIME)]
    assert not found


def test_no_module_is_over_450_lines() -> None:
    """One job per module: a module past this size is doing several (split it along them)."""
    long = {str(p.relative_to(ROOT)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES}
    assert not long


def test_both_commands_are_installed() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert scripts == {"formocr": "formocr.cli:main", "formocr-train": "formocr.train.cli:main"}


def test_training_lives_in_formocr_train_only() -> None:
    from formocr.cli import main as read
    from formocr.train.cli import main as train

    assert isinstance(read, click.Group) and isinstance(train, click.Group)
    assert set(read.commands) == {"scan", "batch", "review", "eval", "export", "template"}
    assert set(read.commands["eval"].commands) == {"results"}  # type: ignore[attr-defined]
    assert set(train.commands) == {"digits", "strings", "real-strings", "calibrate-fields", "combine-strings",
                                   "combine-digits", "extract-member", "eval", "data"}
    r = CliRunner().invoke(read, ["train", "digits", "--out", "x.safetensors"])
    assert r.exit_code == ExitCode.USAGE
    for cmd in ("digits", "strings", "real-strings", "calibrate-fields", "combine-strings", "combine-digits",
                "extract-member"):
        r = CliRunner().invoke(train, [cmd, "--help"])
        assert r.exit_code == 0 and "--out" in r.output
        out = next(p for p in train.commands[cmd].params if p.name == "out")
        assert out.required  # a training command never writes the shipped model by default


def test_model_cards_record_the_training_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from formocr.train import cli

    monkeypatch.setattr(sys, "argv", ["formocr-train", "strings", "--steps", "10", "--out", "runs/a b.safetensors"])
    assert cli._training_started("strings") == "formocr-train strings --steps 10 --out 'runs/a b.safetensors'"
    monkeypatch.setattr(sys, "argv", ["formocr-train"])
    assert cli._training_started("digits") == "formocr-train digits"


def test_exit_codes_are_defined_once() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 130]
    assert FormOcrError.exit_code is ExitCode.INTERNAL and InputError.exit_code is ExitCode.INPUT
    assert CorruptInputError.exit_code is Timeout.exit_code is ExitCode.CORRUPT
    assert ModelError.exit_code is ExitCode.MODEL and DependencyError.exit_code is ExitCode.DEPENDENCY
    assert ConfigError.exit_code is ExitCode.CONFIG and DatasetError.exit_code is ExitCode.DATASET
    assert RegistrationError.exit_code is ExitCode.REGISTRATION


def test_constraint_errors_are_formocr_errors() -> None:
    from formocr.constraints import Constraint, ConstraintError, Pattern, PatternError

    with pytest.raises(PatternError) as e:
        Pattern("[0-9", "0123456789")
    assert isinstance(e.value, ConfigError) and isinstance(e.value, ValueError)
    with pytest.raises(ConstraintError, match="max_digits 2 < min_digits 3") as c:
        Constraint(min_digits=3, max_digits=2)
    assert c.value.exit_code == ExitCode.CONFIG
