"""Fuzzing the extractors' input frames: whatever shape spans and annotations come in (missing, NaN, numbers, lists,
dicts, empty document lists, JSON and not-JSON text, unknown labels, duplicate span ids), extraction never raises, and
every span read is accounted for: examples + skipped + unreviewed + not approved = the task's candidate spans."""
import json
import pandas as pd
from hypothesis import given, settings, strategies as st, HealthCheck

from cogniverse_ft.contract import TaskSpec
from cogniverse_ft.extract import (instruction_dataset, preference_dataset, triplet_dataset, trajectory_dataset, task_funnel,
                                   SKIP_REASONS)

junk = st.one_of(st.none(), st.just(float("nan")), st.integers(-3, 3), st.text(max_size=12), st.just(""), st.just("   "),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
message = st.one_of(st.fixed_dictionaries({"message.role": st.sampled_from(["system", "user", "assistant", "tool", 7]),
                                           "message.content": junk}),
                    st.fixed_dictionaries({"message": st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                                                              "content": junk})}), junk)
document = st.one_of(st.fixed_dictionaries({"document.id": st.sampled_from(["d1", "d2", "d3", 4]), "document.content": junk}), junk)
label = st.one_of(st.sampled_from(["approved", "rejected", "👍", "👎🏽", "Thumbs-Up!", "no", "meh", "", "1", "0"]), junk)
ids = st.sampled_from([f"{i:016x}" for i in range(8)])

@st.composite
def frames(draw):
    n = draw(st.integers(0, 10))
    rows = []
    for _ in range(n):
        rows.append({"context.span_id": draw(ids), "name": draw(st.sampled_from(["router.route", "search", "other", None])),
                     "span_kind": draw(st.sampled_from(["LLM", "RETRIEVER", "CHAIN", None])),
                     "start_time": pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(hours=draw(st.integers(0, 500))),
                     "attributes.agent.type": draw(st.one_of(st.sampled_from(["routing", "router", None]), junk)),
                     "attributes.input.value": draw(st.one_of(junk, st.just(json.dumps({"query": "q"})))),
                     "attributes.output.value": draw(junk),
                     "attributes.llm.input_messages": draw(st.one_of(st.lists(message, max_size=4), junk)),
                     "attributes.llm.output_messages": draw(st.one_of(st.lists(message, max_size=2), junk)),
                     "attributes.metadata": draw(st.one_of(junk, st.just("{not json"), st.just('{"a": 1}'))),
                     "attributes.retrieval.documents": draw(st.one_of(st.lists(document, max_size=3), junk)),
                     "attributes.session.id": draw(st.sampled_from(["s1", "s2", None]))})
    spans = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["context.span_id", "name", "span_kind", "start_time"])
    spans.index = pd.Index(spans["context.span_id"], name="context.span_id")
    m = draw(st.integers(0, 12))
    anns = [{"span_id": draw(ids), "annotation_name": draw(st.sampled_from(["approval", "user_feedback", "relevance_feedback", "x"])),
             "result.label": draw(label), "result.score": draw(st.one_of(st.none(), st.floats(-1, 2), st.just(float("nan")))),
             "metadata": draw(st.one_of(junk, st.just({"relevant_ids": ["d1"], "irrelevant_ids": ["d2", "d3"]}),
                                        st.just({"corrected_output": "billing"}), st.just({"output": 5}))),
             "annotator_kind": draw(st.sampled_from(["HUMAN", "LLM", None])), "identifier": draw(st.sampled_from(["", "r2"])),
             "updated_at": draw(st.sampled_from(["2025-02-01", "2025-02-02", None, "garbage"]))} for _ in range(m)]
    return spans, pd.DataFrame(anns, columns=["span_id", "annotation_name", "result.label", "result.score", "metadata",
                                              "annotator_kind", "identifier", "updated_at"])

TASKS = [TaskSpec("routing"), TaskSpec("router", select="name == 'router.route'", input="llm.input_messages", output="llm.output_messages",
                                       feedback={"name": "user_feedback", "contested": "latest"}),
         TaskSpec("router", select="span_kind == 'LLM'", input="input.value:$.query", feedback={"annotators": ["HUMAN", "LLM"]})]

@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames(), st.sampled_from(TASKS))
def test_extractors_never_raise_and_account_for_every_span(data, task):
    spans, ann = data
    sft = instruction_dataset(spans, ann, task)
    m = sft.metadata
    assert set(m["skipped"]) <= set(SKIP_REASONS), m["skipped"]
    dups = m["skipped"].get("duplicate_span", 0)
    assert m["total_spans"] + dups == len(spans)
    other = sum(v for k, v in m["skipped"].items() if k != "duplicate_span")
    assert len(sft) + other + m["unreviewed"] + m["not_approved"] == m["candidate_spans"], m
    assert all(isinstance(e.input, str) and e.input.strip() and isinstance(e.output, str) and e.output.strip() for e in sft)
    dpo = preference_dataset(spans, ann, task)
    assert all(p.chosen.strip() != p.rejected.strip() for p in dpo)
    trip = triplet_dataset(spans, ann)
    assert trip.metadata["total_spans"] + trip.metadata["skipped"].get("duplicate_span", 0) == len(spans)
    trajectory_dataset(spans.loc[~spans.index.duplicated()], None)
    f = task_funnel(spans, ann, task)
    assert f["sft_examples"] == len(sft) and f["matched"] == m["candidate_spans"]
