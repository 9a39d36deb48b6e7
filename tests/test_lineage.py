"""Lineage in the registry (issue 10 item 4) on real SQLite and a real throwaway PostgreSQL: which adapter versions were
trained on a span / trace / session, across two runs and two tenants with tenant isolation; lineage written in the
registration's transaction; `retire` blocks activation for good; databases made by the previous version are migrated."""
import json, os
from pathlib import Path
import pytest
import sqlalchemy as sa
from fastcore.test import test_eq as _eq, test_fail as _fail
from cogniverse_ft.registry import (AdapterRegistry, AdapterNotFoundError, AdapterRetiredError, adapters_table, versions_table,
                                    lineage_table, _make_engine)
from cogniverse_ft.cli import main as cli_main
from test_registry import pg_url, BASE  # noqa: F401  (the throwaway PostgreSQL fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    "A fresh registry database of each kind."
    if request.param == "sqlite": return f"sqlite:///{tmp_path}/registry.db"
    url = request.getfixturevalue("pg_url")
    eng = _make_engine(url)
    with eng.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS adapter_lineage, adapters, adapter_versions"))
        c.execute(sa.text("DROP FUNCTION IF EXISTS cf_refuse_lineage() CASCADE"))
    eng.dispose()
    return url


def _folder(tmp_path, name):
    "A tiny real PEFT adapter folder: `adapter_config.json` and a weights file."
    d = tmp_path / name
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": BASE}))
    (d / "adapter_model.safetensors").write_bytes(os.urandom(256))
    return d


@pytest.fixture
def folder(tmp_path): return _folder(tmp_path, "sft_routing_20260101_000000")


def _reg(reg, tenant, folder, version=None, **kw):
    return reg.register_adapter(tenant_id=tenant, name="routing_sft", version=version, base_model=BASE, model_type="llm",
                                training_method="sft", adapter_path=folder, agent_type="routing", **kw)


def _ids(ms): return [m.adapter_id for m in ms]


