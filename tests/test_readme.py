"""The README and docs/ pages say what runs: every `afqmc`/`fashion` command in their bash blocks parses with
the real command line (every flag exists and takes the value shown), and the short ones (eval, predict,
export on a model in runs/) run as written, in a folder laid out as the README assumes."""

import importlib.util
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from afqmc_helpers import make_pairs, write_jsonl
from conftest import REPO, synthetic_fashion, write_idx

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _commands(text: str) -> list[str]:
    """``afqmc ...``/``fashion ...`` lines of the bash blocks, continuations joined, comments dropped, optional
    parts (``[--grid out.png]``) left out; a synopsis (``...``, ``a|b``) is not a command and is skipped."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(re.sub(r"\[[^\]]*\]", " ", re.sub(r"\s+#\s.*$", "", line)).split())
            if line.startswith(("afqmc ", "fashion ")) and "..." not in line and "|" not in line:
                lines.append(line)
    return lines


ALL = [(page.name, line) for page in PAGES for line in _commands(page.read_text(encoding="utf-8"))]
SHORT = ("afqmc eval ", "afqmc predict ", "afqmc export ", "fashion predict ", "fashion export ")


def test_the_pages_show_commands():
    readme = [line for name, line in ALL if name == "README.md"]
    assert len(readme) >= 10 and any(line.startswith(SHORT) for line in readme)


@pytest.mark.parametrize("page,line", ALL)
def test_every_command_shown_parses(page, line):
    from afqmc.cli import build_parser as afqmc_parser
    from fashion.cli import build_parser as fashion_parser

    argv = shlex.split(line)
    parser = {"afqmc": afqmc_parser, "fashion": fashion_parser}[argv[0]]()
    try:
        parser.parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{page}: `{line}` does not parse")


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory):
    """A folder with what the README's short commands name: runs/afqmc/best, runs/fashion/best, pair files
    and images."""
    from PIL import Image

    d = tmp_path_factory.mktemp("readme")
    write_jsonl(d / "train.json", make_pairs(32, 0))
    write_jsonl(d / "dev.json", make_pairs(16, 1))
    write_jsonl(d / "test.json", make_pairs(8, 2), drop_label=True, ids=True)
    data = d / "fashion-data"
    data.mkdir()
    for split, n in (("train", 64), ("t10k", 32)):
        images, labels = synthetic_fashion(n, 0)
        write_idx(data / f"{split}-images-idx3-ubyte", images, 2051)
        write_idx(data / f"{split}-labels-idx1-ubyte", labels, 2049)
    images, _ = synthetic_fashion(2, 1)
    Image.fromarray(images[0]).save(d / "shoe.png")
    np.save(d / "bag.npy", images[1])
    for args in (["afqmc", "train", "--train-file", "train.json", "--dev-file", "dev.json", "--model", "scratch",
                  "--scratch-size", "tiny", "--epochs", "1", "--out", "runs/afqmc"],
                 ["fashion", "train", "--data-dir", str(data), "--epochs", "1", "--out", "runs/fashion",
                  "--no-download"]):
        r = subprocess.run([sys.executable, "-m", *args, "--quiet"], cwd=d, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    if importlib.util.find_spec("onnxruntime"):  # what the `--backend onnx` commands need, in any order
        r = subprocess.run([sys.executable, "-m", "afqmc", "export", "--model-dir", "runs/afqmc/best", "--int8"],
                           cwd=d, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return d


@pytest.mark.slow  # a process per command (the parsing test above is the fast tier's check)
@pytest.mark.parametrize("line", sorted({line for _, line in ALL if line.startswith(SHORT)}))
def test_the_short_commands_run_as_written(laid_out, line):
    pytest.importorskip("PIL")
    argv = shlex.split(line)
    r = subprocess.run([sys.executable, "-m", *argv], cwd=laid_out, capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert r.returncode == 0, f"`{line}`: {r.stderr}"
