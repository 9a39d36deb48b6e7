"""Realistic test data: a customer-support router traced the way an OpenInference-instrumented app writes to Phoenix.

`write_openinference_app(base_url, project)` runs a fictional app ("Tillwise", a cloud point-of-sale SaaS that also
ships card readers and printers) through the OpenTelemetry SDK, exporting over OTLP/HTTP to `{base_url}/v1/traces`,
with OpenInference attribute names (`llm.input_messages.N.message.role/content`, JSON `input.value`, tool calls), then
posts end-user thumbs feedback (`user_feedback`, 👍/👎, score-only, a few LLM-judge ones, corrections in metadata)
through Phoenix's REST API, and returns the ground truth. `routing_examples(seed, n)` is the utterance generator
alone (no Phoenix), for benchmarks.

A helper for pytest suites (`from openinference_app import write_openinference_app`), not a test file.
"""
from __future__ import annotations
import json, random, time, zlib
from datetime import datetime, timedelta, timezone

LABELS = ("billing_agent", "tech_support_agent", "account_agent", "shipping_agent", "sales_agent", "security_agent")
COMPANY = "Tillwise"
MODEL_NAME = "gpt-4o-mini-2024-07-18"
FEEDBACK_NAME = "user_feedback"
THUMBS_UP, THUMBS_DOWN = "👍", "👎"

SYSTEM_PROMPT = (
    f"You are the front-door router of {COMPANY} customer support ({COMPANY} is a cloud point-of-sale platform for "
    "shops and restaurants; we also sell and ship card readers, receipt printers and scanners). Read the customer's "
    "message and hand it to exactly one agent:\n"
    "- billing_agent: charges, invoices, refunds of subscription fees, payment methods, taxes on invoices\n"
    "- tech_support_agent: the app, devices or integrations not working, errors, sync and printing problems\n"
    "- account_agent: profile and business details, login email, staff users, ownership, closing the account\n"
    "- shipping_agent: hardware orders in transit, tracking, delivery address, damaged parcels, hardware returns\n"
    "- sales_agent: plans and pricing, upgrades, quotes, demos, discounts, trials\n"
    "- security_agent: suspicious logins, compromised accounts, two-factor authentication, phishing, leaked keys\n"
    "Answer with the agent name only.")

# --- the utterance generator ---------------------------------------------------------------------------------------
SLOTS = {
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December", "last month", "this month"],
    "amount": ["$29", "$49.00", "$79", "$119", "$240", "$18.50", "89 dollars", "€59", "£45", "$1,188"],
    "plan": ["Starter", "Growth", "Pro", "Enterprise", "Multi-location"],
    "device": ["card reader", "receipt printer", "barcode scanner", "cash drawer", "kitchen display", "tablet stand",
               "customer-facing display", "label printer"],
    "integration": ["Shopify", "QuickBooks", "Xero", "WooCommerce", "Mailchimp", "DoorDash", "Uber Eats", "Zapier"],
    "order": ["TW-48213", "TW-50977", "#77120", "order 66431", "TW-39002", "#81545", "TW-61290"],
    "n": ["2", "3", "4", "5", "7", "12", "20", "35"],
    "country": ["Canada", "Ireland", "Australia", "Mexico", "Germany", "New Zealand", "the UK", "Portugal"],
    "person": ["my manager Dana", "our new cashier", "Priya", "my business partner", "a former employee", "Marco",
               "our bookkeeper", "the night shift lead"],
    "biz": ["coffee shop", "bakery", "bike store", "taco truck", "florist", "bookshop", "salon", "brewery",
            "pet supply store", "pizzeria"],
    "city": ["Austin", "Leeds", "Toronto", "Melbourne", "Denver", "Cork", "Portland", "Halifax"],
    "day": ["Monday", "yesterday", "this morning", "last Friday", "two days ago", "over the weekend", "on the 3rd"],
    "screen": ["checkout screen", "reports page", "inventory tab", "menu editor", "end-of-day summary",
               "timesheets page"],
    "err": ["error 500", "'Something went wrong'", "a blank white screen", "error code E-1042", "a spinning wheel forever",
            "'sync failed (401)'"],
}

