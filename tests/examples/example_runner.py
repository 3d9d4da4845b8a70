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
