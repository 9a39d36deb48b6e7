"The OpenInference test app (tests/openinference_app.py) writes what it says it writes, read back through Phoenix's own client."
import json
from collections import Counter
from datetime import datetime

import pandas as pd
import pytest
import yaml

from openinference_app import LABELS, SYSTEM_PROMPT, routing_examples, write_openinference_app

PROJECT = "oi-selftest"


def test_routing_examples_deterministic_and_varied():
    ex = routing_examples(0, 180)
    assert ex == routing_examples(0, 180) and ex != routing_examples(1, 180)
    assert Counter(l for _, l in ex) == {l: 30 for l in LABELS}
    assert len({u for u, _ in ex}) >= 170  # mostly distinct
    assert len({u.lower().split()[-1] for u, _ in ex}) > 40  # not one template with slots


@pytest.fixture(scope="module")
def app(phoenix_server):
    from cogniverse_ft.telemetry import count_spans
    assert count_spans(PROJECT, base_url=phoenix_server.url) == 0
    return write_openinference_app(phoenix_server.url, PROJECT, seed=0)


def test_spans_landed_as_openinference(app, phoenix_server):
    from cogniverse_ft.telemetry import count_spans
    from phoenix.client import Client
    c = app["counts"]
    assert count_spans(PROJECT, base_url=phoenix_server.url) == c["total_spans"] == len(app["span_ids"])
    assert c["routing_spans"] == 180 and c["noise_spans"] == 40
    assert c["total_spans"] == 2 * 180 + c["crm_tool_spans"] + 1 + 40  # root + router each, CRM tools, lookup_order, noise

    client = Client(base_url=phoenix_server.url)
    spans = client.spans.get_spans(project_identifier=PROJECT, name="router.route", limit=1000, timeout=60)
    truth = {r["span_id"]: r for r in app["routes"]}
    assert {s["context"]["span_id"] for s in spans} == set(truth)
    for s in spans:  # raw REST: flat dotted OpenInference keys, as the SDK exported them
        a, r = s["attributes"], truth[s["context"]["span_id"]]
        assert s["span_kind"] == "LLM"  # (REST moves openinference.span.kind out of the attributes into span_kind)
        assert a["llm.input_messages.0.message.role"] == "system"
        assert a["llm.input_messages.0.message.content"] == SYSTEM_PROMPT
        assert a["llm.output_messages.0.message.role"] == "assistant"
        assert a["llm.output_messages.0.message.content"] == a["output.value"] == r["output"]
        assert a["input.mime_type"] == "application/json"
        assert json.loads(a["input.value"]) == {"query": r["utterance"], "customer_tier": r["customer_tier"]}
        assert datetime.fromisoformat(s["start_time"]) == datetime.fromisoformat(r["start_time"])

    from phoenix.client.types.spans import SpanQuery
    df = client.spans.get_spans_dataframe(query=SpanQuery().where("name == 'router.route'"), project_identifier=PROJECT,
                                          limit=1000, timeout=60)
    assert len(df) == 180
    # the span frame: messages nested as lists of dicts keyed by the dotted sub-names
    for sid, msgs in df["attributes.llm.input_messages"].items():
        r = truth[sid]
        assert msgs[0] == {"message.role": "system", "message.content": SYSTEM_PROMPT}
        if r["kind"] == "single": assert msgs[1:] == [{"message.role": "user", "message.content": r["utterance"]}]
    s1, s2, s3 = app["session"]["span_ids"]
    turn3 = df.loc[s3, "attributes.llm.input_messages"]
    assert [m["message.role"] for m in turn3] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert turn3[2]["message.content"] == truth[s1]["output"] and turn3[5]["message.content"] == truth[s3]["utterance"]
    assert set(df.loc[[s1, s2, s3], "attributes.session.id"]) == {app["session"]["session_id"]}
    from cogniverse_ft.telemetry import graphql
    q = '{ projects { edges { node { name sessions(first: 10) { edges { node { sessionId numTraces } } } } } } }'
    proj = next(e["node"] for e in graphql(phoenix_server.url, q)["projects"]["edges"] if e["node"]["name"] == PROJECT)
    assert [e["node"] for e in proj["sessions"]["edges"]] == [{"sessionId": app["session"]["session_id"], "numTraces": 3}]
    tool = df.loc[app["tool_call_span_id"], "attributes.llm.input_messages"]
    assert [m["message.role"] for m in tool] == ["system", "user", "assistant", "tool"]
    call = tool[2]["message.tool_calls"][0]
    assert call["tool_call.function.name"] == "lookup_order" and json.loads(call["tool_call.function.arguments"])
    assert tool[3]["message.tool_call_id"] == call["tool_call.id"]
    assert df.loc[app["tool_call_span_id"], "attributes.llm.output_messages"] == [
        {"message.role": "assistant", "message.content": "shipping_agent"}]
    recent = (pd.to_datetime(df["start_time"], utc=True) >= pd.Timestamp(app["split_time"])).mean()  # a time split by the last 7 days
    assert 0.12 <= recent <= 0.22
    assert 0.6 <= sum(r["correct"] for r in app["routes"]) / 180 <= 0.8

    everything = client.spans.get_spans_dataframe(project_identifier=PROJECT, limit=5000, timeout=60)
    names = everything["name"].value_counts().to_dict()
    assert names["router.route"] == names["support.handle"] == 180
    assert {"kb.embed_query", "kb.retrieve", "summarizer.summarize", "kb.answer"} <= set(names)
    assert set(everything["span_kind"]) == {"LLM", "CHAIN", "TOOL", "EMBEDDING", "RETRIEVER"}


