"""Experiment tracking on a real Phoenix: EXPERIMENT/EVALUATION spans land and are read back by list_experiments,
the base/adapter(/baseline) dataset + experiments, the baseline, base-without-label-list and activation attributes read
back, compare, tenant isolation, the experiments command, and the report rendered for a tenant to standalone HTML."""
import json, re, uuid
from pathlib import Path
from types import SimpleNamespace as NS
import httpx, pytest
from fastcore.test import test_eq as _eq, test_close as _close, test_fail as _fail
from cogniverse_ft.core import OrchestrationConfig, run_sync
from cogniverse_ft.telemetry import PhoenixProvider
from cogniverse_ft.tracking import (log_experiment, log_evaluation, list_experiments, get_experiment_details,
                                    compare_experiments, EXPERIMENT_KIND)
from cogniverse_ft.evaluate import (AdapterEvaluator, FailedEvaluation, EvaluationResult, EvaluationMetrics, mcnemar_exact,
                                    synthetic_routing_examples, ROUTING_LABELS)
from cogniverse_ft.cli import main as cli_main


def _tenant(): return f"trk{uuid.uuid4().hex[:8]}"


def _run(tmp_path, run_id, method="sft", loss=0.2, steps=10, secret=None):
    d = tmp_path / run_id
    d.mkdir()
    (d / "loss_history.json").write_text(json.dumps({"train": [{"step": s, "loss": loss * 10 / s} for s in range(1, steps + 1)],
                                                   "eval": [{"step": steps, "eval_loss": loss * 1.5}]}))
    metrics = {"train_loss": loss, "train_samples": 120, "epochs_completed": 3, "train_examples": 40, "eval_loss": loss * 1.5}
    if secret: metrics["api_key"] = secret
    return NS(training_method=method, base_model="HuggingFaceTB/SmolLM2-135M-Instruct", metrics=metrics,
              lora_config={"use_lora": True, "r": 8, "lora_alpha": 16}, adapter_path=str(d), adapter_id=str(uuid.uuid4()),
              adapter_uri=None, used_synthetic=False, synthetic_approved_count=0, experiment_run_id=run_id, status="succeeded")


def _cfg(tenant, **kw):
    return OrchestrationConfig(tenant_id=tenant, project=f"cogniverse-{tenant}", model_type="llm", agent_type="routing", **kw)


ANALYSIS = {"total_spans": 321, "approved_count": 55, "rejected_count": 9, "preference_pairs": 4}


def _metrics(ok, conf, ms=100.0):
    n = len(ok)
    return EvaluationMetrics(sum(ok) / n, sum(ok) / n, conf, 0.1, 1 - sum(ok) / n, 0.0, ms, n)


# outcomes on 8 test examples: base 3/8, base without the label list 1/8, baseline 7/8, adapter 6/8
OK = {"base": [1, 0, 0, 1, 0, 0, 1, 0], "base_plain": [1, 0, 0, 0, 0, 0, 0, 0], "baseline": [1, 1, 1, 1, 1, 1, 1, 0],
      "adapter": [1, 1, 1, 1, 0, 1, 1, 0]}
ACTIVATION = {"rule": "baseline", "activate": False, "activated": False, "compared_with": ["base", "baseline"],
              "reason": "adapter 75.0% is below baseline 87.5%"}


