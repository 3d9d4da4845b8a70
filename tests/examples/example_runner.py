"""Running the example scripts from the tests: imported as modules, or train.py as a subprocess."""

import importlib.util
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
TRAIN = os.path.join(EXAMPLES, "train.py")


def load_example(name):
    """Import examples/<name>.py as a module (examples/ on sys.path, as for the script: the
    examples import their shared examples/common.py)."""
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # one copy, shared with the examples' own imports of it
    spec.loader.exec_module(module)
    return module


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, TRAIN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_run_args(
    data_dir=None, out=None, *, dataset="mnist", batch_size=16, hidden_size=16, steps=20, silent_steps=3, epochs=1
):
    """train.py's arguments for a run of seconds: a small model over few steps, on one thread,
    without a progress bar. The dataset only with ``data_dir``, the run folder only with
    ``out``; a setting given as None is left out (train.py's default, or the caller's own)."""
    args = [] if data_dir is None else ["--dataset", dataset, "--data-dir", str(data_dir)]
    if out is not None:
        args += ["--out", str(out)]
    settings = (
        ("--batch-size", batch_size),
        ("--hidden-size", hidden_size),
        ("--steps", steps),
        ("--silent-steps", silent_steps),
        ("--epochs", epochs),
    )
    args += [arg for flag, value in settings if value is not None for arg in (flag, str(value))]
    return args + ["--no-progress", "--threads", "1"]
