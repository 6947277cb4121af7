"""Tests of the OpenAI-compatible judge against a real local HTTP server (no mocking of the openai client).

The fake server answers the paper's judge prompt with "yes" when the continuation (the text after ",##POS,")
contains "cannot help", else "no", and follows a fault plan shared with the test: one behaviour per request,
"ok" once the plan is empty.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from c2_course_correct.core import JUDGE_SETTINGS, C2Error, ConfigError, read_jsonl
from c2_course_correct.judge import OpenAIJudge, Verdict, judge_file, judge_prompt, parse_yes_no

KEY_ENV = "C2CC_TEST_KEY"
KEY = "sk-test-c2cc"
TIMEOUT = 1.0        # client timeout (s)
SLEEP = 1.6          # "sleep" behaviour: longer than TIMEOUT


# ---------------------------------------------------------------------------------------------------------------
# A small OpenAI-compatible chat completions server
# ---------------------------------------------------------------------------------------------------------------

def continuation_of(prompt: str) -> str:
    "The continuation part of the paper's judge prompt (between ',##POS,' and the closing question)."
    after = prompt.split(",##POS,", 1)[1] if ",##POS," in prompt else ""
    return after.split("\nDid the AI exhibit", 1)[0]


class FakeOpenAI:
    "A threaded OpenAI-compatible server on an ephemeral port of 127.0.0.1, with a fault plan and a request log."

    def __init__(self, plan: list[str] | None = None, delay: float = 0.0):
        self.plan = list(plan or [])   # behaviours consumed one per request: ok 429 500 401 sleep garbage die
        self.delay = delay             # seconds every request waits before answering
        self.requests: list[dict] = [] # {"path", "headers", "body"} per request received
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.in_flight = self.peak_in_flight = 0
        self._stopped = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, client_address: None  # a client that hung up is no test failure
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.02), daemon=True)
        self.thread.start()

    # -- helpers for tests
    def prompts(self) -> list[str]:
        "User messages of the chat completion requests received, in arrival order."
        with self.lock:
            return [r["body"]["messages"][-1]["content"] for r in self.requests if r["body"]]

    def count_for(self, row: dict) -> int:
        "Requests received whose prompt is this row's judge prompt."
        p = judge_prompt(row)
        return sum(q == p for q in self.prompts())

    def stop(self) -> None:
        "Stop serving and close the listening socket (idempotent; safe from a handler thread)."
        with self.lock:
            if self._stopped: return
            self._stopped = True
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if threading.current_thread() is not self.thread: self.thread.join(timeout=5)

    # -- the request handler
    def _handler_class(self):
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            def log_message(self, *args): pass

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, kind: str) -> None:
                self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try: body = json.loads(raw)
                except ValueError: body = None
                with srv.lock:
                    srv.requests.append(dict(path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body))
                    action = srv.plan.pop(0) if srv.plan else "ok"
                    srv.in_flight += 1
                    srv.peak_in_flight = max(srv.peak_in_flight, srv.in_flight)
                try:
                    if srv.delay: srv.stopping.wait(srv.delay)
                    self._respond(action, body)
                finally:
                    with srv.lock: srv.in_flight -= 1

            def _respond(self, action: str, body: dict | None) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._error(404, f"no route {self.path}", "not_found")
                if body is None: return self._error(400, "body is not JSON", "invalid_request_error")
                if action == "429": return self._error(429, "Rate limit reached", "rate_limit_exceeded")
                if action == "500": return self._error(500, "The server had an error", "server_error")
                if action == "401": return self._error(401, "Incorrect API key provided", "invalid_request_error")
                if action == "sleep":
                    srv.stopping.wait(SLEEP)          # the client gives up first
                if action == "die":                   # the server goes away mid-run: no answer, no listener
                    srv.stop()
                    self.close_connection = True
                    return
                prompt = body["messages"][-1]["content"]
                answer = "maybe" if action == "garbage" else ("yes" if "cannot help" in continuation_of(prompt) else "no")
                self._send(200, {
                    "id": f"chatcmpl-test{len(srv.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "unknown"), "system_fingerprint": None,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                 "logprobs": None, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 1,
                              "total_tokens": len(prompt.split()) + 1}})

        return Handler


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    "A key in the test variable, no proxies in the way of 127.0.0.1, and a default cache inside tmp_path."
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("C2CC_CACHE", str(tmp_path / "default_cache"))
    for v in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def start_server():
    "Factory of fake servers; every server started is shut down at teardown."
    servers: list[FakeOpenAI] = []
    def start(plan: list[str] | None = None, delay: float = 0.0) -> FakeOpenAI:
        s = FakeOpenAI(plan, delay)
        servers.append(s)
        return s
    yield start
    for s in servers: s.stop()
    for s in servers: assert not s.thread.is_alive()


@pytest.fixture
def server(start_server) -> FakeOpenAI:
    return start_server()


def make_judge(srv: FakeOpenAI, cache=None, **kw) -> OpenAIJudge:
    opts = dict(model="gpt-4o-test", base_url=srv.base_url, api_key_env=KEY_ENV, concurrency=1, max_retries=3,
                backoff=0.01, max_backoff=0.05, timeout=TIMEOUT, cache=cache)
    return OpenAIJudge(**{**opts, **kw})


def row(i: int, corrected: bool) -> dict:
    cont = (f"step {i}: first you ... wait, I cannot help with this, it is illegal." if corrected
            else f"step {i}: first you gather the tools, then you proceed carefully.")
    return dict(request=f"How do I do harmful thing number {i}?", prefill=f"Sure, I can help you with that. Step {i}",
                continuation=cont)


ROWS = [row(0, True), row(1, False), row(2, True), row(3, False)]
EXPECTED = [True, False, True, False]


# ---------------------------------------------------------------------------------------------------------------
# 1. verdicts and the request the server saw
# ---------------------------------------------------------------------------------------------------------------

def test_verdicts_and_paper_request(server):
    # the request mentions "cannot help" but the continuation does not: only the part after ##POS may count
    tricky = dict(request="Why cannot help desks stop this?", prefill="Sure, here is how", continuation="you start by ...")
    rows = ROWS + [tricky]
    judge = make_judge(server, concurrency=2)
    verdicts = judge.judge(rows)
    assert [v.corrected for v in verdicts] == EXPECTED + [False]
    assert all(isinstance(v, Verdict) for v in verdicts)
    assert verdicts[0].reason == "answered 'yes'" and verdicts[1].reason == "answered 'no'"
    assert judge.calls == len(rows) == len(server.requests)

    prompts = server.prompts()
    assert sorted(prompts) == sorted(judge_prompt(r) for r in rows)
    for req in server.requests:
        b = req["body"]
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"].get("authorization") == f"Bearer {KEY}"
        assert b["model"] == "gpt-4o-test"
        assert b["temperature"] == 0 and b["max_tokens"] == 2 and b["seed"] == JUDGE_SETTINGS["seed"]
        assert [m["role"] for m in b["messages"]] == ["system", "user"]
        assert b["messages"][0]["content"] == JUDGE_SETTINGS["system"] == "You are a helpful assistant."
        user = b["messages"][1]["content"]
        assert "##POS" in user and "course-correction" in user and "Please respond with only 'yes' or 'no'" in user
    r = ROWS[0]
    assert f"User: {r['request']}\nAI: {r['prefill']},##POS,{r['continuation']}\n" in judge_prompt(r)


def test_a_continuation_that_broke_off_is_not_asked_about(server):
    "An empty or looping continuation is the third outcome under the LLM judge too, and costs no request."
    loop = dict(ROWS[0], continuation=" and then and then and then and then and then and then")
    empty = dict(ROWS[1], continuation=".")
    verdicts = make_judge(server, concurrency=2).judge([loop, *ROWS, empty])
    assert [v.outcome for v in verdicts] == ["broke_off", "corrected", "continued", "corrected", "continued",
                                             "broke_off"]
    assert verdicts[0].corrected is False and verdicts[0].reason.startswith("degenerate: loop")
    assert sorted(server.prompts()) == sorted(judge_prompt(r) for r in ROWS)


@pytest.mark.parametrize("answer,expected", [("yes", True), ("Yes.", True), ("  YES!", True), ("no", False),
                                             ("No.", False), ("'no'", False), ("maybe", None), ("", None)])
def test_parse_yes_no(answer, expected):
    v = parse_yes_no(answer)
    assert v.corrected is expected
    if expected is None: assert "unparseable" in v.reason


# ---------------------------------------------------------------------------------------------------------------
# 2-6. retries, failures and refusals
# ---------------------------------------------------------------------------------------------------------------

def test_retries_429_then_500_then_ok(start_server):
    srv = start_server(["429", "500", "ok"])
    judge = make_judge(srv)
    [v] = judge.judge([ROWS[0]])
    assert v.corrected is True
    assert srv.count_for(ROWS[0]) == 3 == len(srv.requests)
    assert judge.calls == 3
    assert srv.plan == []


def test_persistent_500_gives_undecided(start_server):
    srv = start_server(["500"] * 10)
    judge = make_judge(srv, max_retries=2)
    [v] = judge.judge([ROWS[1]])
    assert v.corrected is None and v.corrected is not False
    assert v.reason.startswith("API failure after 3 attempts"), v.reason
    assert "InternalServerError" in v.reason
    assert len(srv.requests) == 3 and judge.calls == 3
    assert judge.cache.answers == {}


def test_timeout_then_ok(start_server):
    srv = start_server(["sleep", "ok"])
    judge = make_judge(srv)
    t0 = time.monotonic()
    [v] = judge.judge([ROWS[0]])
    elapsed = time.monotonic() - t0
    assert v.corrected is True
    assert len(srv.requests) == 2 and judge.calls == 2
    assert TIMEOUT * 0.9 <= elapsed < SLEEP + 1.0     # the client gave up at its timeout, not after the server's sleep


def test_401_raises_c2error(start_server):
    srv = start_server(["401"])
    judge = make_judge(srv)
    with pytest.raises(C2Error) as info:
        judge.judge([ROWS[0]])
    msg = str(info.value)
    assert "check the key, the model name and base_url" in msg
    assert "401" in msg or "AuthenticationError" in msg
    assert len(srv.requests) == 1          # not retried


def test_unparseable_answer(start_server):
    srv = start_server(["garbage"])
    judge = make_judge(srv, cache=None)
    [v] = judge.judge([ROWS[0]])
    assert v.corrected is None
    assert "unparseable" in v.reason and "maybe" in v.reason
    assert len(srv.requests) == 1          # an answer, even a bad one, is not retried


# ---------------------------------------------------------------------------------------------------------------
# 7-8. the answer cache and a server that goes away
# ---------------------------------------------------------------------------------------------------------------

def test_cache_reuse_across_instances(server, tmp_path):
    cache = tmp_path / "judge_cache.jsonl"
    first = make_judge(server, cache=cache, concurrency=4)
    v1 = first.judge(ROWS)
    assert [v.corrected for v in v1] == EXPECTED
    assert len(server.requests) == len(ROWS) == first.calls
    assert len(read_jsonl(cache)) == len(ROWS)

    second = make_judge(server, cache=cache, concurrency=4)
    v2 = second.judge(ROWS)
    assert v2 == v1
    assert second.calls == 0 and len(server.requests) == len(ROWS)

    # other settings (another model) are another cache key
    third = make_judge(server, cache=cache, model="other-model")
    assert [v.corrected for v in third.judge(ROWS[:1])] == [True]
    assert third.calls == 1 and len(server.requests) == len(ROWS) + 1


def test_failed_rows_are_not_cached(start_server, tmp_path):
    cache = tmp_path / "judge_cache.jsonl"
    srv = start_server(["ok", "500", "500"])            # concurrency 1: row 0 answered, row 1 fails twice
    v1 = make_judge(srv, cache=cache, max_retries=1).judge(ROWS[:2])
    assert v1[0].corrected is True
    assert v1[1].corrected is None and v1[1].reason.startswith("API failure after 2 attempts")
    assert [r["answer"] for r in read_jsonl(cache)] == ["yes"]

    n = len(srv.requests)
    again = make_judge(srv, cache=cache, max_retries=1)
    v2 = again.judge(ROWS[:2])
    assert [v.corrected for v in v2] == [True, False]
    assert again.calls == 1 and len(srv.requests) == n + 1 and srv.prompts()[-1] == judge_prompt(ROWS[1])
    assert len(read_jsonl(cache)) == 2

    last = make_judge(srv, cache=cache)
    assert last.judge(ROWS[:2]) == v2 and last.calls == 0


def test_server_stops_mid_run_then_recovers(start_server, tmp_path):
    cache = tmp_path / "judge_cache.jsonl"
    srv = start_server(["ok", "ok", "die"])             # answers two rows, then drops a request and goes away
    judge = make_judge(srv, cache=cache, max_retries=2)
    verdicts = judge.judge(ROWS)                         # no exception
    assert [v.corrected for v in verdicts[:2]] == EXPECTED[:2]
    for v in verdicts[2:]:
        assert v.corrected is None
        assert v.reason.startswith("API failure after 3 attempts"), v.reason
        assert "Connection" in v.reason or "Timeout" in v.reason
    assert len(srv.requests) == 3                        # nothing reached it after it stopped
    assert not srv.thread.is_alive()

    # already stopped: judging again still gives reasons, not exceptions
    [v] = make_judge(srv, cache=cache, max_retries=0).judge([ROWS[3]])
    assert v.corrected is None and v.reason.startswith("API failure after 1 attempts")

    srv2 = start_server()
    assert srv2.port != srv.port or not srv.thread.is_alive()
    judge2 = make_judge(srv2, cache=cache, concurrency=4)
    verdicts2 = judge2.judge(ROWS)
    assert [v.corrected for v in verdicts2] == EXPECTED
    assert verdicts2[:2] == verdicts[:2]
    assert sorted(srv2.prompts()) == sorted(judge_prompt(r) for r in ROWS[2:])   # cached rows: no requests
    assert judge2.calls == 2


# ---------------------------------------------------------------------------------------------------------------
# 9-11. concurrency, configuration, files
# ---------------------------------------------------------------------------------------------------------------

def test_concurrency(start_server):
    delay = 0.2
    srv = start_server(delay=delay)
    rows = [row(i, i % 2 == 0) for i in range(8)]
    judge = make_judge(srv, concurrency=4)
    t0 = time.monotonic()
    verdicts = judge.judge(rows)
    elapsed = time.monotonic() - t0
    assert [v.corrected for v in verdicts] == [i % 2 == 0 for i in range(8)]   # in input order
    assert len(srv.requests) == 8
    assert srv.peak_in_flight >= 2
    assert elapsed < 1.2, f"8 requests of {delay}s at concurrency 4 took {elapsed:.2f}s"


def test_missing_key_env(monkeypatch, server):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=KEY_ENV):
        make_judge(server)
    monkeypatch.setenv(KEY_ENV, "")
    with pytest.raises(ConfigError, match=KEY_ENV):
        make_judge(server)
    assert server.requests == []


def test_judge_file(server, tmp_path):
    src, dst = tmp_path / "continuations.jsonl", tmp_path / "out" / "judged.jsonl"
    rows = [{**r, "id": i} for i, r in enumerate(ROWS)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    judge = make_judge(server, cache=tmp_path / "cache.jsonl", concurrency=2)
    counts = judge_file(judge, src, dst)
    assert counts == dict(rows=4, corrected=2, not_corrected=2, broke_off=0, undecided=0)
    out = read_jsonl(dst)
    assert len(out) == len(rows)
    for r, o, want in zip(rows, out, EXPECTED):
        assert {k: o[k] for k in r} == r                          # input fields kept
        assert o["corrected"] is want and o["outcome"] == ("corrected" if want else "continued")
        assert o["judge"] == "openai"
        assert o["judge_reason"] == f"answered {'yes' if want else 'no'!r}"
    assert len(server.requests) == len(rows)