def _hand_evaluation(run_id, baseline=True, activation=ACTIVATION):
    "An EvaluationResult built by hand (no model): base, base without the label list, baseline and adapter on 8 routing examples."
    labels = ["video_search_agent", "text_search_agent"]
    lab = lambda ok: labels[0] if ok else labels[1]
    preds = []
    for i in range(8):
        p = dict(input=f"find clip {i}", expected=labels[0], base_prediction=lab(OK["base"][i]), base_confidence=0.5,
                 base_correct=bool(OK["base"][i]), adapter_prediction=lab(OK["adapter"][i]), adapter_confidence=0.8,
                 adapter_correct=bool(OK["adapter"][i]), base_plain_prediction=lab(OK["base_plain"][i]),
                 base_plain_correct=bool(OK["base_plain"][i]))
        if baseline: p.update(baseline_prediction=lab(OK["baseline"][i]), baseline_confidence=0.6, baseline_correct=bool(OK["baseline"][i]))
        preds.append(p)
    ev = EvaluationResult("routing", "/adapters/sft_routing", "HuggingFaceTB/SmolLM2-135M-Instruct", "score", 8,
                          _metrics(OK["base"], 0.5), _metrics(OK["adapter"], 0.8), mcnemar_exact(OK["base"], OK["adapter"]),
                          labels, preds, run_id, plain_base_metrics=_metrics(OK["base_plain"], 0.5),
                          label_prompt="Answer with exactly one of these labels: {labels}.", activation=dict(activation or {}))
    if baseline:
        ev.baseline_metrics, ev.baseline_significance = _metrics(OK["baseline"], 0.6, 2.0), mcnemar_exact(OK["baseline"], OK["adapter"])
        ev.baseline = {"model": "sentence-transformers/all-MiniLM-L6-v2", "classifier": "logistic_regression", "class_weight": "balanced",
                       "C": 1.0, "train_examples": 32, "labels": 2, "fit_seconds": 0.8}
    return ev


@pytest.fixture(scope="module")
def real_evaluation(tmp_path_factory):
    "A real EvaluationResult: SmolLM2 with a random (untrained) LoRA adapter, 6 routing examples."
    import torch
    from peft import LoraConfig, get_peft_model
    from cogniverse_ft.models import load_causal_lm
    torch.manual_seed(0)
    model, tok = load_causal_lm(device="cpu")
    pm = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.05)
    path = tmp_path_factory.mktemp("adapters") / "sft_routing_rand"
    pm.save_pretrained(path)
    test = synthetic_routing_examples(6, seed=4)
    ev = AdapterEvaluator(path, "routing", valid_labels=list(ROUTING_LABELS)).evaluate(test, model=pm.unload(), tokenizer=tok)
    return ev, test


def test_spans_land_and_are_read_back(phoenix_server, tmp_path, real_evaluation):
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    res = _run(tmp_path, "run_2026-01-01T00:00:00_aaa")
    sid = log_experiment(prov, _cfg(tenant, epochs=3, batch_size=4, learning_rate=2e-4), res, ANALYSIS)  # as the orchestrator resolves it
    # confirmed: readable right away through Phoenix's own REST API, no waiting
    got = httpx.get(f"{phoenix_server.url}/v1/projects/cogniverse-{tenant}/spans", params={"span_id": [sid]}).json()["data"]
    _eq(len(got), 1)
    _eq((got[0]["span_kind"], got[0]["attributes"]["experiment.run_id"]), (EXPERIMENT_KIND, res.experiment_run_id))
    ev, test = real_evaluation
    ev.run_id = res.experiment_run_id
    esid = log_evaluation(prov, _cfg(tenant), ev, test_examples=test)
    exps = run_sync(list_experiments(prov))
    _eq(len(exps), 1)
    e = exps[0]
    _eq((e["run_id"], e["span_id"], e["agent_type"], e["method"], e["tenant_id"]), (res.experiment_run_id, sid, "routing", "sft", tenant))
    _eq({k: e["params"][k] for k in ("base_model", "method", "backend", "epochs", "batch_size", "learning_rate", "use_lora",
                                     "lora_r", "lora_alpha")},
        {"base_model": res.base_model, "method": "sft", "backend": "local", "epochs": 3, "batch_size": 4,
         "learning_rate": 2e-4, "use_lora": True, "lora_r": 8, "lora_alpha": 16})
    _eq({k: e["data"][k] for k in ("total_spans", "approved_count", "rejected_count", "preference_pairs", "dataset_size",
                                   "used_synthetic")}, {**ANALYSIS, "dataset_size": 40, "used_synthetic": False})
    _eq((e["metrics"]["train_loss"], e["metrics"]["train_samples"], e["metrics"]["epochs_completed"]), (0.2, 120, 3))
    _eq((e["output"]["adapter_path"], e["output"]["adapter_id"]), (res.adapter_path, res.adapter_id))
    _eq(len(e["history"]["train_loss"]), 10); _eq(e["history"]["eval_loss"][0][0], 10); _close(e["history"]["eval_loss"][0][1], 0.3)
    # the evaluation joined by run id carries the spec schema with the evaluator's numbers
    v = e["evaluation"]
    _eq((v["span_id"], v["info"]["test_size"], v["info"]["agent_type"]), (esid, 6, "routing"))
    want = ev.to_span_attributes()
    for who in ("base", "adapter"):
        for k in ("accuracy", "confidence", "error_rate", "hallucination_rate", "latency_ms"):
            _close(v[who][k], want[f"metrics.{who}.{k}"], eps=1e-6)
    for k in ("accuracy", "confidence", "error_reduction", "latency_overhead", "p_value"):
        _close(v["improvement"][k], want[f"improvement.{k}"], eps=1e-6)
    _eq(v["improvement"]["significant"], want["improvement.significant"])
    _eq(run_sync(get_experiment_details(prov, run_id=res.experiment_run_id))["span_id"], sid)


