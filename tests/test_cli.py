"The `cogniverse-ft` console script as a user runs it."
import subprocess, sys
from pathlib import Path
from fastcore.test import test_eq as _eq
import cogniverse_ft
from cogniverse_ft.cli import COMMANDS

EXE = str(Path(sys.executable).parent / "cogniverse-ft")

def run(*args, **kw):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, **kw)

def test_help_lists_every_subcommand():
    r = run("--help")
    _eq(r.returncode, 0)
    for name in ["phoenix", "seed-demo", "finetune", "adapters", "experiments", "review", "run", "demo"]:
        assert name in r.stdout, name
    assert set(COMMANDS) >= {"phoenix", "seed-demo", "finetune", "adapters", "experiments", "review", "run", "demo"}

def test_version():
    r = run("--version")
    _eq((r.returncode, r.stdout.strip()), (0, f"cogniverse-ft {cogniverse_ft.__version__}"))

def test_no_command_prints_help_and_exits_2():
    r = run()
    _eq(r.returncode, 2)
    assert "usage: cogniverse-ft" in r.stdout

def test_bad_subcommand_is_a_usage_error():
    r = run("frobnicate")
    _eq(r.returncode, 2)
    assert "invalid choice" in r.stderr

def test_every_command_has_a_handler_or_says_it_is_not_available():
    from cogniverse_ft.cli import _handler
    for name in COMMANDS:
        if _handler(name) is None:
            r = run(name, *(["status"] if name == "phoenix" else []))
            _eq(r.returncode, 2)
            assert "not available" in r.stderr, (name, r.stderr)

def test_help_is_fast_and_does_not_import_torch():
    code = "import sys; from cogniverse_ft.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    _eq(r.stdout.strip(), "False")
