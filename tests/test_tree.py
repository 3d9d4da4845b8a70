"""The tree's layout bounds (issue 39): benchmark and tool code stays small beside the library,
and the CUDA emulation stays out of the library's headers but for its one launch hook.

Code lines are lines that hold code: blank lines, comments and docstrings do not count."""

import ast
import io
import pathlib
import re
import subprocess
import tokenize

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = ("csrc", "srcpkg/srcext")
TOOLING = ("benchmarks", "tools")
TOOLING_SHARE = 0.35  # of the library's code lines, at most
SUFFIXES = {".py", ".h", ".cpp", ".cu", ".cuh", ".sh"}


def files(*folders):
    """The source files of the folders: those git tracks (a build copies csrc/ into the package
    as srcext/_csrc, untracked), else all but such copies."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", *folders], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        paths = [ROOT / name for name in listed]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for folder in folders for p in (ROOT / folder).rglob("*") if "_csrc" not in p.parts]
    return sorted(p for p in paths if p.suffix in SUFFIXES and p.is_file())


def python_code_lines(source: str) -> int:
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    docstrings.update(range(first.lineno, first.end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


def code_lines(path: pathlib.Path) -> int:
    source = path.read_text()
    if path.suffix == ".py":
        return python_code_lines(source)
    if path.suffix == ".sh":
        return sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return sum(1 for line in source.splitlines() if re.sub(r"//.*", "", line).strip())


def test_code_lines_skip_comments_blanks_and_docstrings(tmp_path):
    py = tmp_path / "a.py"
    py.write_text('"""doc\nstring"""\n\n# comment\ndef f(x):\n    """doc"""\n    return (x +\n            1)  # why\n')
    assert code_lines(py) == 3  # def, and the two lines of the return
    cpp = tmp_path / "a.cpp"
    cpp.write_text("/* a\n block */\nint f();  // why\n\n// comment\nint g();\n")
    assert code_lines(cpp) == 2
    sh = tmp_path / "a.sh"
    sh.write_text("#!/bin/bash\n# comment\n\necho hi  # why\n")
    assert code_lines(sh) == 1


def test_tooling_is_at_most_its_share_of_the_library():
    library = sum(code_lines(p) for p in files(*LIBRARY))
    tooling = {str(p.relative_to(ROOT)): code_lines(p) for p in files(*TOOLING)}
    largest = ", ".join(f"{name} {n}" for name, n in sorted(tooling.items(), key=lambda kv: -kv[1])[:4])
    assert library > 3000, library  # the library was found
    assert sum(tooling.values()) <= TOOLING_SHARE * library, (
        f"benchmark/tool code {sum(tooling.values())} lines > {TOOLING_SHARE} x the library's {library}"
        f" (largest: {largest})"
    )


def test_the_emulation_reaches_one_library_header_only():
    named = [str(p.relative_to(ROOT)) for p in files(*LIBRARY) if "SRCEXT_CUDA_EMULATION" in p.read_text()]
    assert named == ["csrc/common/src_launch_kernel.cuh"], named