def test_dataset_and_two_experiments(phoenix_server, real_evaluation):
    from phoenix.client import Client
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    ev, test = real_evaluation
    ev.run_id = "run_ds"
    log_evaluation(prov, _cfg(tenant), ev, test_examples=test)
    v = run_sync(list_experiments(prov))  # no EXPERIMENT span: read the EVALUATION span directly
    _eq(v, [])
    df = run_sync(prov.traces.get_spans(span_kind="EVALUATION"))
    info = {c[len("attributes.evaluation."):]: df.iloc[0][c] for c in df.columns if c.startswith("attributes.evaluation.")}
    c = Client(base_url=phoenix_server.url)
    ds = c.datasets.get_dataset(dataset=info["dataset_id"])
    _eq(len(ds.examples), 6)
    ex = sorted(ds.examples, key=lambda x: x["metadata"]["row"])
    _eq([x["input"]["query"] for x in ex], [t["input"] for t in test])
    _eq([x["output"]["expected"] for x in ex], [t["output"] for t in test])
    assert all("." not in k for x in ex for k in list(x["input"]) + list(x["output"]) + list(x["metadata"]))
    exps = httpx.get(f"{phoenix_server.url}/v1/datasets/{info['dataset_id']}/experiments").json()["data"]
    _eq(sorted((x["name"], x["successful_run_count"]) for x in exps), [("adapter", 6), ("base", 6)])
    for who in ("base", "adapter"):
        runs = httpx.get(f"{phoenix_server.url}/v1/experiments/{info[f'{who}_experiment_id']}/runs").json()["data"]
        by_example = {r["dataset_example_id"]: r["output"]["prediction"] for r in runs}
        preds = [by_example[x.get("node_id") or x["id"]] for x in ex]
        _eq(preds, [p[f"{who}_prediction"] for p in ev.predictions])


def test_failed_evaluation_is_recorded(phoenix_server, tmp_path):
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    res = _run(tmp_path, "run_fail")
    log_experiment(prov, _cfg(tenant), res, ANALYSIS)
    log_evaluation(prov, _cfg(tenant), FailedEvaluation("routing", res.adapter_path, "ValueError: No test data", "test data", "run_fail"))
    v = run_sync(list_experiments(prov))[0]["evaluation"]
    _eq((v["status"], v["info"]["error"], v["info"]["failed_stage"]), ("failed", "ValueError: No test data", "test data"))
    df = run_sync(prov.traces.get_spans(span_kind="EVALUATION"))
    _eq(df.iloc[0]["status_code"], "ERROR")


