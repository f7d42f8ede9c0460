"""The ``training-api`` program: the A3 training API (handout §3.2) as a local HTTP service, on FastAPI and uvicorn.

    training-api --key 06123456                        # http://127.0.0.1:8000, a 12-hour budget, experiments on CPU
    training-api --key k1 --key k2 --budget-seconds 3600 --devices cuda:0,cuda:1 --dir runs/api --port 8001

Endpoints (every request carries ``X-API-Key``; a missing or unknown key is 401):

    GET  /budget                  used_seconds, remaining_seconds, total_budget_seconds
    POST /submit                  a training configuration -> experiment_id, budget_summary (422: a field or rule
                                  broken, naming it; 409: the same configuration again, nothing reserved; 400: more
                                  than the remaining budget; 413: a body over 64 KiB)
    GET  /experiments             every experiment of the key
    GET  /experiment/{id}         one (404 if it is not the key's): status queued, running (val_losses so far),
                                  completed (val_losses, used_runtime_seconds) or failed (failure, partial_val_losses)
    POST /final_submission        training_config and predicted_final_loss; the latest replaces the previous
    GET  /final_submission        the latest, or null

The rules and how a configuration becomes a ``train`` run: impl/programs/training_api_config.py; the budget and
state (SQLite, ``<dir>/state.sqlite``): training_api_store.py; the worker: training_api_runner.py. The data are the
kit's embedded prose corpus, tokenized as the ``train`` program reads it (``train-bpe`` then ``tokenize``, into
``<dir>/data`` on the first start). Stopping the server (Ctrl-C, SIGTERM) ends the running experiments; the next start
on the same ``--dir`` resumes them from their last chunk, with every budget as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import math
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from impl.programs.cli import ArgumentParser, UserError, positive_int, run
from impl.programs.training_api_config import (FinalSubmission, Limits, TrainingConfig, canonical, duplicate_key,
                                              rule_errors)

BODY_LIMIT = 64 * 1024  # a configuration is under 1 KiB
DRAIN_LIMIT = 64 * BODY_LIMIT  # a larger body is read (and dropped) up to here, so that the client sees the 413
HANDOUT_BUDGET_SECONDS = 12 * 3600.0


PUBLIC = ("/docs", "/redoc", "/openapi.json")  # the API's documentation pages, as the handout's server shows them


class Gate:
    """ASGI middleware in front of every endpoint: a missing or unknown ``X-API-Key`` is a 401 before the app sees
    the request (FastAPI would parse the body first, and tell a stranger what is wrong with it), and a body over
    ``BODY_LIMIT`` is a 413 before the app parses any of it. The body is read first either way (up to
    ``DRAIN_LIMIT``): a connection closed on unread bytes is reset, and the client would see no answer at all."""

    def __init__(self, app, store):
        self.app, self.store = app, store

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC:
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more and size <= DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            if size <= BODY_LIMIT:
                chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        keys = [value for name, value in scope["headers"] if name.lower() == b"x-api-key"]
        if not keys:
            return await respond(send, 401, "missing X-API-Key header")
        if len(keys) > 1 or not await asyncio.to_thread(self.store.has_key, keys[0].decode("latin-1")):
            return await respond(send, 401, "unknown API key")
        if size > BODY_LIMIT:
            return await respond(send, 413, f"the request body is over {BODY_LIMIT} bytes")
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def respond(send, status: int, detail: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": json.dumps({"detail": detail}).encode()})


def create_app(store, limits: Limits, runner=None):
    """The API on ``store`` (training_api_store.Store); ``runner`` (training_api_runner.Runner) runs while it serves."""
    from fastapi import Depends, FastAPI, Header, HTTPException, Path as PathParam
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from impl.programs.training_api_store import Duplicate, OverBudget

    @asynccontextmanager
    async def lifespan(app):
        if runner is not None:
            runner.start()
        yield
        if runner is not None:
            await asyncio.to_thread(runner.stop)

    app = FastAPI(title="CS336 A3 training API (the kit's local one)", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each wrong input back: a NaN cannot be written as JSON (a 500 instead of the
        # 422), and a hostile body would be sent back whole. The field and the reason are enough.
        detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    # Plain functions, not coroutines: FastAPI runs them in its thread pool, so concurrent submissions really race
    # (and SQLite's write lock orders them: training_api_store.py).
    def api_key(x_api_key: str = Header(alias="X-API-Key")) -> str:
        return x_api_key  # a known key: Gate checked it

    @app.get("/budget")
    def budget(key: str = Depends(api_key)) -> dict:
        return store.budget(key)

    @app.post("/submit")
    def submit(config: TrainingConfig, key: str = Depends(api_key)) -> dict:
        errors = rule_errors(config, limits)
        if errors:
            raise HTTPException(422, [{"type": "rule", "loc": ["body", *loc], "msg": msg} for loc, msg in errors])
        try:
            experiment_id, summary = store.submit(key, canonical(config), duplicate_key(config),
                                                  config.max_runtime_seconds)
        except Duplicate as error:
            raise HTTPException(409, str(error)) from None
        except OverBudget as error:
            raise HTTPException(400, str(error)) from None
        return {"experiment_id": experiment_id, "budget_summary": summary}

    @app.get("/experiments")
    def experiments(key: str = Depends(api_key)) -> list:
        return store.experiments(key)

    @app.get("/experiment/{experiment_id}")
    def experiment(experiment_id: int = PathParam(ge=1, le=2**63 - 1), key: str = Depends(api_key)) -> dict:
        found = store.experiments(key, experiment_id)
        if not found:
            raise HTTPException(404, f"no experiment {experiment_id} for this API key")
        return found[0]

    @app.post("/final_submission")
    def final_submission(submission: FinalSubmission, key: str = Depends(api_key)) -> dict:
        return store.set_final_submission(key, canonical(submission.training_config),
                                          submission.predicted_final_loss)

    @app.get("/final_submission")
    def get_final_submission(key: str = Depends(api_key)) -> dict | None:
        return store.final_submission(key)

    return Gate(app, store)


def key_and_budget(text: str) -> tuple[str, float | None]:
    """KEY, or KEY=SECONDS for a budget of its own."""
    key, _, seconds = text.partition("=")
    if not key or len(key) > 128 or not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise argparse.ArgumentTypeError(f"the key must be 1-128 printable ASCII characters without spaces or '=', "
                                         f"got {key!r}")
    return key, budget_seconds(seconds) if seconds else None


def budget_seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def build_parser() -> ArgumentParser:
    parser = ArgumentParser("training-api", "Serve the A3 training API locally: experiments run with the kit's "
                                            "train program on the embedded prose corpus.")
    parser.add_argument("--dir", type=Path, default=Path("runs/training-api"),
                        help="state.sqlite, data/ and experiments/: a restart on the same --dir loses nothing")
    parser.add_argument("--key", type=key_and_budget, action="append", default=[],
                        help="an API key to serve, or KEY=SECONDS with a budget of its own (repeatable); the keys of "
                             "earlier starts are kept")
    parser.add_argument("--budget-seconds", type=budget_seconds, default=HANDOUT_BUDGET_SECONDS,
                        help="the total budget of each --key without one (the handout's 12 hours)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free one, printed)")
    parser.add_argument("--devices", default="auto",
                        help="comma-separated devices, one experiment at a time on each (cpu,cpu: two on the CPU; "
                             "auto: cuda when available, else cpu)")
    parser.add_argument("--data-dir", type=Path, help="train.npy and valid.npy as `tokenize` writes them (default: "
                                                      "<dir>/data, made from the embedded corpus if absent)")
    parser.add_argument("--vocab-size", type=positive_int, default=10_000,
                        help="the tokenizer trained when the data are made")
    parser.add_argument("--seq-len", type=positive_int, default=512, help="tokens per sequence (the handout's 512)")
    parser.add_argument("--validation-tokens", type=positive_int, default=1 << 18,
                        help="tokens of each validation loss (the handout's 2^18)")
    parser.add_argument("--max-parameters", type=positive_int, default=2_000_000_000,
                        help="largest model accepted (parameters)")
    parser.add_argument("--startup-grace", type=budget_seconds, default=300.0,
                        help="seconds an experiment's process may take beyond max_runtime_seconds (start-up) before "
                             "it is killed as timed out")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, serve)


def serve(args: argparse.Namespace) -> int:
    from impl.programs.config import ConfigError, resolve_device

    if not 0 <= args.port < 65536:
        raise UserError(f"--port {args.port} is not a port number (0-65535)")
    if args.seq_len < 2:
        raise UserError(f"--seq-len {args.seq_len} must be >= 2 (a sequence and its next token)")
    try:
        devices = tuple(resolve_device(d.strip()) for d in args.devices.split(","))
    except ConfigError as error:
        raise UserError(f"--devices {args.devices}: {error}") from None
    if args.dir.exists() and not args.dir.is_dir():
        raise UserError(f"--dir {args.dir} exists and is not a directory")
    args.dir.mkdir(parents=True, exist_ok=True)
    lock = open(args.dir / "server.lock", "w")  # held for the process's life: one server per state file
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"another training-api serves --dir {args.dir}") from None

    from impl.programs.training_api_runner import Runner, RunnerSettings
    from impl.programs.training_api_store import Store

    store = Store(args.dir / "state.sqlite")
    for key, seconds in args.key:
        store.set_key(key, args.budget_seconds if seconds is None else seconds)
    if store.key_count() == 0:
        raise UserError(f"no API key: give --key (the state in {args.dir} has none)")
    listener = socket.create_server((args.host, args.port))  # now, so that a port in use fails before any work
    data_dir = args.data_dir or args.dir / "data"
    vocab_size, train_tokens, valid_tokens = prepare_data(data_dir, args.vocab_size, made_here=args.data_dir is None)
    if min(train_tokens, valid_tokens) <= args.seq_len:
        raise UserError(f"--data-dir {data_dir} holds a split of {min(train_tokens, valid_tokens)} tokens, too few "
                        f"for --seq-len {args.seq_len}")
    if valid_tokens <= args.validation_tokens:
        raise UserError(f"--validation-tokens {args.validation_tokens}: the validation split of --data-dir {data_dir} "
                        f"holds {valid_tokens} tokens (it needs one more than it evaluates)")
    limits = Limits(args.seq_len, args.validation_tokens, vocab_size, args.max_parameters, train_tokens, valid_tokens)
    runner = Runner(store, RunnerSettings(devices, args.dir / "experiments", data_dir / "train.npy",
                                          data_dir / "valid.npy", limits, args.startup_grace))
    host, port = listener.getsockname()[:2]
    print(f"training-api: serving http://{host}:{port} (devices {','.join(devices)}; seq_len {limits.seq_len}, "
          f"vocabulary {vocab_size}; state {args.dir / 'state.sqlite'})", flush=True)

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(store, limits, runner), log_level="warning",
                                           timeout_graceful_shutdown=5))
    server.run(sockets=[listener])
    return 0


def prepare_data(data_dir: Path, vocab_size: int, made_here: bool) -> tuple[int, int, int]:
    """The data's vocabulary size and the lengths of its train and valid splits; with ``made_here``, the tokenizer
    and the token arrays are made first if absent."""
    from impl.programs import tokenizer

    arrays = {split: data_dir / f"{split}.npy" for split in ("train", "valid")}
    if made_here and not all(path.exists() for path in arrays.values()):
        print(f"training-api: tokenizing the embedded prose corpus into {data_dir} (once)", flush=True)
        steps = [(tokenizer.train_main, ["--vocab-size", str(vocab_size), "--out", str(data_dir / "tokenizer")])]
        steps += [(tokenizer.tokenize_main, ["--tokenizer", str(data_dir / "tokenizer"), "--split", split,
                                             "--out", str(path)]) for split, path in arrays.items()]
        for program, program_args in steps:
            if program(program_args) != 0:
                raise UserError(f"making the data in {data_dir} failed (the error is above)")
    try:
        sidecars = [json.loads(path.with_suffix(".json").read_text()) for path in arrays.values()]
        return int(sidecars[0]["vocab_size"]), int(sidecars[0]["num_tokens"]), int(sidecars[1]["num_tokens"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--data-dir {data_dir}: no train.npy and valid.npy with their .json as `tokenize` writes "
                        f"them") from None

if __name__ == "__main__":
    sys.exit(main())
