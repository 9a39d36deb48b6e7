"End to end against a real Phoenix: approval round trip, finetune() as in the reference design, DPO and embedding paths, CLI."
import json, os, subprocess, sys
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.core import run_sync, OrchestrationConfig, project_for_tenant, DEFAULT_BASE_MODEL, DEFAULT_EMBEDDING_MODEL
from cogniverse_ft.demo_data import seed_demo_telemetry
from cogniverse_ft.telemetry import PhoenixProvider
from cogniverse_ft.registry import AdapterRegistry
from cogniverse_ft.orchestrator import FinetuningOrchestrator, finetune, finetune_sync, StageError
from cogniverse_ft.synthetic import SyntheticReview, SyntheticDataService, LocalGenerator, SyntheticItem

QUICK = {"max_steps": 3, "max_length": 128}  # tiny training: these tests check the plumbing, notebooks check learning
NONE = dict(n_routing=0, n_pairs=0, n_rejected=0, n_unreviewed=0, n_profile=0, n_entity=0, n_search=0, n_sessions=0, bad_spans=False)

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = AdapterRegistry(f"sqlite:///{tmp_path_factory.mktemp('reg')}/registry.db")
    yield r
    r.close()

def seed(url, tenant, **sizes):
    return seed_demo_telemetry(tenant, base_url=url, progress=False, **{**NONE, **sizes})

def test_approval_round_trip(phoenix_server, registry, tmp_path):
    url = phoenix_server.url
    seed(url, "shorty", n_routing=24)
    prov = PhoenixProvider("shorty", base_url=url)
    cfg = OrchestrationConfig(tenant_id="shorty", project=prov.project, model_type="llm", agent_type="routing", min_sft_examples=28,
                              evaluate_after_training=False, output_dir=str(tmp_path))
    orch = FinetuningOrchestrator(prov, SyntheticDataService(LocalGenerator(seed=0)), registry=registry, train_overrides=QUICK)
    r1 = orch.run_sync(cfg)
    _eq(r1.status, "awaiting_approval")
    _eq(r1.adapter_path, None)
    review = SyntheticReview("shorty", base_url=url)
    pending = review.items("routing", "pending")
    _eq(r1.pending_approval, len(pending))
    assert len(pending) >= 4, pending
    # a reviewer rejects one extra candidate and approves four
    bad = SyntheticItem("routing", pending[0].instruction, "order me a pizza with extra cheese", "video_search_agent", "human", "b0")
    review.submit([bad]); review.reject([bad.item_id])
    review.approve([p.item_id for p in pending[:4]])
    r2 = orch.run_sync(cfg)
    assert r2.status == "awaiting_approval" or r2.status == "succeeded", r2.summary()
    if r2.status == "awaiting_approval":  # more than four were pending: approve the rest
        review.approve([p.item_id for p in review.items("routing", "pending")])
        r2 = orch.run_sync(cfg)
    _eq(r2.status, "succeeded")
    _eq(r2.used_synthetic, True)
    n_approved = len(review.items("routing", "approved"))
    _eq(r2.synthetic_approved_count, n_approved)
    fmt = next(s for s in r2.stages if s["stage"] == "formatting")
    _eq(fmt["info"]["records"], 24 + n_approved)  # real + approved synthetic, the rejected one left out
    summary = json.loads((Path(r2.adapter_path) / "training_summary.json").read_text())
    _eq(summary["data"]["examples"], 24 + n_approved)
    # rejected items are never proposed again
    assert bad.item_id in {i.item_id for i in review.items("routing", "rejected")}

