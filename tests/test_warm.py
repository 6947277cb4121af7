"""The warm Python the tests start their commands from (warm.py): each command is a process of its own, with the
working directory, environment, temporary folder, arguments, `__main__`, exit handlers and exit status it would have
as a plain subprocess, and `c2cc` answers exactly as the console script does."""
import json, os, signal, subprocess, sys, textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import atexit, json, os, sys, tempfile
    atexit.register(lambda: open(sys.argv[1], "a").write("exit handler ran\\n"))
    print(json.dumps(dict(pid=os.getpid(), cwd=os.getcwd(), x=os.environ.get("WARM_X"), tmp=tempfile.gettempdir(),
                          argv=sys.argv, name=__name__)))
    if sys.argv[2] == "raise": raise RuntimeError("boom")
    if sys.argv[2] == "sleep": import time; time.sleep(60)
    sys.exit(int(sys.argv[2]))
""")


@pytest.fixture
def script(tmp_path):
    (tmp_path/"probe.py").write_text(SCRIPT)
    return tmp_path/"probe.py"


def test_a_warm_command_is_a_process_of_its_own(warm, script, tmp_path):
    (tmp_path/"cwd").mkdir(); (tmp_path/"tmp").mkdir()
    env = {**os.environ, "WARM_X": "7", "TMPDIR": str(tmp_path/"tmp")}
    argv = [sys.executable, str(script), str(tmp_path/"log"), "3"]
    assert warm.warms(argv, env)
    r = warm.run(argv, tmp_path/"cwd", env, timeout=60)
    seen = json.loads(r.stdout)
    assert r.returncode == 3 and seen["pid"] not in (os.getpid(), warm.server.pid)
    assert seen["cwd"] == str(tmp_path/"cwd") and seen["x"] == "7" and seen["tmp"] == str(tmp_path/"tmp")
    assert seen["argv"] == [str(script), str(tmp_path/"log"), "3"] and seen["name"] == "__main__"
    assert (tmp_path/"log").read_text() == "exit handler ran\n"
    failed = warm.run([*argv[:3], "raise"], tmp_path, env, timeout=60)
    assert failed.returncode == 1 and "RuntimeError: boom" in failed.stderr and (tmp_path/"log").read_text().count("ran") == 2


def test_a_killed_warm_command_reports_the_signal(warm, script, tmp_path):
    cmd = warm.start([sys.executable, str(script), str(tmp_path/"log"), "sleep"], tmp_path, dict(os.environ))
    assert cmd.poll() is None
    cmd.send_signal(signal.SIGKILL)
    assert cmd.wait(timeout=30) == -signal.SIGKILL and not (tmp_path/"log").exists()   # no exit handler after a kill


def test_a_changed_interpreter_start_runs_cold(warm, script):
    assert not warm.warms([sys.executable, str(script)], {**os.environ, "PYTHONPATH": "/elsewhere"})
    assert not warm.warms(["/bin/echo", "hi"], dict(os.environ))


@pytest.mark.parametrize("args", [["eval", "--help"], ["eval", "--profile", "nosuch"], ["train", "--n-pairs", "0"],
                                  ["reproduce", "--profile", "smoke", "--stages", "figures", "--dry-run"]])
def test_c2cc_warm_answers_as_the_console_script(warm, repo, tmp_path, args):
    argv, env = [str(Path(sys.executable).parent/"c2cc"), *args, "--out", str(tmp_path/"out")], dict(os.environ)
    cold = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    hot = warm.run(argv, repo, env, timeout=120)
    assert (hot.returncode, hot.stdout, hot.stderr) == (cold.returncode, cold.stdout, cold.stderr)
