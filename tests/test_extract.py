"Extraction against a real Phoenix server: a project of more than 5,000 spans, seeded once through Phoenix's API."
import asyncio, uuid
import pytest
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.telemetry import PhoenixProvider, count_spans
from cogniverse_ft.demo_data import demo_telemetry, demo_frames, seed_demo_telemetry
from cogniverse_ft.extract import (TraceToInstructionConverter, PreferencePairExtractor, TripletExtractor, TraceToTrajectoryConverter,
                                   TrajectoryDataset, instruction_dataset, preference_dataset, triplet_dataset, valid_labels)

SIZES = dict(n_routing=1500, n_pairs=100, n_unreviewed=2200, n_search=600, n_sessions=200, n_profile=100, n_entity=100, seed=7)

@pytest.fixture(scope="module")
def big(phoenix_server):
    "A tenant whose project holds more than 5,000 spans (and about 2,500 annotations)."
    tenant = f"big{uuid.uuid4().hex[:6]}"
    counts = seed_demo_telemetry(tenant, base_url=phoenix_server.url, progress=False, **SIZES)
    assert counts["spans"] > 5000
    return counts, PhoenixProvider(tenant, base_url=phoenix_server.url)

def run(coro): return asyncio.run(coro)

def test_every_span_is_read(big):
    counts, prov = big
    _eq(count_spans(counts["project"], base_url=prov.base_url), counts["spans"])
    df = run(prov.traces.get_spans())  # default page of 5,000: needs a second page
    _eq((len(df), df.index.is_unique), (counts["spans"], True))
    small = run(prov.traces.get_spans(page_size=700))
    _eq(sorted(small.index), sorted(df.index))
    ann = run(prov.annotations.get_annotations(df))
    _eq(len(ann), counts["annotations"])

def test_each_extractor_finds_what_was_written(big):
    counts, prov = big
    sft = run(TraceToInstructionConverter(prov).convert(agent_type="routing"))
    _eq(len(sft), counts["routing"]["sft_examples"])
    _eq(valid_labels(sft), counts["routing"]["labels"])
    _eq(sft.metadata["skipped"], counts["bad_spans"])  # every bad kind counted, none raised
    _eq(len(run(PreferencePairExtractor(prov).extract(agent_type="routing"))), counts["routing"]["pairs"])
    _eq(len(run(TraceToInstructionConverter(prov).convert(agent_type="profile_selection"))), counts["profile_selection"]["sft_examples"])
    ent = run(TraceToInstructionConverter(prov).convert(agent_type="entity_extraction"))
    _eq(len(ent), counts["entity_extraction"]["sft_examples"])
    assert all(e.output.startswith("{") for e in ent)  # read from llm.output_messages
    _eq(len(run(TripletExtractor(prov).extract())), counts["search"]["triplets"])
    _eq(len(run(TripletExtractor(prov).extract(modality="video"))), counts["search"]["by_modality"]["video"])

def test_trajectories_ordered_filtered_and_round_trip(big, tmp_path):
    counts, prov = big
    by_turns = {int(k): v for k, v in counts["sessions"]["by_turns"].items()}
    for k in (1, 2, 4):
        tr = run(TraceToTrajectoryConverter(prov).extract_trajectories(min_turns_per_session=k))
        _eq(len(tr), sum(v for n, v in by_turns.items() if n >= k))
    tr = run(TraceToTrajectoryConverter(prov).extract_trajectories(min_turns_per_session=2))
    _eq(sum(len(t.turns) for t in tr), sum(n * v for n, v in by_turns.items() if n >= 2))
    for t in tr:
        _eq([u.turn_id for u in t.turns], list(range(len(t.turns))))
        assert all(a.timestamp <= b.timestamp for a, b in zip(t.turns, t.turns[1:])), t.session_id
        assert t.turns[0].query.startswith("I'm researching"), t.turns[0].query  # the script's first turn came first
        assert t.session_id.startswith(counts["project"] + ":")
        assert t.session_outcome in ("success", "partial", "failure") and 0 <= t.session_score <= 1
    _eq(TrajectoryDataset.load_jsonl(tr.save_jsonl(tmp_path/"t.jsonl")).trajectories, tr.trajectories)
    _eq(TrajectoryDataset.load_parquet(tr.save_parquet(tmp_path/"t.parquet")).trajectories, tr.trajectories)

def test_phoenix_frames_and_offline_frames_extract_alike(big):
    "The offline frame builder (benchmark, notebooks) has the shape Phoenix returns."
    counts, prov = big
    demo = demo_telemetry(prov.tenant_id, **SIZES)
    s_off, a_off, _ = demo_frames(demo)
    s_px = run(prov.traces.get_spans())
    a_px = run(prov.annotations.get_annotations(s_px))
    key = lambda ds: sorted((e.input, e.output, e.metadata["span_id"]) for e in ds)
    _eq(key(instruction_dataset(s_px, a_px)), key(instruction_dataset(s_off, a_off)))
    pk = lambda ds: sorted((p.prompt, p.chosen, p.rejected) for p in ds)
    _eq(pk(preference_dataset(s_px, a_px)), pk(preference_dataset(s_off, a_off)))
    tk = lambda ds: sorted((t.anchor, t.positive, t.negative) for t in ds)
    _eq(tk(triplet_dataset(s_px, a_px)), tk(triplet_dataset(s_off, a_off)))
    for m, n in counts["search"]["by_modality"].items(): _eq(len(triplet_dataset(s_px, a_px, modality=m)), n)

def test_time_window_and_tenant_isolation(big):
    counts, prov = big
    from datetime import datetime, timedelta, timezone
    start = datetime.now(timezone.utc) - timedelta(days=7)
    recent = run(TraceToInstructionConverter(prov).convert(agent_type="routing", start_time=start))
    _eq(len(recent), counts["routing"]["recent_sft_examples"])
    other = PhoenixProvider("someoneelse", base_url=prov.base_url)
    _fail(lambda: run(TraceToInstructionConverter(other).convert(counts["project"])), contains="belongs to tenant")

def test_missing_project_reads_empty(phoenix_server):
    prov = PhoenixProvider(f"nobody{uuid.uuid4().hex[:6]}", base_url=phoenix_server.url)
    _eq(len(run(prov.traces.get_spans())), 0)
    _eq(len(run(TraceToInstructionConverter(prov).convert())), 0)
    _eq(len(run(TraceToTrajectoryConverter(prov).extract_trajectories())), 0)