def test_filters_compare_and_tenant_isolation(phoenix_server, tmp_path):
    tenant, other = _tenant(), _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    secret = "sk-" + uuid.uuid4().hex
    runs = [("run_a", "sft", 0.5, "routing"), ("run_b", "dpo", 0.3, "routing"), ("run_c", "sft", 0.4, "profile_selection")]
    for rid, method, loss, target in runs:
        cfg = OrchestrationConfig(tenant_id=tenant, project=f"cogniverse-{tenant}", model_type="llm", agent_type=target,
                                  learning_rate=1e-4 if rid == "run_b" else 2e-4)
        log_experiment(prov, cfg, _run(tmp_path, rid, method, loss, secret=secret), ANALYSIS)
    _eq([e["run_id"] for e in run_sync(list_experiments(prov))], ["run_c", "run_b", "run_a"])  # newest first
    _eq([e["run_id"] for e in run_sync(list_experiments(prov, agent_type="routing"))], ["run_b", "run_a"])
    _eq([e["run_id"] for e in run_sync(list_experiments(prov, method="sft", limit=1))], ["run_c"])
    c = run_sync(compare_experiments(prov, run_ids=["run_a", "run_b"]))
    _eq(c["best_run"], "run_b")
    _eq(sorted(c["differing_params"]), ["learning_rate", "method"])
    _eq(list(c["params"].columns), ["run_a", "run_b"])
    _close(c["metrics"].loc["train_loss"].tolist(), [0.5, 0.3], eps=1e-9)
    _eq(set(c["curves"]), {"run_a", "run_b"})
    _fail(lambda: run_sync(compare_experiments(prov, run_ids=["run_a", "run_zzz"])), contains="['run_zzz']")
    # secrets never reach Phoenix
    raw = httpx.get(f"{phoenix_server.url}/v1/projects/cogniverse-{tenant}/spans", params={"limit": 100}).text
    assert secret not in raw and "***" in raw
    # another tenant's provider can neither read nor write this tenant's project
    oprov = PhoenixProvider(other, base_url=phoenix_server.url)
    _eq(run_sync(list_experiments(oprov)), [])
    _fail(lambda: run_sync(list_experiments(oprov, project=f"cogniverse-{tenant}")), contains=f"belongs to tenant '{tenant}'")
    _fail(log_experiment, args=(oprov, _cfg(other), _run(tmp_path, "run_x")), kwargs=dict(project=f"cogniverse-{tenant}"),
          contains="belongs to tenant")


def test_experiments_command(phoenix_server, tmp_path, capsys):
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    for rid, loss in (("run_1", 0.4), ("run_2", 0.2)):
        log_experiment(prov, _cfg(tenant), _run(tmp_path, rid, loss=loss), ANALYSIS)
    _eq(cli_main(["experiments", "list", "--tenant", tenant, "--url", phoenix_server.url]), 0)
    out = capsys.readouterr().out
    assert out.index("run_2") < out.index("run_1") and "train_loss" in out, out
    _eq(cli_main(["experiments", "compare", "run_1", "run_2", "--tenant", tenant, "--url", phoenix_server.url, "--json"]), 0)
    _eq(json.loads(capsys.readouterr().out)["best_run"], "run_2")
    _eq(cli_main(["experiments", "compare", "run_9", "--tenant", tenant, "--url", phoenix_server.url]), 1)
    assert "run_9" in capsys.readouterr().err


