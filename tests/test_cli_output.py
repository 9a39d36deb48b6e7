"""What a user sees on the command line: output to a pipe has no carriage returns and no FutureWarning, each `--json`
prints one JSON document, and `| head` exits quietly."""
import json, os, subprocess, sys, uuid
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq

EXE = str(Path(sys.executable).parent / "cogniverse-ft")

def cli(*args, home, timeout=900):
    env = {**os.environ, "COGNIVERSE_FT_HOME": str(home)}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=env)  # stdout and stderr are pipes

def one_json(r):
    "The command's stdout parsed as exactly one JSON document (fails naming the command's output otherwise)."
    assert r.returncode == 0, r.stderr[-3000:]
    try: return json.loads(r.stdout)
    except json.JSONDecodeError as e: raise AssertionError(f"not one JSON document ({e}): {r.stdout[:500]!r}") from None

def clean(r):
    "No carriage-return progress bars and no FutureWarning in what a pipe received."
    both = r.stdout + r.stderr
    assert "\r" not in both, [l for l in both.split("\n") if "\r" in l][:3]
    assert "FutureWarning" not in both, [l for l in both.splitlines() if "FutureWarning" in l][:3]

@pytest.fixture(scope="module")
def run(phoenix_server, tmp_path_factory, tiny):
    "A seeded tenant and one finetune run (tiny model, 3 steps) through the CLI, output to pipes."
    home, tenant = tmp_path_factory.mktemp("cli-home"), "cli" + uuid.uuid4().hex[:6]
    url = phoenix_server.url
    seed = cli("seed-demo", "--tenant", tenant, "--n-routing", "70", "--n-search", "10", "--n-sessions", "2", "--url", url, "--json", home=home)
    ft = cli("finetune", "--tenant", tenant, "--agent-type", "routing", "--base-model", tiny, "--max-steps", "3", "--test-set-size", "10",
             "--baseline-model", "none", "--output-dir", str(home / "adapters"), "--url", url, "--json", home=home)
    return dict(home=home, tenant=tenant, url=url, seed=seed, finetune=ft)

def test_finetune_to_a_pipe_is_quiet_and_clean(run):
    res = one_json(run["finetune"])
    _eq((res["status"], res["training_method"]), ("succeeded", "sft"))
    clean(run["finetune"])
    lines = run["finetune"].stderr.splitlines()
    assert len(lines) < 60, "\n".join(lines)  # stage lines and progress, not a line per step or per log call

def test_every_json_is_one_document(run):
    home, tenant, url = run["home"], run["tenant"], run["url"]
    _eq(one_json(run["seed"])["project"], f"cogniverse-{tenant}")
    adapter = one_json(run["finetune"])["adapter_id"]
    for args in (["phoenix", "status", "--url", url], ["inspect", "--tenant", tenant, "--url", url],
                 ["adapters", "list", "--tenant", tenant], ["adapters", "show", adapter, "--tenant", tenant],
                 ["experiments", "list", "--tenant", tenant, "--url", url]):
        r = cli(*args, "--json", home=home)
        one_json(r); clean(r)

def test_head_closing_the_pipe_is_quiet(run):
    "`adapters list --json | head`: the reader goes away before the command writes; no traceback, no BrokenPipeError."
    env = {**os.environ, "COGNIVERSE_FT_HOME": str(run["home"])}
    p = subprocess.Popen([EXE, "adapters", "list", "--tenant", run["tenant"], "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # like `head` exiting at once
    err = p.stderr.read().decode(); p.wait(timeout=300)
    assert "BrokenPipeError" not in err and "Traceback" not in err, err
    assert p.returncode in (0, 141), (p.returncode, err)
