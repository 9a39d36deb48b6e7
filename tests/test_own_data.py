"""Your own Phoenix data: an app traced with OpenInference (OTel SDK over OTLP/HTTP) in a project not named `cogniverse-*`,
thumbs feedback under its own annotation name, read through a declared contract; `inspect`, the errors without the
mapping, tenant isolation, and a fine-tune that beats the base on the time split."""
import asyncio, json, os, subprocess, sys
import httpx
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail

from openinference_app import write_openinference_app, LABELS, ALLOWED_VALUE

EXE = str(Path(sys.executable).parent / "cogniverse-ft")
PROJECT = "my-app"

def run(coro): return asyncio.run(coro)

@pytest.fixture(scope="module")
def app(phoenix_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("own-data")
    data = write_openinference_app(phoenix_server.url, PROJECT, seed=0, pii=True)  # people paste personal data into chats
    (d/"cogniverse-ft.yaml").write_text(data["contract_yaml"] + f"privacy:\n  allow: [{ALLOWED_VALUE!r}]\n")
    (d/"declared.yaml").write_text(f"tenant: acme\nprojects: [{PROJECT}]\n")  # the project, no tasks yet
    return data, d, phoenix_server.url

def cli(*args, url, home=None, timeout=900, env=None):
    env = {**os.environ, **({"COGNIVERSE_FT_HOME": str(home)} if home else {}), **(env or {})}
    return subprocess.run([EXE, *args] + (["--url", url] if url else []), capture_output=True, text=True, timeout=timeout, env=env)

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
    assert r.returncode == 4, r.stderr[-3000:]  # insufficient data
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

def _phoenix_text(url:str, project:str) -> str:
    "Everything cogniverse_ft wrote to Phoenix for the run: EXPERIMENT/EVALUATION spans, test-set datasets, their experiments' runs."
    from cogniverse_ft.telemetry import PhoenixProvider
    prov = PhoenixProvider("acme", project, base_url=url, projects=[project])
    spans = run(prov.traces.get_spans())
    ours = spans[spans["span_kind"].isin(["EXPERIMENT", "EVALUATION"])]
    assert len(ours) >= 2, spans["span_kind"].value_counts()
    parts = [ours.to_json(default_handler=str, date_format="iso")]
    for ds in httpx.get(f"{url}/v1/datasets", timeout=30).json()["data"]:
        if not ds["name"].startswith(f"{project}."): continue
        parts.append(httpx.get(f"{url}/v1/datasets/{ds['id']}/examples", timeout=30).text)
        for ex in httpx.get(f"{url}/v1/datasets/{ds['id']}/experiments", timeout=30).json()["data"]:
            parts.append(httpx.get(f"{url}/v1/experiments/{ex['id']}/runs", timeout=30).text)
    assert len(parts) >= 3, "the test set dataset and its experiments were not found"
    review = PhoenixProvider("acme", "cogniverse-acme.review", base_url=url)  # synthetic candidates for review, if any were made
    parts.append(run(review.traces.get_spans()).to_json(default_handler=str, date_format="iso"))
    return "\n".join(parts)

def _files_text(folder:Path) -> str:
    "Every file under `folder` as text (the dequantized model cache and weight files excepted: they hold no text we wrote)."
    keep = lambda p: p.is_file() and "cache" not in p.relative_to(folder).parts and p.suffix != ".safetensors"
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in Path(folder).rglob("*") if keep(p))

@pytest.mark.slow
def test_finetune_with_the_contract_beats_the_base(app, tmp_path):
    """Also issue 10: PII in the inputs never leaves Phoenix (records, run folder, registry, Phoenix datasets/spans, report),
    and secrets set for the run (HF token, Phoenix key, a storage password) are never written anywhere."""
    data, d, url = app
    secrets = {"HF_TOKEN": "hf_SeCrEtToKeN0123456789", "PHOENIX_API_KEY": "phx-SeCrEt-KeY-9876"}
    r = cli("finetune", "--config", str(d/"cogniverse-ft.yaml"), "--task", "router", "--method", "sft", "--test-set-size", "20",
            "--epochs", "3", "--learning-rate", "3e-4", "--adapter-storage-uri", "memory://svc:PASSW0RD-42@bucket/own",
            "--json", url=url, home=tmp_path, env=secrets)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    _eq((res["status"], res["training_method"], res["analysis"]["task"]["name"]), ("succeeded", "sft", "router"))
    split = next(s["info"] for s in res["stages"] if s["stage"] == "split")
    _eq((split["test"], split["fallback"]), (20, None))  # the 20 held-out examples all come from the last 7 days
    ev = res["evaluation"]
    assert ev["adapter_accuracy"] > ev["base_accuracy"], ev
    print(f"own data: base {ev['base_accuracy']:.0%} -> adapter {ev['adapter_accuracy']:.0%} (p={ev['p_value']:.3g}, n=20)")
    pii = res["analysis"]["privacy"]
    assert pii["enabled"] and all(pii["sft"].get(f"pii_{k}", 0) > 0 for k in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD",
                                                                             "IBAN_CODE", "IP_ADDRESS", "PERSON")), pii
    from cogniverse_ft.report import render_report
    report = render_report("acme", PROJECT, agent_type="router", base_url=url, out=tmp_path/"report.html", projects=[PROJECT])
    written = {"run folder": _files_text(res["adapter_path"]), "registry": _files_text(tmp_path/"registry"),
               "phoenix": _phoenix_text(url, PROJECT), "report": report.read_text(), "result": r.stdout, "log": r.stderr,
               "home": _files_text(tmp_path)}
    for where, text in written.items():
        for v in [*secrets.values(), "PASSW0RD-42"]: assert v not in text, f"secret {v!r} reached the {where}"
    raw = [v for v, n in data["pii"].items() if n]
    assert len(raw) == 6, data["pii"]
    for where, text in written.items():
        for v in raw: assert v not in text, f"{v!r} reached the {where}"
    for lab in LABELS: assert lab in written["phoenix"]  # labels intact
    assert "pii_EMAIL_ADDRESS" in written["report"] and "pii_PERSON" in written["report"]  # the counts are in the report
    # lineage: the registry knows which spans this adapter learned from, and only for its tenant
    summary = json.loads(Path(res["adapter_path"], "training_summary.json").read_text())
    trained_span = summary["source_span_ids"][0]
    r = cli("adapters", "trained-on", "--tenant", "acme", "--span-id", trained_span, "--json", url=None, home=tmp_path)
    assert r.returncode == 0 and res["adapter_id"] in r.stdout, (r.stdout, r.stderr[-2000:])
    r = cli("adapters", "trained-on", "--tenant", "globex", "--span-id", trained_span, "--json", url=None, home=tmp_path)
    assert r.returncode == 0 and res["adapter_id"] not in r.stdout, r.stdout
    # the allow-listed value stays in the examples trained on (scrubbed as the run scrubbed them)
    from cogniverse_ft.contract import load_contract
    from cogniverse_ft.extract import instruction_dataset, task_scrubber, scrub_dataset, read_task_frames
    from cogniverse_ft.telemetry import PhoenixProvider
    c = load_contract(d/"cogniverse-ft.yaml"); t = c.tasks["router"]
    s, a = run(read_task_frames(PhoenixProvider("acme", base_url=url, projects=c.projects), t, PROJECT))
    clean = scrub_dataset(instruction_dataset(s, a, t), task_scrubber(t.privacy, list(LABELS)))
    assert any(ALLOWED_VALUE in e.input for e in clean) and not any(v in e.input for e in clean for v in raw)