INTENTS = {  # label -> intent -> templates ({slot} filled from SLOTS)
    "billing_agent": {
        "double_charge": ["I was charged twice for my {plan} subscription in {month}",
                          "why are there two {amount} charges on my card {day}?",
                          "you billed me {amount} two times for the same month",
                          "duplicate charge on my statement from {COMPANY}, please fix"],
        "invoice": ["can I get a PDF invoice for {month} with our company name on it",
                    "where do I download past invoices? accountant needs {month}",
                    "please resend the invoice for {amount}, I never got the email",
                    "I need an itemised receipt for the subscription fee"],
        "refund": ["I cancelled before renewal but still got charged {amount}, I want a refund",
                   "please refund the {month} subscription fee, we were closed all month",
                   "how long does a refund of my {plan} plan fee take to show up?"],
        "payment_method": ["how do I change the credit card you bill us on",
                           "my card on file expired, where do I update payment details",
                           "can we pay our subscription by bank transfer instead of card?",
                           "your payment to renew the {plan} plan keeps getting declined, I updated my card"],
        "tax": ["our invoice is missing the VAT number, can you add it",
                "why was sales tax added to my subscription invoice this time",
                "the tax on my {month} invoice looks wrong"],
        "proration": ["I upgraded mid-month and the charge of {amount} makes no sense to me",
                      "what is this prorated charge on my latest bill?"],
    },
    "tech_support_agent": {
        "crash": ["the app crashes every time I open the {screen}",
                  "POS keeps freezing on the {screen} since the update",
                  "getting {err} when I open the {screen}",
                  "{COMPANY} closes by itself in the middle of a sale"],
        "device_broken": ["my {device} stopped connecting over bluetooth {day}",
                          "the {device} is plugged in but the register doesn't detect it",
                          "the {device} works for a minute then disconnects, tried restarting",
                          "our {device} shows a red light and won't pair with the iPad"],
        "integration": ["{integration} sync stopped working, orders aren't coming through",
                        "sales from {COMPANY} are not showing up in {integration} since {day}",
                        "the {integration} integration throws {err}",
                        "connected {integration} but inventory counts never update"],
        "offline": ["the register says offline even though the wifi works fine",
                    "can't take payments, terminal stuck on 'connecting to server'",
                    "offline mode didn't upload the sales from {day}"],
        "api": ["your API returns {err} on the orders endpoint",
                "webhooks for new sales stopped firing {day}"],
        "slow": ["the {screen} takes over a minute to load, it's unusable",
                 "everything is super slow at checkout during the lunch rush"],
    },
    "account_agent": {
        "email": ["how do I change the login email on our account",
                  "I need to update the email address for the account owner",
                  "we changed domains, please move my login to my new work email"],
        "staff": ["how do I add {person} as a staff user",
                  "remove {person} from our account, they no longer work here",
                  "give {person} manager permissions instead of cashier",
                  "I want {n} more staff logins for the new hires"],
        "ownership": ["transfer account ownership to {person}, I'm selling the {biz}",
                      "the owner left the company, how do we make someone else the account owner"],
        "business_details": ["we renamed the business, update the name shown on our profile",
                             "change the store address on our profile, we moved across town",
                             "how do I edit our business hours and phone number on the profile?",
                             "add a second location to our account profile"],
        "close": ["please close our account, we're shutting down the {biz}",
                  "how do I delete my account and all the data",
                  "I want an export of all our account data before we leave"],
        "merge": ["I accidentally made two accounts with different emails, can you merge them",
                  "we have {n} separate accounts for our stores, can they be combined under one login"],
    },
    "shipping_agent": {
        "where": ["where is my {device}? ordered {day} and nothing yet",
                  "has order {order} shipped?",
                  "I ordered {n} {device}s and they still haven't arrived",
                  "still waiting on the hardware kit, it's been {n} days"],
        "tracking": ["can you send me the tracking number for {order}",
                     "the tracking link for my {device} shows no updates",
                     "tracking says delivered but there's no parcel at the {biz}"],
        "address": ["can I change the delivery address for {order} before it ships",
                    "wrong shipping address on my hardware order, please update it"],
        "damaged": ["the box arrived crushed and the {device} inside is cracked",
                    "my {device} arrived damaged, the package was soaked",
                    "parcel for {order} came open and a {device} is missing"],
        "returns": ["how do I return the {device} I don't need, is there a return label",
                    "I want to send back {n} {device}s, we ordered too many"],
        "intl": ["do you ship hardware to {country}? how long does it take",
                 "how much is express shipping for a {device} to {country}"],
    },
    "sales_agent": {
        "pricing": ["how much is the {plan} plan for {n} locations",
                    "what's the price difference between Starter and Pro, roughly",
                    "do you charge per register or per location?",
                    "is there a cheaper plan for a tiny {biz}"],
        "upgrade": ["we're thinking of upgrading to {plan}, what extra features do we get",
                    "what do I get if I move up to {plan} from our current plan"],
        "demo": ["can someone give us a demo before we switch from our old POS",
                 "I'd like to talk to a sales rep about rolling {COMPANY} out to {n} stores",
                 "book me a demo of the restaurant features please"],
        "discount": ["do you offer a nonprofit discount",
                     "any discount if we pay annually for {n} locations?",
                     "can we get volume pricing for {n} {device}s and the {plan} plan"],
        "trial": ["can my free trial be extended another week, still evaluating",
                  "is there a trial of the {plan} plan before we commit"],
        "quote": ["please send a formal quote for {plan} with {n} registers",
                  "our procurement team needs a quote for {n} sites"],
    },
    "security_agent": {
        "suspicious": ["I got an alert about a login from {country}, that wasn't me",
                       "someone signed in to our account at 3am from an unknown device",
                       "there's a login I don't recognise in the activity log from {day}"],
        "hacked": ["I think our account was hacked, someone changed our payout bank details",
                   "a staff account I never created just appeared and issued refunds",
                   "our account is compromised, lock it now please"],
        "twofa": ["how do I turn on two-factor authentication for all staff",
                  "lost my phone with the authenticator app, can't get past 2FA",
                  "can we enforce 2FA for manager accounts?"],
        "phishing": ["got an email pretending to be {COMPANY} asking for my password, is it phishing?",
                     "{person} received a text with a fake {COMPANY} login link"],
        "keys": ["I accidentally pushed our API key to a public GitHub repo",
                 "our API key may be leaked, how do I revoke it and issue a new one"],
        "report": ["I want to report a security vulnerability in your checkout page",
                   "we need your security questionnaire and SOC 2 report for our audit"],
    },
}
CONFUSABLE = {  # where a weak router goes wrong
    "billing_agent": ["account_agent", "sales_agent"], "tech_support_agent": ["security_agent", "account_agent"],
    "account_agent": ["security_agent", "billing_agent"], "shipping_agent": ["tech_support_agent", "billing_agent"],
    "sales_agent": ["billing_agent", "account_agent"], "security_agent": ["account_agent", "tech_support_agent"]}

