"""Running the `kafkalite` tools as real subprocesses, for the tests in this folder."""

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    out: str
    err: str



def run_kafkalite(*args: str, input: str | None = None, bootstrap: str | None = None, timeout: float = 30) -> Result:
    """`kafkalite ARGS...` as a real subprocess. (`python -m kafkalite` always serves, so this runs the
    same entry point as the installed `kafkalite` script: kafkalite.cli.)"""
    argv = [sys.executable, "-m", "kafkalite.cli", *args]
    if bootstrap is not None:
        argv += ["--bootstrap", bootstrap]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env)
    return Result(done.returncode, done.stdout, done.stderr)



def run_parallel(*commands: tuple, bootstrap: str | None = None, timeout: float = 30) -> list[Result]:
    """Several independent `kafkalite` runs at once (each a tuple of arguments): interpreter start-up
    dominates a tool's run time, so running them side by side keeps the folder fast."""
    procs = [subprocess.Popen([sys.executable, "-m", "kafkalite.cli", *args,
                               *(["--bootstrap", bootstrap] if bootstrap else [])],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(Result(proc.returncode, out, err))
    return results
