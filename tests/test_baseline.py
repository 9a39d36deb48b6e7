"Honest evaluation end to end: the embedding baseline in finetune()'s result, the label list in the prompts, activation rules."
import json
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.core import OrchestrationConfig, LABEL_PROMPT
from cogniverse_ft.demo_data import seed_demo_telemetry
from cogniverse_ft.telemetry import PhoenixProvider
from cogniverse_ft.registry import AdapterRegistry
from cogniverse_ft.orchestrator import FinetuningOrchestrator

NONE = dict(n_routing=0, n_pairs=0, n_rejected=0, n_unreviewed=0, n_profile=0, n_entity=0, n_search=0, n_sessions=0, bad_spans=False)
UNDERTRAINED = {"max_steps": 1, "max_length": 128}  # one optimizer step: the adapter is about the base model


@pytest.fixture(scope="module")
def honest(phoenix_server, tmp_path_factory):
    "A tenant with 80 approved routing decisions in Phoenix, and a registry."
    seed_demo_telemetry("honest", base_url=phoenix_server.url, progress=False, **{**NONE, "n_routing": 80})
    reg = AdapterRegistry(f"sqlite:///{tmp_path_factory.mktemp('reg')}/registry.db")
    yield PhoenixProvider("honest", base_url=phoenix_server.url), reg
    reg.close()


def test_baseline_rule_refuses_an_adapter_that_loses_to_the_baseline(honest, tmp_path):
    prov, reg = honest
    cfg = OrchestrationConfig(tenant_id="honest", project=prov.project, model_type="llm", agent_type="routing",
                              test_set_size=20, activation_rule="baseline", output_dir=str(tmp_path))
    res = FinetuningOrchestrator(prov, registry=reg, train_overrides=UNDERTRAINED).run_sync(cfg)
    _eq(res.status, "succeeded")
    ev = res.evaluation_result
    assert ev.baseline_metrics is not None, ev.baseline
    _eq(ev.baseline["train_examples"], next(s for s in res.stages if s["stage"] == "split")["info"]["train"])  # the training split only
    assert ev.baseline_metrics.accuracy > ev.adapter_metrics.accuracy, ev.summary()  # one step of training loses
    _eq(ev.baseline_verdict, "loses")
    _eq(ev.baseline_significance.n, 20)
    _eq((res.activated, res.activation["rule"], res.activation["activate"]), (False, "baseline", False))
    assert "baseline" in res.activation["reason"], res.activation
    _eq(reg.get_active_adapter("honest", "routing"), None)  # registered, never activated
    _eq(reg.get_adapter(res.adapter_id).status, "inactive")
    # the same prompt in training and evaluation: the label list is in both, the base is also scored without it
    _eq(ev.label_prompt, LABEL_PROMPT)
    assert ev.plain_base_metrics is not None
    rec = json.loads(Path(res.adapter_path, "training_summary.json").read_text())
    assert rec["data"]["examples"] > 0
    attrs = ev.to_span_attributes()
    for k in ("metrics.baseline.accuracy", "improvement_vs_baseline.p_value", "improvement_vs_baseline.verdict",
              "metrics.base_plain.accuracy", "activation.rule", "activation.activated", "baseline.model"):
        assert k in attrs, k
    _eq(attrs["activation.activated"], False)
    d = res.to_dict()
    _eq((d["evaluation"]["baseline_verdict"], d["activation"]["rule"]), ("loses", "baseline"))
    assert "the adapter loses to it" in res.summary() and "not activated under rule 'baseline'" in res.summary(), res.summary()


def test_base_rule_and_no_baseline(honest, tmp_path):
    "Rule 'base' activates an adapter that matches the base; baseline_model=None turns the baseline off."
    prov, reg = honest
    cfg = OrchestrationConfig(tenant_id="honest", project=prov.project, model_type="llm", agent_type="routing",
                              test_set_size=12, baseline_model=None, label_prompt=None, output_dir=str(tmp_path))
    res = FinetuningOrchestrator(prov, registry=reg, train_overrides={"max_steps": 1, "max_length": 96}, track=False).run_sync(cfg)
    ev = res.evaluation_result
    _eq((ev.baseline_metrics, ev.plain_base_metrics, ev.label_prompt), (None, None, None))
    ok = ev.adapter_metrics.accuracy >= ev.base_metrics.accuracy
    _eq((res.activated, res.activation["rule"]), (ok, "base"))


def test_cli_flags_reach_the_config():
    import argparse
    from cogniverse_ft.orchestrator import cli_finetune_args
    p = argparse.ArgumentParser(); cli_finetune_args(p)
    a = p.parse_args(["--tenant", "t", "--activation-rule", "active", "--label-prompt", "Pick one of {labels}", "--baseline-model", ""])
    _eq((a.activation_rule, a.label_prompt, a.baseline_model), ("active", "Pick one of {labels}", ""))
    with pytest.raises(SystemExit): p.parse_args(["--tenant", "t", "--activation-rule", "best"])
    cfg = OrchestrationConfig(tenant_id="t", project="cogniverse-t", model_type="llm", agent_type="routing",
                              activation_rule=a.activation_rule, label_prompt=a.label_prompt, baseline_model=a.baseline_model)
    _eq((cfg.activation_rule, cfg.baseline_model), ("active", None))
