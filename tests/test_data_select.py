"Method selection, formatting and the time split on data read back from a real Phoenix server; the seed-demo command."
import asyncio, json, subprocess, sys, uuid
from pathlib import Path
import pytest
from fastcore.test import test_eq as _eq
from cogniverse_ft.telemetry import PhoenixProvider
from cogniverse_ft.demo_data import seed_demo_telemetry
from cogniverse_ft.extract import TraceToInstructionConverter, PreferencePairExtractor
from cogniverse_ft.select import TrainingMethodSelector
from cogniverse_ft.formatting import (InstructionFormatter, validate_sft_dataset, validate_dpo_dataset, time_split,
                                      EMPTY_DATASET_MESSAGE)

EXE = str(Path(sys.executable).parent / "cogniverse-ft")
SMALL = dict(n_search=0, n_sessions=0, n_profile=0, n_entity=0, n_rejected=3, n_unreviewed=3, progress=False)

def _tenant(): return f"sel{uuid.uuid4().hex[:6]}"

@pytest.mark.parametrize("n_routing,n_pairs,method", [(49, 0, "insufficient"), (50, 0, "sft"), (0, 19, "insufficient"),
                                                      (0, 20, "dpo"), (40, 19, "sft")])
def test_selector_thresholds_on_phoenix(phoenix_server, n_routing, n_pairs, method):
    t = _tenant()
    c = seed_demo_telemetry(t, n_routing=n_routing, n_pairs=n_pairs, base_url=phoenix_server.url, **SMALL)
    a = asyncio.run(TrainingMethodSelector().analyze_data(PhoenixProvider(t, base_url=phoenix_server.url), agent_type="routing"))
    _eq((a.approved_count, a.preference_pairs, a.recommended_method), (n_routing + n_pairs, n_pairs, method))
    _eq(a.total_spans, c["spans"])
    _eq(a.rejected_count, n_pairs + 3 + 1)  # + the contested bad span, rejected by a second reviewer
    _eq(a.needs_synthetic, method == "insufficient")
    assert 0.5 <= a.confidence <= 0.95 and a.reasons

def test_split_and_format_real_data(phoenix_server):
    t = _tenant()
    c = seed_demo_telemetry(t, n_routing=240, n_pairs=24, base_url=phoenix_server.url, **SMALL)
    prov = PhoenixProvider(t, base_url=phoenix_server.url)
    sft = asyncio.run(TraceToInstructionConverter(prov).convert(agent_type="routing"))
    train, test, info = time_split(sft, test_size=50)
    _eq((len(test), info["fallback"]), (50, None))  # the last 7 days hold enough
    _eq(info["in_window"], c["routing"]["recent_sft_examples"])
    assert c["routing"]["recent_sft_examples"] >= 50
    _eq(len(train) + len(test) + info["dropped_duplicates"], len(sft))
    _eq({e.input for e in train} & {e.input for e in test}, set())
    for style in ("prompt_completion", "alpaca", "messages"):
        _eq(validate_sft_dataset(InstructionFormatter.format_sft(train, style)), style)
    dpo = InstructionFormatter.format_dpo(asyncio.run(PreferencePairExtractor(prov).extract()))
    validate_dpo_dataset(dpo, min_pairs=20)
    with pytest.raises(ValueError, match="Insufficient preference pairs: 24 < 25"): validate_dpo_dataset(dpo, min_pairs=25)
    with pytest.raises(ValueError, match=EMPTY_DATASET_MESSAGE.replace(".", r"\.")):
        validate_sft_dataset(InstructionFormatter.format_sft(time_split(sft, test_size=0)[1]))

def test_seed_demo_cli(phoenix_server):
    t = _tenant()
    r = subprocess.run([EXE, "seed-demo", "--tenant", t, "--url", phoenix_server.url, "--n-routing", "20", "--n-pairs", "2",
                        "--n-search", "6", "--n-sessions", "3", "--n-profile", "3", "--n-entity", "3", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)
    _eq((c["project"], c["routing"]["sft_examples"]), (f"cogniverse-{t}", 22))
    r = subprocess.run([EXE, "seed-demo", "--tenant", t, "--url", phoenix_server.url, "--n-routing", "20", "--n-pairs", "2",
                        "--n-search", "6", "--n-sessions", "3", "--n-profile", "3", "--n-entity", "3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "routing           : 22 approved examples" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([EXE, "seed-demo", "--tenant", "bad/tenant", "--url", phoenix_server.url], capture_output=True, text=True, timeout=120)
    _eq(r.returncode, 1)
    assert "Invalid tenant_id 'bad/tenant'" in r.stderr, r.stderr