OPENERS = ["", "", "", "", "hi, ", "Hi there! ", "hello - ", "hey team, ", "Good morning. ", "Quick question: ",
           "URGENT: ", "Hi support, ", "ugh. ", "Sorry to bother you, "]
CLOSERS = ["", "", "", "", " thanks", " Thanks!", " thx", " asap please", " This is urgent.", " Cheers.",
           " Can someone help?", " Please advise.", " thanks in advance", " 🙏"]
CONTEXT = ["I run a {biz} in {city}. ", "We have {n} locations. ", "We're on the {plan} plan. ",
           "Been a customer for years. ", "Owner of a small {biz} here. ", "Second time asking. "]


def _typo(rng:random.Random, s:str) -> str:
    "One realistic typo in a word of 4+ letters: swapped, dropped or doubled letter."
    words = s.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not idx: return s
    i = rng.choice(idx); w = words[i]; j = rng.randrange(1, len(w) - 1)
    op = rng.randrange(3)
    words[i] = (w[:j] + w[j+1] + w[j] + w[j+2:]) if op == 0 else (w[:j] + w[j+1:]) if op == 1 else (w[:j] + w[j] + w[j:])
    return " ".join(words)


def _fill(rng:random.Random, t:str) -> str:
    out = t
    for k, vals in SLOTS.items():
        while "{" + k + "}" in out: out = out.replace("{" + k + "}", rng.choice(vals), 1)
    return out.replace("{COMPANY}", COMPANY)


def _utterance(rng:random.Random, label:str) -> str:
    intent = rng.choice(sorted(INTENTS[label]))
    core = _fill(rng, rng.choice(INTENTS[label][intent]))
    ctx = _fill(rng, rng.choice(CONTEXT)) if rng.random() < 0.25 else ""
    opener = rng.choice(OPENERS)
    text = opener + ctx + (core[0].upper() + core[1:] if (opener.endswith((". ", "! ", ": ")) or ctx or not opener)
                           else core)
    if rng.random() < 0.3 and not text.rstrip().endswith(("?", ".", "!")): text += rng.choice([".", "?", "!!", ""])
    text += rng.choice(CLOSERS)
    for _ in range(rng.choice([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])): text = _typo(rng, text)
    r = rng.random()
    if r < 0.15: text = text.lower()
    elif r < 0.2: text = text.rstrip(".!? ")
    return " ".join(text.split())


