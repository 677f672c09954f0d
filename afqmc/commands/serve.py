"""`afqmc serve`: a saved pair model behind HTTP, with micro-batching.

Built on aiohttp (the ``serve`` extra): one well-kept package that is both a production HTTP server
(body size limits, keep-alive, graceful shutdown that waits for requests in flight) and the client
the tests and the load benchmark use. The model runs in one worker thread, so the event loop keeps
accepting, validating and answering requests while a batch is scored.

Requests wait in a bounded queue; the batcher takes the oldest, then whatever else is queued or
arrives within ``max_wait_ms`` (while clients are concurrent) up to ``max_batch_size`` pairs, and
scores them together with :class:`afqmc.model.scorer.PairScorer` (length-sorted batches, the saved
decision threshold), exactly as ``afqmc predict`` does. A full queue answers 503 instead of growing without limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from afqmc.commands.config import ServeConfig
from afqmc.data.batches import Pair
from afqmc.model.scorer import PairScorer
from afqmc.data.charsets import lone_surrogate
from shared.errors import UserError

log = logging.getLogger("pairtrain")
PAGE = Path(__file__).with_name("serve_page.html")


class BadRequest(ValueError):
    """A request the server refuses with 400 and this message."""


class QueueFull(RuntimeError):
    pass


@dataclass
class _Job:
    pairs: list[tuple[str, str]]
    future: asyncio.Future


class MicroBatcher:
    """Collects concurrent requests into batches and scores them in one worker thread."""

    def __init__(self, scorer: PairScorer, max_batch_size: int, max_wait_ms: float, max_queue: int):
        self.scorer, self.max_batch_size, self.max_wait = scorer, max_batch_size, max_wait_ms / 1000
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=max_queue)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")
        self.batches = self.pairs = 0

    async def score(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """One prediction per pair, in order (raises QueueFull when the queue is full)."""
        job = _Job(pairs, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull from None
        return await job.future

    async def run(self) -> None:
        """Serve batches until a None arrives, after every job queued before it.

        The batch waits up to ``max_wait`` for more requests only while clients are concurrent (the
        previous batch held several): a lone client then pays no waiting time per request.
        """
        loop = asyncio.get_running_loop()
        concurrent = False
        while (job := await self.queue.get()) is not None:
            wait = self.max_wait if concurrent else 0.0
            jobs, n, deadline, done = [job], len(job.pairs), loop.time() + wait, False
            while n < self.max_batch_size and not done:
                try:
                    nxt = self.queue.get_nowait() if self.queue.qsize() else await asyncio.wait_for(
                        self.queue.get(), max(deadline - loop.time(), 0))
                except (asyncio.TimeoutError, TimeoutError):
                    break
                if nxt is None:
                    done = True
                else:
                    jobs.append(nxt)
                    n += len(nxt.pairs)
            concurrent = len(jobs) > 1
            await self._score(jobs)
            if done:
                break

    async def _score(self, jobs: list[_Job]) -> None:
        pairs = [Pair(i, None, a, b, None) for i, (a, b) in enumerate(p for j in jobs for p in j.pairs)]
        try:
            probs = await asyncio.get_running_loop().run_in_executor(self.executor, self.scorer.outputs, pairs)
        except Exception as e:  # the server keeps serving; these requests get a 500
            log.exception("scoring failed")
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(e)
            return
        self.batches, self.pairs = self.batches + 1, self.pairs + len(pairs)
        start = 0
        for j in jobs:
            rows = probs[start:start + len(j.pairs)]
            start += len(j.pairs)
            if not j.future.done():  # the client may have gone away
                j.future.set_result([self.scorer.describe(row) for row in rows])


def parse_pairs(body: bytes, max_pairs: int) -> list[tuple[str, str]]:
    """``{"pairs": [[s1, s2], ...]}`` -> pairs; raises BadRequest saying what is wrong."""
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"invalid JSON ({e})") from None
    if not isinstance(obj, dict) or "pairs" not in obj:
        raise BadRequest('expected a JSON object {"pairs": [["sentence1", "sentence2"], ...]}')
    pairs = obj["pairs"]
    if not isinstance(pairs, list):
        raise BadRequest(f"'pairs' must be a list of [sentence1, sentence2], found {type(pairs).__name__}")
    if not pairs:
        raise BadRequest("'pairs' is empty")
    if len(pairs) > max_pairs:
        raise BadRequest(f"too many pairs: {len(pairs)} (at most {max_pairs} per request)")
    out = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, list) or len(pair) != 2:
            raise BadRequest(f"pairs[{i}]: expected [sentence1, sentence2], found {json.dumps(pair)[:80]}")
        for k, text in enumerate(pair):
            if not isinstance(text, str):
                raise BadRequest(f"pairs[{i}][{k}]: expected a string, found {type(text).__name__}")
            if not text.strip():
                raise BadRequest(f"pairs[{i}][{k}]: empty sentence")
            if bad := lone_surrogate(text):
                raise BadRequest(f"pairs[{i}][{k}]: {bad}")
        out.append((pair[0], pair[1]))
    return out


def build_app(cfg: ServeConfig, scorer: PairScorer) -> Any:
    from aiohttp import web

    batcher = MicroBatcher(scorer, cfg.max_batch_size, cfg.max_wait_ms, cfg.max_queue)

    @web.middleware
    async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as e:  # 404, 405, 413 ... as JSON too
            if e.status < 400:
                raise
            return web.json_response({"error": e.reason if e.status != 413 else
                                      f"request body too large (at most {cfg.max_body_kb} KiB)"}, status=e.status)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model_dir": str(Path(cfg.model_dir).resolve()),
                                  "task": "regression" if scorer.regression else "classification",
                                  "labels": scorer.labels, "decision_threshold": scorer.threshold,
                                  "batches": batcher.batches, "pairs": batcher.pairs})

    async def predict(request: web.Request) -> web.Response:
        body = await request.read()  # too large: 413 from aiohttp, made JSON by json_errors
        try:
            pairs = parse_pairs(body, cfg.max_pairs)
            return web.json_response({"predictions": await batcher.score(pairs)}, dumps=_dumps)
        except BadRequest as e:
            return web.json_response({"error": str(e)}, status=400)
        except QueueFull:
            return web.json_response({"error": f"busy: {cfg.max_queue} requests are waiting; retry shortly"},
                                     status=503, headers={"Retry-After": "1"})
        except Exception as e:  # a scoring failure: this request fails, the server goes on
            return web.json_response({"error": f"scoring failed: {type(e).__name__}: {e}"}, status=500)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html", charset="utf-8")

    async def batcher_task(app: web.Application):
        task = asyncio.create_task(batcher.run())
        yield
        await batcher.queue.put(None)  # after the requests in flight (the server waited for them)
        await task
        batcher.executor.shutdown(wait=True)

    app = web.Application(middlewares=[json_errors], client_max_size=cfg.max_body_kb * 1024)
    app.router.add_get("/health", health)
    app.router.add_post("/predict", predict)
    app.router.add_get("/", page)
    app.cleanup_ctx.append(batcher_task)
    return app


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def _serve(cfg: ServeConfig, scorer: PairScorer) -> None:
    from aiohttp import web

    runner = web.AppRunner(build_app(cfg, scorer), access_log=None, shutdown_timeout=30.0)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise UserError(f"cannot listen on {cfg.host}:{cfg.port} ({e.strerror or e})") from None
    host, port = runner.addresses[0][:2]
    scope = "this machine only; --host 0.0.0.0 to listen on every interface" if host in ("127.0.0.1", "::1") \
        else "every interface: anyone who can reach this machine can use the model"
    threshold = f", decision threshold {scorer.threshold:.4f}" if scorer.threshold is not None else ""
    log.info(f"model {cfg.model_dir}: " + ("a score model (regression): answers {\"score\"}" if scorer.regression
                                           else f"labels {', '.join(scorer.labels)}{threshold}"))
    log.info(f"serving on http://{host}:{port}/ ({scope}); POST /predict, GET /health; Ctrl-C stops")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: answering the requests in flight, then exiting")
    await runner.cleanup()
    log.info("stopped")


def run_serve(cfg: ServeConfig) -> None:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UserError("afqmc serve needs the serve extra: pip install 'pairtrain[serve]'") from None
    scorer = PairScorer.from_dir(cfg.model_dir, backend=cfg.backend, int8=cfg.int8,
                                 threads=cfg.threads or torch.get_num_threads(), device=cfg.device,
                                 precision=cfg.precision, max_length=cfg.max_length, batch_size=cfg.batch_size)
    asyncio.run(_serve(cfg, scorer))
