"""`afqmc serve`, the real server on a free loopback port: health, predictions equal to `afqmc predict`,
every malformed-request kind, the queue limit, concurrent clients, the page in a headless browser,
and a SIGTERM that lets the requests in flight finish."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, write_jsonl
from conftest import REPO

pytest.importorskip("aiohttp", reason="afqmc serve needs the serve extra")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    train, dev = write_jsonl(d / "train.json", make_pairs(96, 0)), write_jsonl(d / "dev.json", make_pairs(40, 1))
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
                       "--scratch-size", "tiny", "--epochs", "2", "--batch-size", "16", "--out", str(d / "run"),
                       "--quiet"]) == 0
    return d / "run" / "best"


class Server:
    def __init__(self, model_dir, *args, env=None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "afqmc", "serve", "--model-dir", str(model_dir), "--port", "0", "--threads", "1",
             *args], cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.lines = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if (m := re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)):
                self.url = f"http://127.0.0.1:{m.group(1)}"
                threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
                return
        self.proc.kill()
        raise AssertionError("server did not start: " + "".join(self.lines))

    def request(self, path, body=None, method=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def test_health_predictions_bad_requests_and_concurrent_clients(model_dir, tmp_path):
    server = Server(model_dir, "--max-pairs", "8", "--max-body-kb", "4")
    try:
        assert "this machine only" in "".join(server.lines)
        status, health = server.request("/health")
        assert status == 200 and health["labels"] == ["0", "1"] and health["decision_threshold"] is None
        rows = make_pairs(40, 1)
        pairs = [[r["sentence1"], r["sentence2"]] for r in rows]
        write_jsonl(tmp_path / "dev.json", rows)
        assert afqmc_main(["predict", "--model-dir", str(model_dir), "--file", str(tmp_path / "dev.json"),
                           "--output", str(tmp_path / "p.json")]) == 0
        expected = [json.loads(line)["label"] for line in (tmp_path / "p.json").read_text().splitlines()]
        got = [p["label"] for i in range(0, 40, 8) for p in server.request("/predict", {"pairs": pairs[i:i + 8]})[1]
               ["predictions"]]
        assert got == expected

        bad = [(None, b"{not json", 400, "invalid JSON"), ([1, 2], None, 400, "expected a JSON object"),
               ({"pairs": "ab"}, None, 400, "must be a list"), ({"pairs": []}, None, 400, "is empty"),
               ({"pairs": [["a"]]}, None, 400, "pairs[0]: expected [sentence1, sentence2]"),
               ({"pairs": [["a", 3]]}, None, 400, "pairs[0][1]: expected a string, found int"),
               ({"pairs": [["a", " "]]}, None, 400, "pairs[0][1]: empty sentence"),
               ({"pairs": [["a", "b"]] * 9}, None, 400, "too many pairs: 9 (at most 8"),
               (None, b'{"pairs": [["' + b"a" * 5000 + b'", "b"]]}', 413, "request body too large"),
               (None, b"\xff\xfe", 400, "invalid JSON"),
               (None, b'{"pairs": [["a", "b\\ud800"]]}', 400, "pairs[0][1]: contains \\ud800")]
        for body, raw, code, needle in bad:
            status, answer = server.request("/predict", body, raw=raw)
            assert status == code and needle in answer["error"], (body, raw, status, answer)
        assert server.request("/nowhere")[0] == 404 and server.request("/predict", method="GET")[0] == 405

        def one(i):
            return server.request("/predict", {"pairs": [pairs[i]]})[1]["predictions"][0]["label"]
        with ThreadPoolExecutor(32) as pool:  # 32 clients at once: each gets its own pair's answer
            assert list(pool.map(one, range(32))) == expected[:32]
        assert server.request("/health")[1]["batches"] < 5 + 32  # some requests were scored together
    finally:
        assert server.stop() == 0


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_full_queue_answers_503_and_keeps_serving(model_dir):
    server = Server(model_dir, "--max-queue", "1", "--max-batch-size", "1", "--max-wait-ms", "0",
                    env={"PAIRTRAIN_TEST_EVAL_DELAY": "0.5"})
    try:
        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: server.request("/predict", {"pairs": [["花呗", "还款"]]}), range(6)))
        statuses = [c for c, _ in codes]
        assert 200 in statuses and 503 in statuses
        assert all("busy" in a["error"] for c, a in codes if c == 503)
        assert server.request("/predict", {"pairs": [["花呗", "还款"]]})[0] == 200
    finally:
        assert server.stop() == 0


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_sigterm_lets_the_request_in_flight_finish(model_dir):
    server = Server(model_dir, env={"PAIRTRAIN_TEST_EVAL_DELAY": "1.5"})
    result = {}
    client = threading.Thread(target=lambda: result.update(r=server.request("/predict", {"pairs": [["a", "b"]]})))
    client.start()
    time.sleep(0.5)  # the request is being scored
    assert server.stop() == 0
    client.join(30)
    assert result["r"][0] == 200 and len(result["r"][1]["predictions"]) == 1
    assert "stopped" in "".join(server.lines)


def test_port_in_use_is_one_line(model_dir, capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert afqmc_main(["serve", "--model-dir", str(model_dir), "--port", str(s.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1:" in err and len(err.strip().splitlines()) == 1


BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_page_in_a_headless_browser(model_dir):
    server = Server(model_dir)
    try:
        dom = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                              "--dump-dom", f"{server.url}/?s1=花呗怎么还款&s2=花呗如何还钱"],
                             capture_output=True, text=True, timeout=120).stdout
        expected = server.request("/predict", {"pairs": [["花呗怎么还款", "花呗如何还钱"]]})[1]["predictions"][0]
        assert 'data-state="done"' in dom and f'<span id="label">{expected["label"]}</span>' in dom
    finally:
        server.stop()
