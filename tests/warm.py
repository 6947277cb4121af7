"""A warm Python for the tests' commands. Most of a `c2cc` command's or a notebook test's first seconds go to importing
torch, transformers and TRL (about 5 s of every such process on the 2-core machines). `WarmPython` starts one server
per test worker that imports them once and then forks a child for each command: the child is a new process with its
own pid, working directory, environment, temporary folder, standard streams and exit status, and it runs the command's
own script as `__main__`, as the interpreter would; only the imports (and the default model's tokenizer) are already
done. A command whose environment changes how Python starts (`PYTHONPATH` and the like) runs as a plain subprocess
instead.

Run as a script, this file is the server: it reads one JSON request a line on stdin, forks, and answers on stdout
`{"started": pid}`, then `{"pid": pid, "exit": code}` when that child ends (a negative code: killed by that signal)."""
import json, os, select, subprocess, sys, threading, time
from pathlib import Path

BIN = Path(sys.executable).parent
PRELOAD = ["torch", "transformers", "peft", "datasets", "accelerate", "trl", "papermill", "nbdev.test", "execnb.shell",
           "c2_course_correct.cli", "c2_course_correct.figures"]
# what changes how Python starts, or what a preloaded library read once at import (the hub's cache and offline mode)
STARTUP_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE",
               "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")


def _python_script(argv: list[str]) -> str | None:
    "The Python file `argv` runs with this interpreter (a console script of this environment, or `python FILE`), or None."
    first = Path(argv[0])
    if first == Path(sys.executable) and len(argv) > 1 and argv[1].endswith(".py"): return argv[1]
    if first.parent == BIN and first.is_file():
        with open(first, "rb") as f: head = f.readline()
        if head.strip() == f"#!{sys.executable}".encode(): return str(first)
    return None


class Command:
    "A command started by `WarmPython`: `pid`, `poll()`, `wait()`, `kill()`, and its captured output once it ended."
    def __init__(self, warm: "WarmPython", pid: int, out: Path, err: Path):
        self.warm, self.pid, self.out, self.err = warm, pid, out, err
    def poll(self) -> int | None: return self.warm.exit_of(self.pid)
    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.time() > deadline: raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.01)
        return code
    def kill(self, sig: int = 9) -> None: os.kill(self.pid, sig)
    def send_signal(self, sig: int) -> None: os.kill(self.pid, sig)
    @property
    def returncode(self) -> int | None: return self.poll()
    def output(self) -> tuple[str, str]: return self.out.read_text(errors="replace"), self.err.read_text(errors="replace")


class WarmPython:
    "The client: starts the server (this file) and runs commands through it; `run` and `start` mirror subprocess's."
    def __init__(self, scratch: Path):
        self.scratch, self.lock, self.exits, self.n = Path(scratch), threading.Lock(), {}, 0
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.server = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=open(self.scratch/"server.log", "w"))
        self.pending = b""
        ready = self._message(block=True)
        assert ready == {"ready": True}, f"the warm Python did not start: {ready!r}; see {self.scratch/'server.log'}"

    def _message(self, block: bool) -> dict | None:
        "The server's next message (None when none is waiting and `block` is false)."
        fd = self.server.stdout.fileno()
        while b"\n" not in self.pending:
            if not block and not select.select([fd], [], [], 0)[0]: return None
            data = os.read(fd, 1 << 16)
            assert data, f"the warm Python ended; see {self.scratch/'server.log'}"
            self.pending += data
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def warms(self, argv: list[str], env: dict) -> bool:
        "Whether `argv` can start warm: a Python file of this interpreter, with no change to how Python starts."
        return _python_script(argv) is not None and all(env.get(k) == os.environ.get(k) for k in STARTUP_ENV)

    def start(self, argv: list[str], cwd: str | Path, env: dict) -> Command:
        "Start `argv` in a forked child; its stdout and stderr go to files."
        with self.lock:
            self.n += 1
            out, err = self.scratch/f"{self.n}.out", self.scratch/f"{self.n}.err"
            self.server.stdin.write((json.dumps(dict(script=_python_script(argv), argv=[str(a) for a in argv],
                                                     cwd=str(cwd), env=env, out=str(out), err=str(err))) + "\n").encode())
            self.server.stdin.flush()
            while "started" not in (msg := self._message(block=True)): self.exits[msg["pid"]] = msg["exit"]
            return Command(self, msg["started"], out, err)

    def exit_of(self, pid: int) -> int | None:
        "The exit code of child `pid` once the server reported it."
        with self.lock:
            while pid not in self.exits and (msg := self._message(block=False)) is not None:
                self.exits[msg["pid"]] = msg["exit"]
            return self.exits.get(pid)

    def run(self, argv: list[str], cwd: str | Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        "Run `argv` to its end, as `subprocess.run(..., capture_output=True, text=True)` does."
        cmd = self.start(argv, cwd, env)
        try: code = cmd.wait(timeout)
        except subprocess.TimeoutExpired:
            cmd.kill(); cmd.wait(); raise
        return subprocess.CompletedProcess(argv, code, *cmd.output())

    def close(self) -> None:
        self.server.stdin.close(); self.server.wait(timeout=30)


# ---- the server ----------------------------------------------------------------------------------------------------

def _child(req: dict) -> None:
    "In the forked child: become the command's process, run its script as `__main__`, exit as Python exits."
    import atexit, runpy, tempfile, traceback
    code = 1
    try:
        os.chdir(req["cwd"])
        os.environ.clear(); os.environ.update(req["env"])
        tempfile.tempdir = None                        # chosen again from this process's TMPDIR
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, req["out"]), (2, req["err"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.argv = req["argv"][1:] if req["argv"][0] == sys.executable else list(req["argv"])
        try:
            runpy.run_path(req["script"], run_name="__main__")
            code = 0
        except SystemExit as e:
            if e.code is None: code = 0
            elif isinstance(e.code, int): code = e.code
            else: print(e.code, file=sys.stderr); code = 1
        except BaseException:
            traceback.print_exc(); code = 1
        threading._shutdown()                          # what the interpreter does at exit: join threads, ...
        atexit._run_exitfuncs()                        # ... then the exit handlers (temporary folders removed)
    except BaseException:
        traceback.print_exc()
    finally:
        try: sys.stdout.flush(); sys.stderr.flush()
        finally: os._exit(code)


def serve() -> None:
    import importlib
    for m in PRELOAD: importlib.import_module(m)
    # the default model's tokenizer, read once here: most commands read it first (half a second to two each time); a
    # child's load_tokenizer copies it from this cache, which still rereads the files once they change
    from c2_course_correct.models import load_tokenizer
    load_tokenizer("default")
    assert threading.active_count() == 1, "an import started a thread: forking would not be safe"
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                                      # stray prints of the server go to its log, not the protocol
    answer.write('{"ready": true}\n')
    pending = b""
    while True:
        while True:                                    # report every child that ended
            try: pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError: break
            if not pid: break
            answer.write(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}) + "\n")
        if select.select([0], [], [], 0.01)[0]:
            data = os.read(0, 1 << 16)
            if not data: break                         # the tests ended
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                req = json.loads(line)
                sys.stdout.flush(); sys.stderr.flush()   # nothing of the server's reaches the child's files
                pid = os.fork()
                if pid == 0: _child(req)
                answer.write(json.dumps({"started": pid}) + "\n")


if __name__ == "__main__":
    serve()