def test_finetune_basic_usage(phoenix_server, registry, tmp_path):
    url = phoenix_server.url
    seed(url, "tenant1", n_routing=70, n_rejected=5)
    provider = PhoenixProvider(tenant_id="tenant1", project="cogniverse-tenant1", base_url=url)
    result = finetune_sync(telemetry_provider=provider, tenant_id="tenant1", project="cogniverse-tenant1", model_type="llm",
                           agent_type="routing", base_model=DEFAULT_BASE_MODEL, backend="local", epochs=3, batch_size=4,
                           learning_rate=2e-4, test_set_size=12, output_dir=str(tmp_path), registry=registry,
                           train_overrides=QUICK)
    _eq(result.status, "succeeded")
    _eq(result.training_method, "sft")
    assert (Path(result.adapter_path) / "adapter_config.json").exists()
    assert result.metrics["train_loss"] is not None
    ev = result.evaluation_result
    assert hasattr(ev, "base_metrics"), ev
    _eq(ev.test_size, 12)
    meta = registry.get_adapter(result.adapter_id)
    _eq((meta.tenant_id, meta.agent_type, meta.training_method), ("tenant1", "routing", "sft"))
    _eq(meta.experiment_run_id, result.experiment_run_id)
    from cogniverse_ft.orchestrator import list_experiments, get_experiment_details
    exps = run_sync(list_experiments(provider, project="cogniverse-tenant1", agent_type="routing"))
    assert result.experiment_run_id in [e["run_id"] for e in exps], exps
    det = run_sync(get_experiment_details(provider, "cogniverse-tenant1", result.experiment_run_id))
    assert det["evaluation"] is not None, det
    for stage in ["extraction", "selection", "split", "formatting", "validation", "training", "registration", "evaluation", "tracking"]:
        assert stage in [s["stage"] for s in result.stages], (stage, result.stages)

def test_dpo_path_and_tenant_isolation(phoenix_server, registry, tmp_path):
    url = phoenix_server.url
    seed(url, "prefs", n_routing=10, n_pairs=24)
    prov = PhoenixProvider("prefs", base_url=url)
    cfg = OrchestrationConfig(tenant_id="prefs", project="cogniverse-prefs", model_type="llm", agent_type="routing",
                              test_set_size=0, evaluate_after_training=False, output_dir=str(tmp_path))
    res = FinetuningOrchestrator(prov, registry=registry, train_overrides=QUICK).run_sync(cfg)
    _eq((res.status, res.training_method), ("succeeded", "dpo"))
    assert Path(res.adapter_path).name.startswith("dpo_routing_")
    other = OrchestrationConfig(tenant_id="shorty", project="cogniverse-shorty", model_type="llm", agent_type="routing")
    with pytest.raises(PermissionError):
        FinetuningOrchestrator(prov, registry=registry).run_sync(other)

def test_embedding_path(phoenix_server, registry, tmp_path):
    url = phoenix_server.url
    c = seed(url, "searchy", n_search=150)
    prov = PhoenixProvider("searchy", base_url=url)
    res = finetune_sync(prov, "searchy", "cogniverse-searchy", "embedding", modality="video", output_dir=str(tmp_path),
                        min_triplets=20, registry=registry, train_overrides={"max_steps": 2})
    _eq((res.status, res.training_method, res.model_type), ("succeeded", "embedding", "embedding"))
    _eq(res.base_model, DEFAULT_EMBEDDING_MODEL)
    _eq(registry.get_adapter(res.adapter_id).modality, "video")

def test_failure_names_the_stage(phoenix_server, registry, tmp_path):
    prov = PhoenixProvider("prefs", base_url=phoenix_server.url)
    cfg = OrchestrationConfig(tenant_id="prefs", project="cogniverse-prefs", model_type="llm", agent_type="routing",
                              base_model="no-such-org/no-such-model", evaluate_after_training=False, output_dir=str(tmp_path))
    with pytest.raises(StageError) as e:
        FinetuningOrchestrator(prov, registry=registry, train_overrides=QUICK).run_sync(cfg)
    _eq(e.value.stage, "training")
    assert "no-such-org/no-such-model" in str(e.value)

def test_cli_exit_code_for_short_data(phoenix_server, tmp_path):
    seed(phoenix_server.url, "tiny", n_routing=5)
    env = {**os.environ, "COGNIVERSE_FT_HOME": str(tmp_path)}
    exe = str(Path(sys.executable).parent / "cogniverse-ft")
    r = subprocess.run([exe, "finetune", "--tenant", "tiny", "--agent-type", "routing", "--no-generate-synthetic",
                        "--url", phoenix_server.url], capture_output=True, text=True, env=env, timeout=300)
    _eq(r.returncode, 4)
    assert "insufficient_data" in r.stdout, r.stdout + r.stderr