@pytest.mark.slow
def test_report_rendered_for_a_tenant(phoenix_server, tmp_path, real_evaluation):
    from cogniverse_ft.report import render_report, ReportError
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    ev, test = real_evaluation
    for rid, method, loss in (("run_r1", "sft", 0.31), ("run_r2", "dpo", 0.27)):
        log_experiment(prov, _cfg(tenant), _run(tmp_path, rid, method, loss), ANALYSIS)
    ev.run_id = "run_r2"
    log_evaluation(prov, _cfg(tenant), ev, dataset=False)
    out = render_report(tenant, base_url=phoenix_server.url, out=tmp_path / "reports" / "r.html")
    html = out.read_text()
    for needle in ["Fine-tuning report", f"cogniverse-{tenant}", "Summary", "Experiment history", "Run details",
                   "Base vs adapter", "Comparison", "run_r1", "run_r2", "0.27", "<svg", "Loss curves", "exact McNemar"]:
        assert needle in html, needle
    assert f"{ev.adapter_metrics.accuracy:.1%}" in html and f"{ev.base_metrics.accuracy:.1%}" in html
    assert not re.search(r'<script[^>]+src="https?://', html) and "import pandas" not in html  # standalone, no code
    assert out.with_suffix(".ipynb").exists()
    only_sft = render_report(tenant, method="sft", base_url=phoenix_server.url, out=tmp_path / "sft.html").read_text()
    assert "run_r1" in only_sft and "run_r2" not in only_sft
    _fail(render_report, args=("../x",), contains="Invalid tenant_id")
    with pytest.raises(ReportError) as e:  # nothing listens there: the failing cell is named
        render_report(tenant, base_url="http://127.0.0.1:9", out=tmp_path / "bad.html")
    assert "failed in cell" in str(e.value) and tenant in str(e.value)
    assert not (tmp_path / "bad.html").exists()


def test_baseline_and_activation_read_back(phoenix_server, tmp_path):
    "The baseline, base-without-label-list, vs-baseline and activation attributes come back grouped; the baseline gets its experiment."
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    res = _run(tmp_path, "run_bl")
    res.activation = ACTIVATION
    log_experiment(prov, _cfg(tenant), res, ANALYSIS)
    ev = _hand_evaluation("run_bl")
    log_evaluation(prov, _cfg(tenant), ev)
    e = run_sync(list_experiments(prov))[0]
    _eq(e["activation"], ACTIVATION)  # on the EXPERIMENT span too (a failed evaluation carries none)
    v = e["evaluation"]
    _close((v["base"]["accuracy"], v["base_plain"]["accuracy"], v["baseline"]["accuracy"], v["adapter"]["accuracy"]),
           (3 / 8, 1 / 8, 7 / 8, 6 / 8), eps=1e-9)
    s = ev.baseline_significance
    _eq((v["vs_baseline"]["verdict"], v["vs_baseline"]["baseline_only_correct"], v["vs_baseline"]["adapter_only_correct"],
         v["vs_baseline"]["n"], v["vs_baseline"]["significant"]), ("loses", s.base_only, s.adapter_only, 8, False))
    _eq((s.base_only, s.adapter_only), (1, 0))
    for k in ("accuracy", "p_value", "ci_low", "ci_high"):
        _close(v["vs_baseline"][k], getattr(s, "accuracy_difference" if k == "accuracy" else k), eps=1e-9)
    _eq((v["baseline_info"]["model"], v["baseline_info"]["train_examples"], v["baseline_info"]["classifier"]),
        ("sentence-transformers/all-MiniLM-L6-v2", 32, "logistic_regression"))
    _eq(v["info"]["label_prompt"], ev.label_prompt)
    _eq(v["activation"], ACTIVATION)
    _eq(v["compared"], {})
    # the baseline's predictions are a third experiment on the test-set dataset
    exps = httpx.get(f"{phoenix_server.url}/v1/datasets/{v['info']['dataset_id']}/experiments").json()["data"]
    _eq(sorted((x["name"], x["successful_run_count"]) for x in exps), [("adapter", 8), ("base", 8), ("baseline", 8)])
    runs = httpx.get(f"{phoenix_server.url}/v1/experiments/{v['info']['baseline_experiment_id']}/runs").json()["data"]
    _eq(sorted(r["output"]["prediction"] for r in runs), sorted(p["baseline_prediction"] for p in ev.predictions))
    meta = next(x for x in exps if x["name"] == "baseline")["metadata"]
    _eq(meta["model"], "sentence-transformers/all-MiniLM-L6-v2"); _close(meta["accuracy"], 7 / 8, eps=1e-9)
    # the history table and compare carry the baseline too
    from cogniverse_ft.tracking import history_frame
    h = history_frame([e]).iloc[0]
    _close(h["baseline_acc"], 7 / 8, eps=1e-9); _eq(h["vs_baseline"], "loses")
    log_experiment(prov, _cfg(tenant), _run(tmp_path, "run_bl2"), ANALYSIS)
    _close(run_sync(compare_experiments(prov, run_ids=["run_bl", "run_bl2"]))["metrics"].loc["baseline_accuracy", "run_bl"], 7 / 8, eps=1e-9)


