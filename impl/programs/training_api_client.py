"""The training API's client: a library (``TrainingAPI``) and the ``training-api-client`` program, for the kit's local
server (impl/programs/training_api.py) or any server with the handout's endpoints (A3 §3.2). Standard library only.

    export TRAINING_API_URL=http://127.0.0.1:8000 TRAINING_API_KEY=06123456
    training-api-client budget
    training-api-client example > config.json            # a configuration the local server accepts
    training-api-client submit config.json --wait        # queue it, then poll until it ends; prints its losses
    training-api-client status 3
    training-api-client list

    api = TrainingAPI("http://127.0.0.1:8000", "06123456")
    experiment_id = api.submit(config)["experiment_id"]
    losses = api.wait(experiment_id, timeout=600)["status"]["val_losses"]

A refusal is an ``APIError`` with the HTTP status and the server's reason in one line (each field a 422 names).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from impl.programs.cli import ArgumentParser, UserError, run

FINISHED = ("completed", "failed")


class APIError(UserError):
    """The server refused a request (``status``: its HTTP status) or could not be reached (``status`` None)."""

    def __init__(self, status: int | None, message: str):
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status


def reason(detail) -> str:
    """FastAPI's error detail as one line: a 422's list as "field.path: message; ..."."""
    if isinstance(detail, list):
        parts = []
        for error in detail:
            loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            message = str(error.get("msg", error))
            parts.append(message if message.startswith(loc) or not loc else f"{loc}: {message}")
        return "; ".join(parts)
    return str(detail)


class TrainingAPI:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0):
        self.base_url, self.api_key, self.timeout = base_url.rstrip("/"), api_key, timeout

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method,
                                         headers={"X-API-Key": self.api_key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read()).get("detail", error.reason)
            except (ValueError, AttributeError):
                detail = error.reason
            raise APIError(error.code, reason(detail)) from None
        except (urllib.error.URLError, OSError) as error:  # refused, unreachable, timed out
            raise APIError(None, f"cannot reach {self.base_url}: {getattr(error, 'reason', error)}") from None

    def budget(self) -> dict:
        return self.request("GET", "/budget")

    def submit(self, config: dict) -> dict:
        return self.request("POST", "/submit", config)

    def experiments(self) -> list[dict]:
        return self.request("GET", "/experiments")

    def experiment(self, experiment_id: int) -> dict:
        return self.request("GET", f"/experiment/{experiment_id}")

    def final_submission(self, training_config: dict | None = None, predicted_final_loss: float | None = None):
        """With arguments, submit them (replacing any earlier one); without, the current one (or None)."""
        if training_config is None:
            return self.request("GET", "/final_submission")
        return self.request("POST", "/final_submission", {"training_config": training_config,
                                                          "predicted_final_loss": predicted_final_loss})

    def wait(self, experiment_id: int, timeout: float, poll: float = 1.0, on_poll=None) -> dict:
        """Poll until the experiment is completed or failed; a TimeoutError after ``timeout`` seconds.
        ``on_poll(experiment)`` sees each answer (the CLI's progress bar)."""
        deadline = time.monotonic() + timeout
        while True:
            experiment = self.experiment(experiment_id)
            if on_poll is not None:
                on_poll(experiment)
            if experiment["status"]["status_type"] in FINISHED:
                return experiment
            if time.monotonic() + poll > deadline:
                raise TimeoutError(f"experiment {experiment_id} is still {experiment['status']['status_type']} "
                                   f"after {timeout:g} s")
            time.sleep(poll)


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def described(text: str) -> dict:
    return {"description": text, "help": text}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser("training-api-client", "Query the A3 training API (the kit's local server or the "
                                                   "course's).")
    parser.add_argument("--url", default=os.environ.get("TRAINING_API_URL", "http://127.0.0.1:8000"),
                        help="the server (default: $TRAINING_API_URL)")
    parser.add_argument("--api-key", default=os.environ.get("TRAINING_API_KEY"),
                        help="your key (default: $TRAINING_API_KEY, which keeps it out of the process list)")
    parser.add_argument("--timeout", type=positive_seconds, default=30.0, help="seconds for each request")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("budget", **described("used, remaining and total seconds"))
    commands.add_parser("list", **described("every experiment of the key"))
    commands.add_parser("example", **described("print a configuration the local server accepts (to edit)"))
    submit = commands.add_parser("submit", **described("queue the configuration in a JSON file ('-': stdin)"))
    submit.add_argument("config", help="JSON file of the training configuration")
    submit.add_argument("--wait", type=positive_seconds, metavar="SECONDS", help="then poll until it ends, this long")
    status = commands.add_parser("status", **described("one experiment"))
    status.add_argument("experiment_id", type=int)
    wait = commands.add_parser("wait", **described("poll an experiment until it ends"))
    wait.add_argument("experiment_id", type=int)
    wait.add_argument("--timeout", dest="wait_timeout", type=positive_seconds, default=3600.0,
                      help="give up after this many seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, client)


def read_config(path: str) -> dict:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        config = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not a JSON training configuration: {error}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} must hold a JSON object (the training configuration)")
    return config


def client(args: argparse.Namespace) -> int:
    if args.command == "example":
        from impl.programs.training_api_config import Limits, example_config

        print(json.dumps(example_config(Limits(data_vocab_size=10_000)), indent=2))
        return 0
    config = read_config(args.config) if args.command == "submit" else None  # a bad file before any request
    if not args.api_key:
        raise UserError("no API key: pass --api-key or set TRAINING_API_KEY")
    api = TrainingAPI(args.url, args.api_key, args.timeout)
    if args.command == "budget":
        result = api.budget()
    elif args.command == "list":
        result = api.experiments()
    elif args.command == "status":
        result = api.experiment(args.experiment_id)
    elif args.command == "wait":
        result = wait(api, args.experiment_id, args.wait_timeout)
    else:
        result = api.submit(config)
        if args.wait is not None:
            print(json.dumps(result), flush=True)
            result = wait(api, result["experiment_id"], args.wait)
    print(json.dumps(result, indent=2))
    return 0


def wait(api: TrainingAPI, experiment_id: int, timeout: float) -> dict:
    """api.wait with a progress bar (on stderr) of the chunks evaluated so far and the experiment's status."""
    from tqdm import tqdm

    with tqdm(desc=f"experiment {experiment_id}", unit="chunk", dynamic_ncols=True, leave=False) as bar:
        def show(experiment: dict) -> None:
            status = experiment["status"]
            chunks = len(status.get("val_losses") or status.get("partial_val_losses") or [])
            bar.update(chunks - bar.n)
            bar.set_postfix_str(status["status_type"])

        try:
            return api.wait(experiment_id, timeout, on_poll=show)
        except TimeoutError as error:
            raise UserError(str(error)) from None


if __name__ == "__main__":
    sys.exit(main())