def test_feedback_annotations(app, phoenix_server):
    from phoenix.client import Client
    rows = Client(base_url=phoenix_server.url).spans.get_span_annotations(
        span_ids=[r["span_id"] for r in app["routes"]], project_identifier=PROJECT,
        include_annotation_names=["user_feedback"], limit=1000, timeout=60)
    c = app["counts"]
    assert len(rows) == c["annotations"]
    got = Counter((r["annotator_kind"], r["result"].get("label"), r["result"].get("score")) for r in rows)
    assert got[("HUMAN", "👍", None)] == c["thumbs_up"] and got[("HUMAN", "👎", None)] == c["thumbs_down"]
    assert got[("HUMAN", None, 1.0)] + got[("HUMAN", None, 0.0)] == c["score_only"] >= 1
    assert sum(v for k, v in got.items() if k[0] == "LLM") == c["llm_annotator"] >= 3
    fixes = {r["span_id"]: r["metadata"]["corrected_output"] for r in rows if (r["metadata"] or {}).get("corrected_output")}
    assert len(fixes) == c["corrections"] >= 5
    truth = {r["span_id"]: r for r in app["routes"]}
    assert all(truth[s]["label"] == lab != truth[s]["output"] for s, lab in fixes.items())
    for r in rows:  # every annotation is the one the ground truth says, on the right span
        f = truth[r["span_id"]]["feedback"]
        assert (r["annotator_kind"], r["result"].get("label"), r["result"].get("score")) == \
            (f["annotator_kind"], f["label"], f["score"])
    human = [truth[r["span_id"]] for r in rows if r["annotator_kind"] == "HUMAN" and r["result"].get("label")]
    assert all(t["correct"] == (t["feedback"]["label"] == "👍") for t in human)  # thumbs tell the truth
    assert 0.5 <= c["thumbs_up"] / c["correct"] <= 0.8 and 0.65 <= c["thumbs_down"] / (180 - c["correct"]) <= 0.95


def test_contract_yaml(app):
    cfg = yaml.safe_load(app["contract_yaml"])
    t = cfg["tasks"]["router"]
    assert cfg["projects"] == [PROJECT] and t["project"] == PROJECT and t["select"] == "name == 'router.route'"
    assert t["feedback"] == {"name": "user_feedback", "approved": ["👍"], "rejected": ["👎"], "min_score": 0.5,
                             "annotators": ["HUMAN"], "correction": "metadata.corrected_output"}
    assert (t["span_kind"], t["input"], t["output"], t["labels"]) == ("LLM", "llm.input_messages", "llm.output_messages", "closed")


def test_span_ids_ignore_the_global_random_seed(phoenix_server):
    """Training reseeds Python's global `random` (transformers.set_seed(42)); the OTel SDK's default id generator draws
    from it, so two apps traced after the same seeding got the same span and trace ids, Phoenix answered 200 and dropped
    the second app's spans as duplicates of the first's (the own-data app lost all 454 after test_orchestrator)."""
    import random
    state = random.getstate()
    try:
        random.seed(42); a = write_openinference_app(phoenix_server.url, "oi-seeded-a", n_route=4, n_noise=0, timeout=30)
        random.seed(42); b = write_openinference_app(phoenix_server.url, "oi-seeded-b", n_route=4, n_noise=0, timeout=30)
    finally: random.setstate(state)
    assert not set(a["span_ids"]) & set(b["span_ids"])
    assert not {r["trace_id"] for r in a["routes"]} & {r["trace_id"] for r in b["routes"]}