def routing_examples(seed:int=0, # random seed: same seed, same examples
                     n:int=180, # how many
                    ) -> list[tuple[str, str]]:
    "`n` (utterance, true agent) pairs, labels balanced (round-robin in random order), deterministic from `seed`."
    rng = random.Random(f"oi-utterances-{seed}")
    labels = [LABELS[i % len(LABELS)] for i in range(n)]
    rng.shuffle(labels)
    return [(_utterance(rng, lab), lab) for lab in labels]


def contract_yaml(project:str="my-app", # the Phoenix project
                  tenant:str="acme", # the tenant owning it
                 ) -> str:
    "The issue-9 data contract that matches what `write_openinference_app` writes."
    return f"""tenant: {tenant}
projects: [{project}]
tasks:
  router:
    project: {project}
    select: "name == 'router.route'"
    span_kind: LLM
    input: llm.input_messages
    output: llm.output_messages
    labels: closed
    feedback:
      name: {FEEDBACK_NAME}
      approved: ["{THUMBS_UP}"]
      rejected: ["{THUMBS_DOWN}"]
      min_score: 0.5
      annotators: [HUMAN]
      correction: metadata.corrected_output
"""


# --- the app, traced ------------------------------------------------------------------------------------------------
MULTI_TURN = [("Hi, I was charged twice for the Growth plan this month", "billing_agent"),
              ("ok thanks. While I have you, how do I add our new cashier as a staff user?", "account_agent"),
              ("last thing - has the receipt printer I ordered on Monday shipped yet?", "shipping_agent")]
TOOL_CALL_UTTERANCE = "Where is order TW-58120? The card reader was supposed to arrive yesterday"
NOISE_QUESTIONS = ["How do I set up tipping on the POS?", "Can I print a Z report at closing?",
                   "What does the low-stock alert do?", "How do gift cards work?", "Can I split a bill three ways?",
                   "How do I add modifiers to a menu item?", "How are refunds to customers shown in reports?",
                   "Does the kitchen display support two stations?", "Can I import products from a CSV?",
                   "How do I set a happy hour price?", "What is the daily sales summary email?"]


