"""Your own Phoenix data: an app traced with OpenInference (OTel SDK over OTLP/HTTP) in a project not named `cogniverse-*`,
thumbs feedback under its own annotation name, read through a declared contract; `inspect`, the errors without the
mapping, tenant isolation, and a fine-tune that beats the base on the time split."""
import asyncio, json, os, subprocess, sys
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail

from openinference_app import write_openinference_app, LABELS

EXE = str(Path(sys.executable).parent / "cogniverse-ft")
PROJECT = "my-app"

def run(coro): return asyncio.run(coro)

@pytest.fixture(scope="module")
def app(phoenix_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("own-data")
    data = write_openinference_app(phoenix_server.url, PROJECT, seed=0)
    (d/"cogniverse-ft.yaml").write_text(data["contract_yaml"])
    (d/"declared.yaml").write_text(f"tenant: acme\nprojects: [{PROJECT}]\n")  # the project, no tasks yet
    return data, d, phoenix_server.url

def cli(*args, url, home=None, timeout=900):
    env = {**os.environ, **({"COGNIVERSE_FT_HOME": str(home)} if home else {})}
    return subprocess.run([EXE, *args, "--url", url], capture_output=True, text=True, timeout=timeout, env=env)

def _expected_examples(data) -> dict:
    "span id -> the label a human approved (their 👍, a correction, or a score >= 0.5), HUMAN annotators only."
    out = {}
    for r in data["routes"]:
        f = r["feedback"]
        if not f or f["annotator_kind"] != "HUMAN": continue
        if f.get("corrected_output"): out[r["span_id"]] = f["corrected_output"]
        elif f.get("label") == "👍" or (f.get("label") is None and (f.get("score") or 0) >= 0.5): out[r["span_id"]] = r["output"]
    return out

def test_inspect_names_the_annotation_and_suggests_the_config(app):
    data, d, url = app
    r = cli("inspect", "--config", str(d/"declared.yaml"), url=url)
    _eq(r.returncode, 5)  # EXIT_NO_DATA: no task has usable data
    assert f"project {PROJECT!r}: {data['counts']['total_spans']} spans" in r.stdout, r.stdout
    assert "annotations 'user_feedback'" in r.stdout and "annotators HUMAN" in r.stdout, r.stdout
    assert "180 LLM spans are named 'router.route': set select: \"name == 'router.route'\"" in r.stdout, r.stdout
    assert "annotations named 'user_feedback' with labels 👍/👎 found: set feedback.name: user_feedback" in r.stdout, r.stdout
    r = cli("inspect", "--config", str(d/"cogniverse-ft.yaml"), "--json", url=url)
    _eq(r.returncode, 0)
    rep = json.loads(r.stdout)
    t = rep["tasks"]["router"]
    _eq((t["matched"], t["sft_examples"]), (data["counts"]["routing_spans"], len(_expected_examples(data))))
    _eq(t["excluded_annotators"], {"LLM": data["counts"]["llm_annotator"]})
    _eq(sorted(t["label_space"]), sorted(LABELS))
    _eq(rep["usable"], True)

def test_records_keep_the_conversation(app):
    from cogniverse_ft.contract import load_contract
    from cogniverse_ft.telemetry import PhoenixProvider
    from cogniverse_ft.extract import TraceToInstructionConverter
    data, d, url = app
    c = load_contract(d/"cogniverse-ft.yaml")
    prov = PhoenixProvider("acme", base_url=url, projects=c.projects)
    ds = run(TraceToInstructionConverter(prov).convert(PROJECT, c.tasks["router"]))
    want = _expected_examples(data)
    _eq({e.metadata["span_id"]: e.output for e in ds}, want)  # every human judgement, each with the right label
    by = {e.metadata["span_id"]: e for e in ds}
    tool = by[data["tool_call_span_id"]]
    _eq([m["role"] for m in tool.conversation], ["user", "assistant", "tool"])
    assert tool.conversation[1]["content"].startswith("<tool_call>") and tool.instruction == data["system_prompt"]
    last = by[data["session"]["span_ids"][-1]]
    _eq([m["role"] for m in last.conversation], ["user", "assistant", "user", "assistant", "user"])
    _eq(last.input, last.conversation[-1]["content"])

def test_without_the_mapping_the_error_names_it(app, tmp_path):
    data, d, url = app
    r = cli("finetune", "--config", str(d/"declared.yaml"), "--no-generate-synthetic", url=url, home=tmp_path)
    _eq(r.returncode, 4)  # insufficient data
    for s in ("0 matched agent.type == 'routing'", "0 judged by annotations named 'approval'",
              "set feedback.name: user_feedback", "set select: \"name == 'router.route'\"", "cogniverse-ft inspect"):
        assert s in r.stdout, (s, r.stdout)

def test_another_tenant_cannot_read_the_project(app, tmp_path):
    from cogniverse_ft.telemetry import PhoenixProvider
    from cogniverse_ft.contract import contract_from_dict
    import pandas as pd
    data, d, url = app
    globex = PhoenixProvider("globex", base_url=url)
    _fail(lambda: run(globex.traces.get_spans(PROJECT)), contains="this provider serves tenant 'globex'")
    spans = pd.DataFrame(index=pd.Index([data["routes"][0]["span_id"]], name="context.span_id"))
    for sneaky in (PROJECT, f"cogniverse-globex./../{PROJECT}", "cogniverse-globex/../my-app"):
        _fail(lambda: run(globex.annotations.get_annotations(spans, sneaky)), exc=PermissionError)
    _fail(lambda: contract_from_dict({"tenant": "globex", "projects": ["cogniverse-acme"]}), contains="is named for tenant 'acme'")
    r = cli("inspect", "--tenant", "globex", "--project", PROJECT, url=url)
    _eq(r.returncode, 1); assert "PermissionError" in r.stderr and "Declare a project of your own" in r.stderr, r.stderr
    (tmp_path/"globex.yaml").write_text("tenant: globex\n")
    r = cli("finetune", "--config", str(tmp_path/"globex.yaml"), "--project", PROJECT, url=url, home=tmp_path)
    _eq(r.returncode, 1); assert "belongs to no tenant" in r.stderr, r.stderr

@pytest.mark.slow
def test_finetune_with_the_contract_beats_the_base(app, tmp_path):
    data, d, url = app
    r = cli("finetune", "--config", str(d/"cogniverse-ft.yaml"), "--task", "router", "--method", "sft", "--test-set-size", "20",
            "--epochs", "5", "--learning-rate", "3e-4", "--json", url=url, home=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    _eq((res["status"], res["training_method"], res["analysis"]["task"]["name"]), ("succeeded", "sft", "router"))
    split = next(s["info"] for s in res["stages"] if s["stage"] == "split")
    _eq((split["test"], split["fallback"]), (20, None))  # the 20 held-out examples all come from the last 7 days
    ev = res["evaluation"]
    assert ev["adapter_accuracy"] > ev["base_accuracy"], ev
    print(f"own data: base {ev['base_accuracy']:.0%} -> adapter {ev['adapter_accuracy']:.0%} (p={ev['p_value']:.3g}, n=20)")
