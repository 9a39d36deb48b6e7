"Multi-turn through the orchestrator on real Phoenix sessions: outcome filter, split by session, turn-by-turn test, lineage."

import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.core import OrchestrationConfig
from cogniverse_ft.demo_data import seed_demo_telemetry, demo_telemetry
from cogniverse_ft.telemetry import PhoenixProvider
from cogniverse_ft.registry import AdapterRegistry
from cogniverse_ft.orchestrator import FinetuningOrchestrator

SIZES = dict(n_routing=0, n_pairs=0, n_rejected=0, n_unreviewed=0, n_profile=0, n_entity=0, n_search=0, n_sessions=60, bad_spans=False)

def test_multi_turn_end_to_end(phoenix_server, tiny, tmp_path):
    seed_demo_telemetry("talky", base_url=phoenix_server.url, progress=False, **SIZES)
    demo = demo_telemetry("talky", **SIZES)  # the same records, offline: which sessions failed, which spans are whose
    outcome = {a["session_id"]: a["label"] for a in demo.session_annotations}
    session_of = {s["context"]["span_id"] if isinstance(s.get("context"), dict) else s.get("span_id"): s["attributes"]["session.id"]
                  for s in demo.spans if "session.id" in s.get("attributes", {})}
    reg = AdapterRegistry(f"sqlite:///{tmp_path}/registry.db")
    cfg = OrchestrationConfig(tenant_id="talky", project="cogniverse-talky", model_type="llm", agent_type="assistant", base_model=tiny,
                              multi_turn=True, min_turns_per_session=2, output_dir=str(tmp_path), baseline_model=None,
                              training={"max_length": 256, "num_threads": 1})
    res = FinetuningOrchestrator(PhoenixProvider("talky", base_url=phoenix_server.url), registry=reg,
                                 train_overrides={"max_steps": 3}).run_sync(cfg)
    _eq(res.status, "succeeded")
    stage = {s["stage"]: s["info"] for s in res.stages}
    multi = [s for s in outcome if sum(1 for v in session_of.values() if v == s) >= 2]
    _eq(stage["selection"]["sessions"], len(multi))
    _eq(stage["selection"]["excluded"], sum(outcome[s] == "failure" for s in multi))
    split = stage["split"]
    assert split["test_sessions"] >= 1 and split["train_sessions"] >= 1 and split["test_turns"] >= 2 * split["test_sessions"], split
    lin = reg.lineage(res.adapter_id, "talky")
    train_sessions = {r["session_id"] for r in lin["train"]}
    test_sessions = {session_of.get(r["span_id"]) for r in lin["test"]}
    _eq(train_sessions & test_sessions, set())  # no session on both sides
    _eq({outcome[s] for s in train_sessions | test_sessions} & {"failure"}, set())  # failed sessions are never used
    _eq(len(lin["test"]), split["test_turns"])  # every held-out assistant turn is a test example
    ev = res.evaluation_result
    _eq((ev.mode, ev.test_size), ("generate", split["test_turns"]))  # open answers: generated and scored by token F1
    assert ev.adapter_metrics.token_f1 is not None and ev.base_metrics.token_f1 is not None, ev.adapter_metrics
    # the registry keeps the evaluation, so an export's model card states it (with the p-value) and names the base
    from cogniverse_ft.export import export_adapter
    _eq(reg.get_adapter(res.adapter_id).metrics["evaluation"]["test_size"], split["test_turns"])
    export_adapter(res.adapter_id, tmp_path/"export", registry=reg)
    card = (tmp_path/"export"/"README.md").read_text()
    assert f"adapter vs base: p = {ev.p_value:.3g}" in card and "not recorded (the registry holds no evaluation" not in card, card