def test_without_baseline_two_experiments_and_empty_groups(phoenix_server):
    "An evaluation without a baseline (an open task, an older run) uploads two experiments and reads back empty groups."
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    ev = _hand_evaluation("run_nobl", baseline=False, activation=None)
    ev.plain_base_metrics, ev.label_prompt = None, None
    log_evaluation(prov, _cfg(tenant), ev)
    df = run_sync(prov.traces.get_spans(span_kind="EVALUATION"))
    from cogniverse_ft.tracking import _evaluation
    v = _evaluation(df.iloc[0])
    _eq((v["baseline"], v["base_plain"], v["vs_baseline"], v["baseline_info"], v["activation"], v["compared"]), ({}, {}, {}, {}, {}, {}))
    exps = httpx.get(f"{phoenix_server.url}/v1/datasets/{v['info']['dataset_id']}/experiments").json()["data"]
    _eq(sorted(x["name"] for x in exps), ["adapter", "base"])
    assert "baseline_experiment_id" not in v["info"]


def test_report_shows_baseline_and_activation(phoenix_server, tmp_path):
    "The rendered report has the baseline column, the no-label-list base, both significance lines, the verdict and the rule."
    from cogniverse_ft.report import render_report
    tenant = _tenant()
    prov = PhoenixProvider(tenant, base_url=phoenix_server.url)
    res = _run(tmp_path, "run_rep")
    res.activation = ACTIVATION
    log_experiment(prov, _cfg(tenant), res, ANALYSIS)
    ev = _hand_evaluation("run_rep")
    log_evaluation(prov, _cfg(tenant), ev, dataset=False)
    html = render_report(tenant, base_url=phoenix_server.url, out=tmp_path / "r.html").read_text()
    for needle in ["Base vs adapter", "<th>baseline</th>", "<th>base (no label list)</th>", "Δ vs baseline",
                   "Statistically significant improvement" if ev.significance.significant else "Not a significant improvement",
                   "Not significantly better than the baseline", "baseline-only right 1",
                   "The adapter loses to the baseline (sentence-transformers/all-MiniLM-L6-v2 + logistic regression): 75.0% vs 87.5%",
                   f"p={ev.baseline_significance.p_value:.3g}", "Activation rule <code>baseline</code>", "not activated",
                   "adapter 75.0% is below baseline 87.5%", "Without that list the base scores 12.5%", "87.5%"]:
        assert needle in html, needle
    # an old run (no baseline, no activation) still renders
    t2 = _tenant()
    p2 = PhoenixProvider(t2, base_url=phoenix_server.url)
    log_experiment(p2, _cfg(t2), _run(tmp_path, "run_old"), ANALYSIS)
    old = _hand_evaluation("run_old", baseline=False, activation=None)
    old.plain_base_metrics, old.label_prompt = None, None
    log_evaluation(p2, _cfg(t2), old, dataset=False)
    html2 = render_report(t2, base_url=phoenix_server.url, out=tmp_path / "old.html").read_text()
    assert "Base vs adapter" in html2 and "Δ vs base" in html2 and "Δ vs baseline" not in html2 and "Activation rule" not in html2