def _cli(capsys, *argv):
    rc = cli_main(["adapters", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_trained_on_across_runs_and_tenants(db_url, tmp_path, capsys):
    admin = AdapterRegistry(db_url)
    # run 1 of acme: s1, s2 train (one multi-turn session), s3 validation, s4 test, one synthetic item
    a1 = _reg(admin, "acme", _folder(tmp_path, "acme1"), lineage={
        "train": [{"span_id": "s1", "trace_id": "t1", "session_id": "sess1"}, {"span_id": "s2", "trace_id": "t2", "session_id": "sess1"}],
        "validation": ["s3"], "test": [{"span_id": "s4", "trace_id": "t4"}], "synthetic": [{"item_id": "syn-1"}]})
    # run 1 of globex: the same span id s2 (ids are per tenant project), s7; s3 only as a test span
    g1 = _reg(admin, "globex", _folder(tmp_path, "globex1"), lineage={"train": ["s2", "s7"], "test": ["s3"]})
    # run 2 of acme: s2 again, s5; s6 validation; s1 now only in the test set
    a2 = _reg(admin, "acme", _folder(tmp_path, "acme2"), lineage={"train": ["s2", "s5"], "validation": ["s6"], "test": ["s1"]})
    g2 = _reg(admin, "globex", _folder(tmp_path, "globex2"), lineage={"train": ["s8"]})
    a3 = _reg(admin, "acme", _folder(tmp_path, "acme3"))  # registered without lineage: never "trained on" anything
    acme, globex = AdapterRegistry(db_url, tenant_id="acme"), AdapterRegistry(db_url, tenant_id="globex")

    # an unscoped (operator) registry sees every tenant, newest first
    _eq(_ids(admin.trained_on(span_id="s2")), [a2, g1, a1])
    _eq(_ids(admin.trained_on(span_id="s2", tenant_id="globex")), [g1])
    # a scoped registry sees only its tenant, both ways
    _eq(_ids(acme.trained_on(span_id="s2")), [a2, a1])
    _eq(_ids(globex.trained_on(span_id="s2")), [g1])
    _eq(acme.trained_on(span_id="s7"), [])
    _eq(acme.trained_on(span_id="s8"), [])
    _eq(globex.trained_on(span_id="s1"), [])
    _eq(globex.trained_on(span_id="s5"), [])
    _fail(acme.trained_on, kwargs=dict(span_id="s2", tenant_id="globex"), contains="scoped to tenant 'acme'")
    # train and validation count; test spans are not "trained on" unless asked for
    _eq(_ids(acme.trained_on(span_id="s1")), [a1])
    _eq(_ids(acme.trained_on(span_id="s1", roles=("train", "validation", "test"))), [a2, a1])
    _eq(_ids(acme.trained_on(span_id="s3")), [a1])
    _eq(globex.trained_on(span_id="s3"), [])
    _eq(_ids(globex.trained_on(span_id="s3", roles="test")), [g1])
    _eq(acme.trained_on(span_id="s4"), [])
    _eq(_ids(acme.trained_on(span_id="s6")), [a2])
    # by trace and by session (a multi-turn session's spans)
    _eq(_ids(acme.trained_on(trace_id="t1")), [a1])
    _eq(_ids(acme.trained_on(session_id="sess1")), [a1])
    _eq(acme.trained_on(trace_id="t4"), [])
    _eq(_ids(admin.trained_on(span_id="s8")), [g2])
    assert a3 not in _ids(admin.trained_on(span_id="s2", roles=("train", "validation", "test", "synthetic")))
    _fail(acme.trained_on, contains="exactly one of span_id, trace_id, session_id")
    _fail(acme.trained_on, kwargs=dict(span_id="s1", trace_id="t1"), contains="exactly one")
    _fail(acme.trained_on, kwargs=dict(span_id="s1", roles=("train", "eval")), contains="Unknown lineage role 'eval'")

    # the audit view: the rows back, grouped by role
    _eq(acme.lineage(a1), {"train": [{"span_id": "s1", "trace_id": "t1", "session_id": "sess1"},
                                     {"span_id": "s2", "trace_id": "t2", "session_id": "sess1"}],
                           "validation": [{"span_id": "s3", "trace_id": None, "session_id": None}],
                           "test": [{"span_id": "s4", "trace_id": "t4", "session_id": None}],
                           "synthetic": [{"item_id": "syn-1"}]})
    _eq(acme.lineage(a3), {"train": [], "validation": [], "test": [], "synthetic": []})
    with pytest.raises(AdapterNotFoundError): globex.lineage(a1)
    with pytest.raises(AdapterNotFoundError): acme.lineage(g1)

    # the command line
    rc, out, _ = _cli(capsys, "trained-on", "--tenant", "acme", "--span-id", "s2", "--db-url", db_url, "--json")
    _eq(rc, 0); _eq([d["adapter_id"] for d in json.loads(out)], [a2, a1])
    rc, out, _ = _cli(capsys, "trained-on", "--tenant", "globex", "--span-id", "s2", "--db-url", db_url)
    _eq(rc, 0)
    lines = out.strip().splitlines()
    _eq(len(lines), 1)
    assert g1 in lines[0] and "routing_sft" in lines[0] and "1.0.0" in lines[0] and "inactive" in lines[0], out
    rc, out, _ = _cli(capsys, "trained-on", "--tenant", "globex", "--span-id", "s1", "--db-url", db_url)
    _eq(rc, 0); assert "No adapter" in out and a1 not in out, out
    rc, out, _ = _cli(capsys, "trained-on", "--tenant", "acme", "--session-id", "sess1", "--db-url", db_url, "--json")
    _eq(rc, 0); _eq([d["adapter_id"] for d in json.loads(out)], [a1])
    rc, out, _ = _cli(capsys, "trained-on", "--tenant", "acme", "--trace-id", "t1", "--db-url", db_url)
    _eq(rc, 0); assert a1 in out and a2 not in out, out
    rc, _, err = _cli(capsys, "trained-on", "--tenant", "acme", "--db-url", db_url)
    _eq(rc, 2); assert "--span-id" in err, err
    for r in (admin, acme, globex): r.close()


def test_lineage_is_validated_deduplicated_and_written_with_the_adapter(db_url, folder):
    reg = AdapterRegistry(db_url)
    for bad, msg in [({"training": ["s1"]}, "Unknown lineage role 'training'"),
                     (["s1"], "lineage must be a dict"),
                     ({"train": "s1"}, "lineage['train'] must be a list"),
                     ({"train": ["s1", {"span": "x"}]}, "lineage['train'][1]"),
                     ({"train": ["s1", ""]}, "lineage['train'][1]"),
                     ({"validation": [{"trace_id": 5}]}, "lineage['validation'][0]"),
                     ({"test": [{}]}, "lineage['test'][0]"),
                     ({"synthetic": [{"item_id": "i1", "span_id": "s1"}]}, "lineage['synthetic'][0]"),
                     ({"synthetic": [{"span_id": "s1"}]}, "lineage['synthetic'][0]")]:
        _fail(_reg, args=(reg, "acme", folder, "1.0.0"), kwargs=dict(lineage=bad), contains=msg)
    _eq(reg.list_adapters("acme"), [])  # nothing registered
    aid = _reg(reg, "acme", folder, "1.0.0", lineage={  # ... and the version is still free
        "train": ["s1", "s1", {"span_id": "s1"}, {"span_id": "s1", "trace_id": None}, {"span_id": "s2", "session_id": "c1"}],
        "synthetic": ["i1", {"item_id": "i1"}]})
    _eq(reg.lineage(aid), {"train": [{"span_id": "s1", "trace_id": None, "session_id": None},
                                     {"span_id": "s2", "trace_id": None, "session_id": "c1"}],
                           "validation": [], "test": [], "synthetic": [{"item_id": "i1"}]})
    _eq(_reg(reg, "acme", folder, lineage=reg.lineage(aid)) != aid, True)  # the audit view is valid input again

    # a failure of the lineage write inside the database leaves no adapter either (one transaction)
    with reg.engine.begin() as c:
        if reg.engine.dialect.name == "sqlite":
            c.execute(sa.text("CREATE TRIGGER cf_refuse_lineage BEFORE INSERT ON adapter_lineage "
                              "BEGIN SELECT RAISE(ABORT, 'lineage refused by the test trigger'); END"))
        else:
            c.execute(sa.text("CREATE FUNCTION cf_refuse_lineage() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
                              "'lineage refused by the test trigger' USING ERRCODE = 'check_violation'; END $$ LANGUAGE plpgsql"))
            c.execute(sa.text("CREATE TRIGGER cf_refuse_lineage BEFORE INSERT ON adapter_lineage "
                              "FOR EACH ROW EXECUTE FUNCTION cf_refuse_lineage()"))
    before = sorted(m.version for m in reg.list_adapters("acme"))
    _fail(_reg, args=(reg, "acme", folder, "2.0.0"), kwargs=dict(lineage={"train": ["s9"]}), contains="lineage")
    _eq(sorted(m.version for m in reg.list_adapters("acme")), before)
    with reg.engine.connect() as c:
        _eq(c.execute(sa.select(sa.func.count()).select_from(versions_table).where(versions_table.c.version == "2.0.0")).scalar(), 0)
        _eq(c.execute(sa.select(sa.func.count()).select_from(lineage_table).where(lineage_table.c.span_id == "s9")).scalar(), 0)
    _eq(reg.trained_on(span_id="s9"), [])
    with reg.engine.begin() as c:
        c.execute(sa.text("DROP TRIGGER cf_refuse_lineage" + ("" if reg.engine.dialect.name == "sqlite" else " ON adapter_lineage")))
    a2 = _reg(reg, "acme", folder, "2.0.0", lineage={"train": ["s9"]})  # the version was never taken
    _eq(_ids(reg.trained_on(span_id="s9")), [a2])
    reg.close()


def test_retire_blocks_activation(db_url, tmp_path, capsys):
    reg = AdapterRegistry(db_url, tenant_id="acme")
    a1 = _reg(reg, "acme", _folder(tmp_path, "r1"), "1.0.0", lineage={"train": ["poisoned"]})
    a2 = _reg(reg, "acme", _folder(tmp_path, "r2"), "1.0.1", lineage={"train": ["ok"]})
    admin = AdapterRegistry(db_url)
    g1 = _reg(admin, "globex", _folder(tmp_path, "g1"), "1.0.0")
    admin.close()
    reg.activate_adapter(a1)
    _fail(reg.retire_adapter, args=(a1, "  "), contains="reason")
    _fail(reg.retire_adapter, args=(g1, "x"), contains="not found for tenant 'acme'")  # another tenant's: not found
    m = reg.retire_adapter(a1, "trained on a poisoned span")
    _eq((m.status, m.retired_reason, m.is_active), ("retired", "trained on a poisoned span", False))
    assert m.retired_at and m.retired_at >= m.created_at
    _eq(reg.get_active_adapter(None, "routing"), None)  # deactivated
    with pytest.raises(AdapterRetiredError) as e: reg.activate_adapter(a1)
    assert "1.0.0" in str(e.value) and "trained on a poisoned span" in str(e.value), e.value
    for op in (reg.deactivate_adapter, reg.deprecate_adapter, reg.delete_adapter):  # nothing brings it back or removes it
        _fail(op, args=(a1,), contains="retired")
    _fail(reg.retire_adapter, args=(a1, "again"), contains="already retired")
    _eq(_ids(reg.list_adapters(status="retired")), [a1])
    _eq([(x.adapter_id, x.status) for x in reg.trained_on(span_id="poisoned")], [(a1, "retired")])  # kept for audit
    reg.close()

    reopened = AdapterRegistry(db_url)  # survives reopening
    m = reopened.get_adapter(a1)
    _eq((m.status, m.retired_reason, m.activated_at is not None), ("retired", "trained on a poisoned span", True))
    _fail(reopened.activate_adapter, args=(a1,), contains="retired")
    _eq(reopened.get_active_adapter("acme", "routing"), None)

    # the command line: retire name@version, then activation is refused (exit 1, the reason named)
    reopened.activate_adapter(a2)
    rc, out, _ = _cli(capsys, "retire", "routing_sft@1.0.1", "--reason", "user asked to be forgotten", "--tenant", "acme", "--db-url", db_url)
    _eq(rc, 0); assert "retired" in out and a2 in out, out
    _eq(reopened.get_adapter(a2).status, "retired")
    _eq(reopened.get_active_adapter("acme", "routing"), None)
    rc, _, err = _cli(capsys, "activate", a2, "--tenant", "acme", "--db-url", db_url)
    _eq(rc, 1); assert "retired" in err and "user asked to be forgotten" in err, err
    rc, _, err = _cli(capsys, "retire", g1, "--reason", "x", "--tenant", "acme", "--db-url", db_url)
    _eq(rc, 1); assert "No adapter" in err, err
    _eq(reopened.get_adapter(g1).status, "inactive")
    rc, _, err = _cli(capsys, "retire", a2, "--tenant", "acme", "--db-url", db_url)
    _eq(rc, 2); assert "--reason" in err, err
    reopened.close()


def test_database_of_the_previous_version_is_migrated(db_url, folder):
    "A registry created before lineage and retirement existed: tables and columns are added, its adapters kept."
    old = sa.MetaData()
    skip = {"retired_at", "retired_reason"}
    sa.Table("adapters", old, *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                                for c in adapters_table.columns if c.name not in skip),
             sa.UniqueConstraint("tenant_id", "name", "version", name="uq_adapter_version"),
             sa.UniqueConstraint("tenant_id", "active_key", name="uq_one_active_per_target"))
    versions_table.to_metadata(old)
    eng = _make_engine(db_url)  # the registry's engine factory alone: no schema is created
    old.create_all(eng)
    row = dict(adapter_id="old-1", tenant_id="acme", name="routing_sft", version="1.0.0", base_model=BASE, model_type="llm",
               training_method="sft", adapter_path=str(folder), agent_type="routing", target="routing", status="active",
               active_key="routing", metrics={}, training_config={}, file_hashes={"adapter_config.json": "0" * 64},
               created_at="2026-01-01T00:00:00.000000+00:00")
    with eng.begin() as c:
        c.execute(old.tables["adapters"].insert().values(**row))
        c.execute(old.tables["adapter_versions"].insert().values(tenant_id="acme", name="routing_sft", version="1.0.0",
                                                                 created_at=row["created_at"]))
    eng.dispose()
    reg = AdapterRegistry(db_url)
    with reg.engine.connect() as c:
        insp = sa.inspect(c)
        assert {"retired_at", "retired_reason"} <= {x["name"] for x in insp.get_columns("adapters")}
        assert "adapter_lineage" in insp.get_table_names()
    m = reg.get_adapter("old-1")
    _eq((m.status, m.retired_at, m.retired_reason), ("active", None, None))
    _eq(reg.lineage("old-1"), {"train": [], "validation": [], "test": [], "synthetic": []})
    aid = _reg(reg, "acme", folder, lineage={"train": ["s1"]})
    _eq(reg.get_adapter(aid).version, "1.0.1")
    _eq(_ids(reg.trained_on(span_id="s1")), [aid])
    _eq(reg.retire_adapter("old-1", "migrated and retired").status, "retired")
    reg.close()
    reg = AdapterRegistry(db_url)  # a second open of the migrated database changes nothing
    _eq(reg.get_adapter("old-1").retired_reason, "migrated and retired")
    _fail(reg.activate_adapter, args=("old-1",), contains="retired")
    reg.close()