# People paste personal data into support chats: with `pii=True` every third single-turn utterance carries one of
# these (names, e-mails, phones, a Luhn-valid card, a valid IBAN, an IPv4 address), and every fifth the allow-listed
# product name `Tillwise Pro`, which a privacy contract keeps.
PII_PHRASES = (("my email is jane.doe@example.com", "jane.doe@example.com"), ("call me on +1 415 555 0134", "415 555 0134"),
               ("card 4111 1111 1111 1111", "4111 1111 1111 1111"), ("IBAN DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
               ("I'm on IP 203.0.113.77", "203.0.113.77"), ("this is Margaret Thompson", "Margaret Thompson"))
ALLOWED_VALUE = "Tillwise Pro"

def _add_pii(routes:list[dict]) -> dict:
    "Append PII (and the allow-listed value) to some single-turn utterances; the raw values written, by kind."
    singles = [r for r in routes if r["kind"] == "single"]
    for k, r in enumerate(singles):
        if k % 3 == 0: r["utterance"] = f"{r['utterance']} ({PII_PHRASES[(k // 3) % len(PII_PHRASES)][0]})"
        elif k % 5 == 0: r["utterance"] = f"{r['utterance']} (I use {ALLOWED_VALUE})"
    return {v: sum(v in r["utterance"] for r in singles) for _, v in PII_PHRASES}

def _ns(t:datetime) -> int: return int(t.timestamp() * 1e9)


def _messages(prefix:str, msgs:list[dict]) -> dict:
    "Flattened OpenInference message attributes: `prefix.N.message.role/content/tool_calls...`."
    from openinference.semconv.trace import MessageAttributes as M, ToolCallAttributes as T
    out = {}
    for i, m in enumerate(msgs):
        p = f"{prefix}.{i}."
        out[p + M.MESSAGE_ROLE] = m["role"]
        if m.get("content") is not None: out[p + M.MESSAGE_CONTENT] = m["content"]
        if m.get("tool_call_id"): out[p + M.MESSAGE_TOOL_CALL_ID] = m["tool_call_id"]
        for j, tc in enumerate(m.get("tool_calls") or []):
            q = f"{p}{M.MESSAGE_TOOL_CALLS}.{j}."
            out[q + T.TOOL_CALL_ID] = tc["id"]
            out[q + T.TOOL_CALL_FUNCTION_NAME] = tc["name"]
            out[q + T.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = json.dumps(tc["arguments"])
    return out


def _plan(seed:int, n_route:int, n_noise:int, now:datetime) -> dict:
    "Everything the app will do (utterances, decisions, times, feedback), before any span exists."
    rng = random.Random(f"oi-app-{seed}")
    span6w = timedelta(weeks=6)
    routes = []
    t_conv = now - timedelta(days=20, hours=rng.uniform(0, 12))
    for k, (u, lab) in enumerate(MULTI_TURN):
        routes.append(dict(kind="multi_turn", turn=k, utterance=u, label=lab, output=lab,
                           start=t_conv + timedelta(seconds=95 * k + rng.uniform(0, 20))))
    routes.append(dict(kind="tool_call", utterance=TOOL_CALL_UTTERANCE, label="shipping_agent", output="shipping_agent",
                       start=now - timedelta(days=17, hours=rng.uniform(0, 12))))
    for u, lab in routing_examples(seed, n_route - len(routes)):
        if rng.random() < 0.7: out = lab
        else: out = rng.choice(CONFUSABLE[lab]) if rng.random() < 0.6 else rng.choice([l for l in LABELS if l != lab])
        routes.append(dict(kind="single", utterance=u, label=lab, output=out,
                           start=now - span6w + (span6w - timedelta(minutes=5)) * rng.random()))
    for r in routes:
        r["correct"] = r["output"] == r["label"]
        r["tier"] = rng.choice(["free", "starter", "starter", "growth", "growth", "enterprise"])
        r["customer_id"] = f"cus_{rng.randrange(16**8):08x}"
        r["crm_tool"] = r["kind"] == "single" and rng.random() < 0.3
        r["latency_ms"] = rng.uniform(250, 1400)
    # feedback: HUMAN thumbs, score-only, LLM judge, corrections
    for r in routes:
        r["feedback"] = None
        if r["kind"] != "single": r["feedback"] = dict(label=THUMBS_UP, score=None, annotator_kind="HUMAN")
        elif r["correct"] and rng.random() < 0.65: r["feedback"] = dict(label=THUMBS_UP, score=None, annotator_kind="HUMAN")
        elif not r["correct"] and rng.random() < 0.8:
            r["feedback"] = dict(label=THUMBS_DOWN, score=None, annotator_kind="HUMAN")
            if rng.random() < 0.5: r["feedback"]["corrected_output"] = r["label"]
    rest = [r for r in routes if r["feedback"] is None]
    for r in rest:
        if rng.random() < 0.10: r["feedback"] = dict(label=None, score=1.0 if r["correct"] else 0.0, annotator_kind="HUMAN")
    rest = [r for r in rest if r["feedback"] is None]
    wrong, right = [r for r in rest if not r["correct"]], [r for r in rest if r["correct"]]
    for r in rng.sample(wrong, min(4, len(wrong))) + rng.sample(right, min(2, len(right))):  # a judge that gets it backwards
        r["feedback"] = dict(label=THUMBS_DOWN if r["correct"] else THUMBS_UP, score=0.0 if r["correct"] else 1.0,
                             annotator_kind="LLM")
    noise = []
    for k in range(n_noise // 4):
        noise.append(dict(kind="kb", question=rng.choice(NOISE_QUESTIONS), start=now - span6w + span6w * rng.random(),
                          docs=rng.sample(range(1, 400), 3)))
    for k in range(n_noise % 4):
        noise.append(dict(kind="digest", start=now - span6w + span6w * rng.random(), n=rng.randrange(20, 300)))
    return dict(routes=routes, noise=noise)


def _OsRandomIdGenerator():
    """Span and trace ids from os.urandom. The SDK's default generator draws from Python's global `random`, which every
    training reseeds (transformers.set_seed): two apps traced after the same seeding got the same ids, and Phoenix
    answered 200 to the second and dropped its spans as duplicates of the first's."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    rng = random.SystemRandom()

    class OsRandomIdGenerator(RandomIdGenerator):
        def generate_span_id(self) -> int:
            while not (i := rng.getrandbits(64)): pass
            return i
        def generate_trace_id(self) -> int:
            while not (i := rng.getrandbits(128)): pass
            return i
    return OsRandomIdGenerator()


def _write_spans(base_url:str, project:str, plan:dict, session_id:str, api_key:str|None, flush_every:int=400) -> list[str]:
    "Run the planned app through the OpenTelemetry SDK (own TracerProvider, OTLP/HTTP); fill in span ids; all span ids."
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from openinference.semconv.resource import ResourceAttributes
    from openinference.semconv.trace import (SpanAttributes as S, OpenInferenceSpanKindValues as K,
                                             OpenInferenceMimeTypeValues as MT, DocumentAttributes as D,
                                             EmbeddingAttributes as E)
    KIND, JSON, TEXT = S.OPENINFERENCE_SPAN_KIND, MT.JSON.value, MT.TEXT.value
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    provider = TracerProvider(resource=Resource.create({ResourceAttributes.PROJECT_NAME: project,
                                                        "service.name": "tillwise-support-router"}),
                              id_generator=_OsRandomIdGenerator())
    from opentelemetry.sdk.trace.export import SpanExportResult

    class RecordingExporter(OTLPSpanExporter):
        "OTLP/HTTP exporter that keeps the batches it failed to send (the SDK only logs and drops them)."
        def __init__(self, *a, **kw): super().__init__(*a, **kw); self.failed = []
        def export(self, spans):
            r = super().export(spans)
            if r != SpanExportResult.SUCCESS: self.failed.append(list(spans))
            return r

    exporter = RecordingExporter(endpoint=f"{base_url}/v1/traces", headers=headers, timeout=30)
    processor = BatchSpanProcessor(exporter, max_queue_size=4096, max_export_batch_size=256)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tillwise.support", "1.4.2")
    ids, pending = [], 0

    def start(name, attrs, t0, parent=None):
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(name, context=ctx, kind=trace.SpanKind.INTERNAL, attributes=attrs, start_time=_ns(t0))

    def end(span, t1):
        nonlocal pending
        span.set_status(trace.StatusCode.OK)
        span.end(end_time=_ns(t1))
        ids.append(format(span.get_span_context().span_id, "016x"))
        pending += 1

    def flush():
        nonlocal pending
        if not processor.force_flush(60_000): raise RuntimeError(f"OTLP export to {base_url}/v1/traces did not flush")
        for attempt in range(3):  # a busy server can time a batch out: send what failed again (span ids dedupe)
            if not exporter.failed: break
            time.sleep(2 * (attempt + 1))
            batches, exporter.failed = exporter.failed, []
            for b in batches: exporter.export(b)
        if exporter.failed:
            raise RuntimeError(f"OTLP export of {sum(map(len, exporter.failed))} spans to {base_url}/v1/traces failed 4 times")
        pending = 0

    history: list[dict] = []  # earlier turns of the multi-turn conversation
    for r in plan["routes"]:
        t0, u = r["start"], r["utterance"]
        sess = {S.SESSION_ID: session_id} if r["kind"] == "multi_turn" else {}
        root = start("support.handle", {KIND: K.CHAIN.value, S.INPUT_VALUE: u, S.INPUT_MIME_TYPE: TEXT, S.USER_ID: r["customer_id"],
                                        S.METADATA: json.dumps({"customer_tier": r["tier"], "channel": "chat"}), **sess}, t0)
        t = t0 + timedelta(milliseconds=4)
        if r["crm_tool"]:
            tool = start("crm.lookup_customer", {KIND: K.TOOL.value, S.TOOL_NAME: "lookup_customer",
                                                 S.TOOL_DESCRIPTION: "Fetch the customer's plan and open tickets",
                                                 S.INPUT_VALUE: json.dumps({"customer_id": r["customer_id"]}),
                                                 S.INPUT_MIME_TYPE: JSON,
                                                 S.OUTPUT_VALUE: json.dumps({"tier": r["tier"], "open_tickets": len(u) % 3}),
                                                 S.OUTPUT_MIME_TYPE: JSON}, t, root)
            t += timedelta(milliseconds=35); end(tool, t)
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}, *(history if r["kind"] == "multi_turn" else [])]
        if r["kind"] == "tool_call":
            call = {"id": "call_7Qm2rT0xLk", "name": "lookup_order", "arguments": {"order_id": "TW-58120"}}
            result = {"order_id": "TW-58120", "status": "in_transit", "carrier": "UPS", "item": "card reader",
                      "eta": "2 days late"}
            msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "content": json.dumps(result), "tool_call_id": call["id"]}]
            tspan = start("lookup_order", {KIND: K.TOOL.value, S.TOOL_NAME: "lookup_order",
                                           S.INPUT_VALUE: json.dumps(call["arguments"]), S.INPUT_MIME_TYPE: JSON,
                                           S.OUTPUT_VALUE: json.dumps(result), S.OUTPUT_MIME_TYPE: JSON}, t, root)
            t += timedelta(milliseconds=60); end(tspan, t)
        else: msgs.append({"role": "user", "content": u})
        attrs = {KIND: K.LLM.value, S.LLM_MODEL_NAME: MODEL_NAME, S.LLM_PROVIDER: "openai", S.LLM_SYSTEM: "openai",
                 S.LLM_INVOCATION_PARAMETERS: json.dumps({"temperature": 0, "max_tokens": 8}),
                 S.INPUT_VALUE: json.dumps({"query": u, "customer_tier": r["tier"]}), S.INPUT_MIME_TYPE: JSON,
                 S.OUTPUT_VALUE: r["output"], S.OUTPUT_MIME_TYPE: TEXT,
                 S.LLM_TOKEN_COUNT_PROMPT: 180 + len(" ".join(m["content"] or "" for m in msgs)) // 4,
                 S.LLM_TOKEN_COUNT_COMPLETION: 3, **sess,
                 **_messages(S.LLM_INPUT_MESSAGES, msgs),
                 **_messages(S.LLM_OUTPUT_MESSAGES, [{"role": "assistant", "content": r["output"]}])}
        attrs[S.LLM_TOKEN_COUNT_TOTAL] = attrs[S.LLM_TOKEN_COUNT_PROMPT] + 3
        r["route_start"] = t
        llm = start("router.route", attrs, t, root)
        t += timedelta(milliseconds=r["latency_ms"]); end(llm, t)
        r["span_id"] = ids[-1]
        r["trace_id"] = format(llm.get_span_context().trace_id, "032x")
        root.set_attribute(S.OUTPUT_VALUE, f"handed off to {r['output']}")
        end(root, t + timedelta(milliseconds=12))
        if r["kind"] == "multi_turn": history += [{"role": "user", "content": u}, {"role": "assistant", "content": r["output"]}]
        if pending >= flush_every: flush()
    for nz in plan["noise"]:
        t0 = nz["start"]
        if nz["kind"] == "digest":
            s = start("nightly.digest", {KIND: K.CHAIN.value, S.INPUT_VALUE: json.dumps({"stores": nz["n"]}),
                                         S.INPUT_MIME_TYPE: JSON, S.OUTPUT_VALUE: "digest sent"}, t0)
            end(s, t0 + timedelta(milliseconds=800)); continue
        q = nz["question"]
        root = start("kb.answer", {KIND: K.CHAIN.value, S.INPUT_VALUE: q, S.INPUT_MIME_TYPE: TEXT}, t0)
        emb = start("kb.embed_query", {KIND: K.EMBEDDING.value, S.EMBEDDING_MODEL_NAME: "text-embedding-3-small",
                                       f"{S.EMBEDDING_EMBEDDINGS}.0.{E.EMBEDDING_TEXT}": q,
                                       f"{S.EMBEDDING_EMBEDDINGS}.0.{E.EMBEDDING_VECTOR}":
                                           [round(((zlib.crc32(q.encode()) >> i) % 200) / 100 - 1, 2) for i in range(8)]},
                    t0 + timedelta(milliseconds=3), root)
        end(emb, t0 + timedelta(milliseconds=40))
        docs = {}
        for i, d in enumerate(nz["docs"]):
            p = f"{S.RETRIEVAL_DOCUMENTS}.{i}."
            docs.update({p + D.DOCUMENT_ID: f"kb-{d:04d}", p + D.DOCUMENT_SCORE: round(0.9 - 0.1 * i, 2),
                         p + D.DOCUMENT_CONTENT: f"Help article {d}: step-by-step answer related to '{q}'"})
        ret = start("kb.retrieve", {KIND: K.RETRIEVER.value, S.INPUT_VALUE: q, **docs}, t0 + timedelta(milliseconds=41), root)
        end(ret, t0 + timedelta(milliseconds=90))
        answer = f"Short answer: yes. Open Settings and follow help article kb-{nz['docs'][0]:04d} ('{q.rstrip('?')}')."
        smsgs = [{"role": "system", "content": "Summarize the help articles into a two-sentence answer for the customer."},
                 {"role": "user", "content": q}]
        summ = start("summarizer.summarize", {KIND: K.LLM.value, S.LLM_MODEL_NAME: MODEL_NAME,
                                              S.INPUT_VALUE: q, S.INPUT_MIME_TYPE: TEXT,
                                              S.OUTPUT_VALUE: answer, S.OUTPUT_MIME_TYPE: TEXT,
                                              **_messages(S.LLM_INPUT_MESSAGES, smsgs),
                                              **_messages(S.LLM_OUTPUT_MESSAGES, [{"role": "assistant", "content": answer}])},
                     t0 + timedelta(milliseconds=91), root)
        end(summ, t0 + timedelta(milliseconds=900))
        root.set_attribute(S.OUTPUT_VALUE, answer)
        end(root, t0 + timedelta(milliseconds=905))
        if pending >= flush_every: flush()
    flush()
    provider.shutdown()
    return ids


def write_openinference_app(base_url:str, # Phoenix base URL (OTLP goes to {base_url}/v1/traces)
                            project:str="my-app", # Phoenix project (the `openinference.project.name` resource attribute)
                            *, seed:int=0, # same seed, same utterances/decisions/feedback (span ids are random)
                            n_route:int=180, # routing decisions (router.route spans), the multi-turn and tool-call ones included
                            api_key:str|None=None, # Phoenix API key, when auth is on
                            wait:bool=True, # read every span and annotation back before returning
                            n_noise:int=40, # spans that are not routing decisions
                            tenant:str="acme", # tenant named in the returned YAML contract
                            timeout:float=300.0, # seconds to wait for spans to land
                            pii:bool=False, # put personal data (and an allow-listed product name) into some utterances
                           ) -> dict:
    "Trace a support router into `project` like an OpenInference app, post `user_feedback` annotations, return the truth."
    from cogniverse_ft.telemetry import count_spans, wait_for_spans, log_annotations
    if n_route < 4: raise ValueError(f"n_route={n_route!r}: need at least 4 (3 multi-turn turns and 1 tool call)")
    base_url = base_url.rstrip("/")
    t_start = time.time()
    now = datetime.now(timezone.utc)
    plan = _plan(seed, n_route, n_noise, now)
    pii_written = _add_pii(plan["routes"]) if pii else {}
    session_id = f"{project}-conversation-{seed}"
    before = count_spans(project, base_url=base_url, api_key=api_key)
    ids = _write_spans(base_url, project, plan, session_id, api_key)
    if wait: wait_for_spans(base_url, project, ids, api_key, timeout=timeout, expected_total=before + len(ids))
    else:  # annotations need their spans stored: poll the count only
        deadline = time.time() + timeout
        while count_spans(project, base_url=base_url, api_key=api_key) < before + len(ids) and time.time() < deadline:
            time.sleep(0.25)
    t_spans = time.time()
    anns = []
    for r in plan["routes"]:
        f = r["feedback"]
        if not f: continue
        a = {"span_id": r["span_id"], "name": FEEDBACK_NAME, "annotator_kind": f["annotator_kind"]}
        if f.get("label") is not None: a["label"] = f["label"]
        if f.get("score") is not None: a["score"] = f["score"]
        if f["annotator_kind"] == "LLM":
            a["explanation"] = "judge: the chosen agent matches the request" if f["label"] == THUMBS_UP else "judge: off-topic"
            a["identifier"] = "llm-judge"
        if f.get("corrected_output"): a["metadata"] = {"corrected_output": f["corrected_output"]}
        anns.append(a)
    log_annotations(base_url, project, anns, api_key, wait=wait)
    routes = plan["routes"]
    fb = [r["feedback"] for r in routes if r["feedback"]]
    week_ago = now - timedelta(days=7)
    counts = {
        "routing_spans": len(routes),
        "correct": sum(r["correct"] for r in routes),
        "thumbs_up": sum(f["label"] == THUMBS_UP and f["annotator_kind"] == "HUMAN" for f in fb),
        "thumbs_down": sum(f["label"] == THUMBS_DOWN and f["annotator_kind"] == "HUMAN" for f in fb),
        "score_only": sum(f["label"] is None for f in fb),
        "llm_annotator": sum(f["annotator_kind"] == "LLM" for f in fb),
        "corrections": sum(bool(f.get("corrected_output")) for f in fb),
        "annotations": len(anns),
        "noise_spans": n_noise,
        "crm_tool_spans": sum(r["crm_tool"] for r in routes),
        "total_spans": len(ids),
        "routing_last_7_days": sum(r["route_start"] >= week_ago for r in routes),
    }
    return {
        "project": project, "labels": list(LABELS), "system_prompt": SYSTEM_PROMPT, "model_name": MODEL_NAME,
        "feedback_name": FEEDBACK_NAME,
        "routes": [{"span_id": r["span_id"], "trace_id": r["trace_id"], "kind": r["kind"], "utterance": r["utterance"],
                    "label": r["label"], "output": r["output"], "correct": r["correct"], "customer_tier": r["tier"],
                    "feedback": r["feedback"], "start_time": r["route_start"].isoformat()} for r in routes],
        "session": {"session_id": session_id, "span_ids": [r["span_id"] for r in routes if r["kind"] == "multi_turn"]},
        "tool_call_span_id": next(r["span_id"] for r in routes if r["kind"] == "tool_call"),
        "span_ids": ids, "counts": counts, "split_time": week_ago.isoformat(),
        "contract_yaml": contract_yaml(project, tenant), "pii": pii_written,
        "seconds": {"spans": round(t_spans - t_start, 1), "total": round(time.time() - t_start, 1)},
    }
