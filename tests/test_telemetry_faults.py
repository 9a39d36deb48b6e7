"""Phoenix reads when the server misbehaves (issue 17, items 10-12): a server that is down or never answers fails in two
tries with a message that says so; a server that is not Phoenix is named as such; a dropped annotation cursor raises
instead of silently returning part of the annotations."""
import asyncio, json, socket, threading, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import httpx
import pandas as pd
from fastcore.test import test_eq as _eq, test_fail as _fail

from cogniverse_ft.telemetry import (PhoenixProvider, PhoenixReadError, PhoenixUnavailableError, count_spans, make_span, log_spans,
                                     log_annotations)
from cogniverse_ft.phoenix_client import phoenix_request

def _serve(handler):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"

def test_a_server_that_is_down_fails_in_two_tries():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()  # nothing listens there
    prov = PhoenixProvider("acme", base_url=f"http://127.0.0.1:{port}")
    _fail(lambda: asyncio.run(prov.traces.get_spans()), contains="is not reachable", exc=PhoenixUnavailableError)
    _fail(lambda: count_spans("cogniverse-acme", base_url=f"http://127.0.0.1:{port}"), contains="after 2 attempts")

def test_a_server_that_never_answers_is_tried_twice():
    lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
    accepted = []
    def hold():
        while True:
            try: c, _ = lst.accept()
            except OSError: return
            accepted.append(c)  # keep it open, never answer
    threading.Thread(target=hold, daemon=True).start()
    url = f"http://127.0.0.1:{lst.getsockname()[1]}"
    _fail(lambda: phoenix_request("POST", url, "graphql", timeout=httpx.Timeout(1.0, connect=1.0), json={}), contains="after 2 attempts")
    _eq(len(accepted), 2)
    lst.close()

def test_a_server_that_is_not_phoenix_is_named():
    class Html(BaseHTTPRequestHandler):
        def _page(self):
            body = b"<html><body>It works!</body></html>"
            self.send_response(200); self.send_header("content-type", "text/html"); self.send_header("content-length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
        do_GET = do_POST = _page
        def log_message(self, *a): pass
    srv, url = _serve(Html)
    try:
        _fail(lambda: count_spans("cogniverse-acme", base_url=url), contains="does not answer like Phoenix", exc=PhoenixReadError)
        prov = PhoenixProvider("acme", base_url=url)
        _fail(lambda: asyncio.run(prov.traces.get_spans()), contains="expected JSON, got text/html")
        _fail(lambda: asyncio.run(prov.annotations.get_annotations(pd.DataFrame({"span_id": ["a" * 16]}))),
              contains="does not answer like Phoenix")
    finally: srv.shutdown()

def test_a_dropped_annotation_cursor_raises(phoenix_server):
    "A proxy in front of the real server strips `next_cursor`: the read must not return part of the annotations."
    t = f"cur{uuid.uuid4().hex[:6]}"; project = f"cogniverse-{t}"
    sp = make_span("decision", {"agent.type": "routing", "input.value": "q", "output.value": "a"}, "CHAIN")
    log_spans(phoenix_server.url, project, [sp])
    sid = sp["context"]["span_id"]
    log_annotations(phoenix_server.url, project, [{"span_id": sid, "name": n, "label": "approved", "annotator_kind": "HUMAN"}
                                                  for n in ("approval", "second", "third")])
    upstream = phoenix_server.url
    class StripCursor(BaseHTTPRequestHandler):
        def do_GET(self):
            r = httpx.get(upstream + self.path, timeout=30)
            body = r.content
            if "span_annotations" in self.path:
                d = r.json(); d["next_cursor"] = None; body = json.dumps(d).encode()
            self.send_response(r.status_code); self.send_header("content-type", r.headers.get("content-type", "application/json"))
            self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    srv, url = _serve(StripCursor)
    try:
        direct = PhoenixProvider(t, base_url=upstream)
        spans = pd.DataFrame({"span_id": [sid]})
        _eq(len(asyncio.run(direct.annotations.get_annotations(spans, page_size=1))), 3)  # the real server pages correctly
        proxied = PhoenixProvider(t, base_url=url)
        _fail(lambda: asyncio.run(proxied.annotations.get_annotations(spans, page_size=1)), contains="the read was truncated",
              exc=PhoenixReadError)
        _eq(len(asyncio.run(proxied.annotations.get_annotations(spans))), 3)  # one page holds them all: nothing to drop
    finally: srv.shutdown()
