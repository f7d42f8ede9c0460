"""The training API (impl/programs/training_api.py) as a real server on loopback: submit, poll, the budget reserved
and recomputed, every rule and hostile body refused naming the problem, a race for the last seconds, a timeout, and a
restart mid-run. Experiments are tiny models on the embedded prose corpus (a 300-token tokenizer, 16-token
sequences): seconds each on a CPU. Every wait has a deadline."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impl.programs import training_api_client
from impl.programs.training_api_client import APIError, TrainingAPI
from impl.programs.checkpoints import load_run_checkpoint
from impl.programs.config import TrainConfig, build_model
from impl.programs.training_api_config import (Limits, TrainingConfig, example_config, parameter_count,
                                                 rule_errors, train_settings)
from impl.programs.training_api_store import Store
from tests.harness.helpers import REPO
from tests.programs.prose_tokens import PROSE_VOCAB

SEQ_LEN, VOCAB = 16, PROSE_VOCAB
LIMITS = Limits(seq_len=SEQ_LEN, data_vocab_size=VOCAB)
TOKENS_PER_STEP = SEQ_LEN * 8  # example_config's train_batch_size


def config(**changes) -> dict:
    """A valid configuration (40 steps, 4 chunks of 10), with ``changes``: "a.b" keys reach nested fields."""
    result = json.loads(json.dumps(example_config(LIMITS)))
    for path, value in changes.items():
        *parents, name = path.split(".")
        target = result
        for parent in parents:
            target = target[parent]
        target[name] = value
    return result


class Server:
    """``training-api`` in its own process on a free loopback port."""

    def __init__(self, state: Path, data: Path, keys: dict[str, float], *flags: str):
        self.state = state
        self.argv = [sys.executable, "-m", "impl.programs.training_api", "--dir", str(state), "--data-dir", str(data),
                     "--port", "0", "--seq-len", str(SEQ_LEN), "--validation-tokens", "256", "--devices", "cpu",
                     *flags]
        self.keys = keys
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> Server:
        argv = list(self.argv)
        for key, budget in self.keys.items():
            argv += ["--key", f"{key}={budget}"]
        self.process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=open(self.state.parent /
                                        f"{self.state.name}.log", "ab"), env=os.environ | {"OMP_NUM_THREADS": "1"})
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().decode() if ready else ""
        assert line.startswith("training-api: serving http://"), f"no server within {timeout} s: {line!r}"
        self.url = line.split()[2]
        return self

    def api(self, key: str) -> TrainingAPI:
        return TrainingAPI(self.url, key, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Its exit code; uvicorn ends a graceful shutdown by raising the signal it caught again (-SIGTERM)."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture(scope="module")
def server(prose_tokens, tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("api") / "state", prose_tokens, {"k1": 43200, "k2": 100},
               "--max-parameters", "5000000").start()
    yield s
    assert s.stop() == -signal.SIGTERM, "the server did not stop cleanly on SIGTERM"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def status(api: TrainingAPI, experiment_id: int) -> dict:
    return api.experiment(experiment_id)["status"]


def test_submit_poll_complete_and_charge_the_runtime(server):
    api = server.api("k1")
    before = api.budget()
    submitted = api.submit(config())
    experiment_id = submitted["experiment_id"]
    # Reserved at once: the whole max_runtime_seconds.
    assert submitted["budget_summary"]["used_seconds"] == before["used_seconds"] + 60.0
    assert api.budget() == submitted["budget_summary"]
    done = api.wait(experiment_id, timeout=120, poll=0.2)
    s = done["status"]
    assert s["status_type"] == "completed", s
    assert len(s["val_losses"]) == 4 and all(math.isfinite(v) for v in s["val_losses"])
    assert s["val_losses"][-1] < s["val_losses"][0] < math.log(VOCAB) + 0.5  # it learned from about uniform
    assert 0 < s["used_runtime_seconds"] <= 60
    charged = min(max(s["used_runtime_seconds"], 1.0), 60.0)
    assert done["charged_seconds"] == charged
    assert api.budget()["used_seconds"] == before["used_seconds"] + charged  # the unused reservation came back
    assert [e["experiment_id"] for e in api.experiments()] == [experiment_id]
    assert TrainingConfig.model_validate(done["training_config"]) == TrainingConfig.model_validate(config())
    # The same configuration again, even with another time limit: 409, nothing reserved.
    for again in (config(), config(max_runtime_seconds=30.0)):
        with pytest.raises(APIError) as refused:
            api.submit(again)
        assert refused.value.status == 409 and f"experiment {experiment_id}" in str(refused.value)
    assert api.budget()["used_seconds"] == before["used_seconds"] + charged


# The model options of architecture_config that the kit's TransformerLM takes (GQA, head_dim, tied embeddings).
OPTIONS = {"architecture_config.num_key_value_heads": 2, "architecture_config.tie_word_embeddings": True}


@pytest.mark.parametrize("changes", [{}, {"architecture_config.num_key_value_heads": 1},
                                     {"architecture_config.num_key_value_heads": 2, "architecture_config.head_dim": 8,
                                      "architecture_config.hidden_size": 32},
                                     {"architecture_config.tie_word_embeddings": True}, OPTIONS],
                         ids=["mha", "mqa", "gqa-head-dim-8", "tied", "gqa-tied"])
def test_the_model_options_reach_the_model_and_its_parameter_count(changes):
    """num_key_value_heads, head_dim and tie_word_embeddings become the train program's model options: the model
    built from its settings has the attention shapes they give, and the parameters the size limit counts."""
    body = TrainingConfig.model_validate(config(**changes))
    arch = body.architecture_config
    model = build_model(TrainConfig(**train_settings(body, LIMITS, "", "", "") | {"device": "cpu"}))
    attention = model.layers[0].attn
    assert attention.q_proj.weight.shape == (arch.num_attention_heads * arch.head_dim, arch.hidden_size)
    assert attention.k_proj.weight.shape == (arch.num_key_value_heads * arch.head_dim, arch.hidden_size)
    assert (model.lm_head.weight is model.token_embeddings.weight) == arch.tie_word_embeddings
    assert parameter_count(arch) == sum(p.numel() for p in model.parameters())


# The handout's example body (A3 §3.2), as printed there.
HANDOUT_EXAMPLE = {
    "architecture_config": {
        "attention_bias": False, "head_dim": 64, "hidden_size": 448, "intermediate_size": 1280,
        "num_attention_heads": 7, "num_hidden_layers": 9, "num_key_value_heads": 7, "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000, "tie_word_embeddings": False, "dtype": "bfloat16", "vocab_size": 32_000,
    },
    "optimizer_config": {
        "lr_scheduler": {"peak_value": 3e-4, "final_lr_frac": 0.1, "warmup_frac": 0.05, "init_value": 0.0},
        "weight_decay": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "eps_root": 1e-8, "grad_clip_norm": 1.0,
    },
    "train_batch_size": 128, "val_batch_size": 32, "n_evals": 16, "total_train_tokens": 1_048_576,
    "max_runtime_seconds": 30.0, "model_seed": 0,
}


def test_the_handout_example_is_accepted_and_every_setting_reaches_the_trainer():
    """The handout's example body passes every rule of a server with the handout's limits, and becomes train
    settings that carry each of its values: rms_norm_eps, eps_root and init_value too, and the handout's fixed data
    order (sequential, whatever model_seed)."""
    body = TrainingConfig.model_validate(HANDOUT_EXAMPLE)
    assert rule_errors(body, Limits()) == []
    settings = train_settings(body, Limits(), "train.npy", "valid.npy", "out")
    assert {name: settings[name] for name in ("d_model", "num_layers", "num_heads", "head_dim", "num_kv_heads",
                                              "d_ff", "rope_theta", "norm_eps", "tie_embeddings", "context_length",
                                              "batch_size", "max_steps", "lr_max", "lr_min", "lr_init",
                                              "warmup_steps", "weight_decay", "beta1", "beta2", "eps", "eps_root",
                                              "grad_clip", "eval_interval", "eval_batches", "eval_batch_size", "seed",
                                              "precision", "data_order")} == {
        "d_model": 448, "num_layers": 9, "num_heads": 7, "head_dim": 64, "num_kv_heads": 7, "d_ff": 1280,
        "rope_theta": 1e6, "norm_eps": 1e-6, "tie_embeddings": False, "context_length": 512, "batch_size": 128,
        "max_steps": 16, "lr_max": 3e-4, "lr_min": pytest.approx(3e-5), "lr_init": 0.0, "warmup_steps": 1,
        "weight_decay": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "eps_root": 1e-8, "grad_clip": 1.0,
        "eval_interval": 1, "eval_batches": 16, "eval_batch_size": 32, "seed": 0, "precision": "bf16",
        "data_order": "sequential"}
    other_seed = train_settings(TrainingConfig.model_validate(HANDOUT_EXAMPLE | {"model_seed": 7}), Limits(),
                                "train.npy", "valid.npy", "out")
    assert other_seed["data_order"] == "sequential" and other_seed["seed"] == 7


# (what is wrong, the body's changes, a piece of the error): each is a 422 naming the field.
RULES = [
    ("hidden_size != heads * head_dim", {"architecture_config.hidden_size": 60}, "architecture_config.hidden_size"),
    ("kv heads not dividing the heads", {"architecture_config.num_key_value_heads": 3},
     "3 must divide num_attention_heads=4"),
    ("tokens not a whole number of batches", {"total_train_tokens": 40 * TOKENS_PER_STEP + 1}, "total_train_tokens"),
    ("n_evals not dividing the steps", {"n_evals": 7}, "n_evals: 7 must divide the number of steps"),
    ("a dtype other than float32 / bfloat16", {"architecture_config.dtype": "float16"}, "dtype"),
    ("max_runtime_seconds below 1 s", {"max_runtime_seconds": 0.5}, "max_runtime_seconds"),
    ("max_runtime_seconds above 12 h", {"max_runtime_seconds": 43201}, "max_runtime_seconds"),
    ("a vocabulary smaller than the data's", {"architecture_config.vocab_size": 100}, "vocab_size: 100 is smaller"),
    ("an odd head dimension", {"architecture_config.hidden_size": 60, "architecture_config.head_dim": 15},
     "head_dim: 15 must be even"),
    ("a model over the server's size limit", {"architecture_config.num_hidden_layers": 200},
     "more than this server's limit"),
    ("attention bias (not in the model)", {"architecture_config.attention_bias": True}, "attention_bias"),
    ("a warm-up from above the peak", {"optimizer_config.lr_scheduler.init_value": 1.0},
     "init_value: 1 must be at most peak_value"),
    ("more tokens than the training split", {"total_train_tokens": 2**27},
     "is more than this server's training split holds"),
    ("validation batches beyond the validation split", {"val_batch_size": 65536},
     "val_batch_size: 65536: the 256 validation tokens are read in whole batches"),
    ("a string for an integer", {"train_batch_size": "8"}, "train_batch_size: Input should be a valid integer"),
    ("true for an integer", {"n_evals": True}, "n_evals: Input should be a valid integer"),
    ("a fraction for an integer", {"train_batch_size": 8.5}, "train_batch_size"),
    ("null for a number", {"optimizer_config.beta1": None}, "optimizer_config.beta1"),
    ("a huge integer", {"total_train_tokens": 10**30}, "total_train_tokens: Input should be less than or equal"),
    ("an integer beyond 64 bits", {"model_seed": 10**400}, "model_seed"),
    ("a huge float", {"max_runtime_seconds": 1e308}, "max_runtime_seconds"),
    ("a negative learning rate", {"optimizer_config.lr_scheduler.peak_value": -3e-4}, "peak_value"),
    ("a misspelt key", {"architecture_config.hiden_size": 64}, "hiden_size: Extra inputs are not permitted"),
    ("an object for a number", {"n_evals": {"$gt": 0}}, "n_evals"),
]


@pytest.mark.parametrize("changes, says", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_a_broken_rule_is_a_422_naming_the_field(server, changes, says):
    with pytest.raises(APIError) as refused:
        server.api("k2").submit(config(**changes))
    assert refused.value.status == 422 and says in str(refused.value), str(refused.value)


def test_a_missing_field_is_a_422_naming_it(server):
    body = config()
    del body["model_seed"]
    with pytest.raises(APIError, match="422: model_seed: Field required"):
        server.api("k2").submit(body)


def raw(server: Server, method: str, path: str, body: bytes | None = None, key: str | None = "k2") -> tuple[int, str]:
    """(status, body) of a request as sent, for what the client library would never send."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json",
                                                              **({"X-API-Key": key} if key is not None else {})})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


VALID = json.dumps(config(model_seed=99)).encode()
HOSTILE = [
    ("not JSON", b"{architecture_config: 1", 422),
    ("an empty body", b"", 422),
    ("a JSON array", b"[1, 2, 3]", 422),
    ("a JSON string", b'"submit"', 422),
    ("NaN", VALID.replace(b'"max_runtime_seconds": 60.0', b'"max_runtime_seconds": NaN'), 422),
    ("Infinity", VALID.replace(b'"max_runtime_seconds": 60.0', b'"max_runtime_seconds": Infinity'), 422),
    ("nested 100,000 deep", b"[" * 60_000 + b"]" * 60_000, 413),
    ("nested 10,000 deep, under the size limit", b"[" * 10_000 + b"]" * 10_000, 400),
    ("a 2 MB body", b'{"pad": "' + b"x" * 2_000_000 + b'"}', 413),
    ("invalid UTF-8", b'{"model_seed": "\xff\xfe"}', 400),
]


@pytest.mark.parametrize("body, code", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_body_is_refused_without_a_server_error(server, body, code):
    got, text = raw(server, "POST", "/submit", body)
    assert got == code, text[:300]


@pytest.mark.parametrize("key, says", [(None, "missing X-API-Key header"), ("k3", "unknown API key"),
                                       ("", "unknown API key")])
@pytest.mark.parametrize("method, path, body", [("GET", "/budget", None), ("POST", "/submit", VALID),
                                                ("POST", "/submit", b"not json"), ("GET", "/experiments", None),
                                                ("GET", "/experiment/1", None), ("GET", "/final_submission", None)])
def test_a_missing_or_wrong_api_key_is_a_401_before_anything_else(server, key, says, method, path, body):
    got, text = raw(server, method, path, body, key=key)
    assert (got, json.loads(text)["detail"]) == (401, says)


@pytest.mark.parametrize("path, code", [("/experiment/1", 404), ("/experiment/0", 422),
                                        ("/experiment/" + "9" * 30, 422), ("/experiment/abc", 422),
                                        ("/experiment/-1", 422)])
def test_another_keys_experiment_or_a_bad_id_is_not_shown(server, path, code):
    """k2 never submitted anything valid: experiment 1, if it exists, is k1's."""
    got, _ = raw(server, "GET", path, key="k2")
    assert got == code


def test_refusals_reserve_nothing(server):
    """After every refused request above (this module's tests run in order), k2 has no experiment and a full budget."""
    api = server.api("k2")
    assert api.experiments() == []
    assert api.budget() == {"used_seconds": 0, "remaining_seconds": 100.0, "total_budget_seconds": 100.0}


def test_final_submission_keeps_the_latest(server):
    api = server.api("k2")
    assert api.final_submission() is None
    api.final_submission(config(), 3.5)
    latest = api.final_submission(config(model_seed=1), 3.25)
    assert api.final_submission() == latest and latest["predicted_final_loss"] == 3.25
    assert latest["training_config"]["model_seed"] == 1
    with pytest.raises(APIError, match="422: predicted_final_loss"):
        api.final_submission(config(), -1.0)


def test_the_client_program(server, tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps(config(model_seed=5, n_evals=2)))
    base = ["--url", server.url, "--api-key", "k2"]
    assert training_api_client.main([*base, "submit", str(tmp_path / "c.json"), "--wait", "120"]) == 0
    finished = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert finished["status"]["status_type"] == "completed" and len(finished["status"]["val_losses"]) == 2
    assert training_api_client.main([*base, "budget"]) == 0
    assert json.loads(capsys.readouterr().out)["used_seconds"] == finished["charged_seconds"]
    assert training_api_client.main(["--url", server.url, "--api-key", "nope", "budget"]) == 1
    assert capsys.readouterr().err == "training-api-client: error: 401: unknown API key\n"
    assert training_api_client.main([*base, "submit", str(tmp_path / "c.json")]) == 1
    assert "409: this configuration is experiment" in capsys.readouterr().err
    assert training_api_client.main(["example"]) == 0  # the printed example is a valid configuration
    TrainingConfig.model_validate(json.loads(capsys.readouterr().out))


def test_a_race_for_the_last_seconds_never_overspends_and_a_timeout_is_charged_in_full(prose_tokens, tmp_path):
    """A long experiment of another key keeps the one device busy, so the racing submissions stay queued (none
    finishes and returns seconds during the race): of 8 racing for 10 s at 3 s each, exactly 3 are accepted."""
    server = Server(tmp_path / "state", prose_tokens, {"race": 10, "long": 100}).start()
    try:
        # 4000 steps in chunks of 40 cannot finish in 4 s: the trainer stops itself at its 4 s.
        long = server.api("long").submit(config(total_train_tokens=4000 * TOKENS_PER_STEP, n_evals=100,
                                                max_runtime_seconds=4.0))["experiment_id"]
        wait_for(lambda: status(server.api("long"), long)["status_type"] == "running", 60, "the long run starting")
        api = server.api("race")

        def submit(seed: int) -> int:
            try:
                api.submit(config(model_seed=seed, max_runtime_seconds=3.0))
                return 200
            except APIError as error:
                assert error.status == 400 and "exceeds the remaining budget" in str(error), str(error)
                return 400

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(submit, range(8)))
        assert sorted(codes) == [200] * 3 + [400] * 5
        assert api.budget() == {"used_seconds": 9.0, "remaining_seconds": 1.0, "total_budget_seconds": 10.0}
        api.submit(config(model_seed=100, max_runtime_seconds=1.0))  # the last second
        with pytest.raises(APIError, match="400: max_runtime_seconds=1 exceeds the remaining budget of 0 s"):
            api.submit(config(model_seed=101, max_runtime_seconds=1.0))
        assert all(e["status"]["status_type"] == "queued" for e in api.experiments())  # none ran during the race
        # The long run: failed as a timeout, its chunks so far kept, charged its whole 4 s.
        done = server.api("long").wait(long, timeout=120, poll=0.2)
        assert done["status"]["status_type"] == "failed" and done["status"]["failure"] == "timeout", done
        assert 1 <= len(done["status"]["partial_val_losses"]) < 100
        assert done["charged_seconds"] == 4.0 and server.api("long").budget()["used_seconds"] == 4.0
    finally:
        server.stop()


def train_processes(experiment_dir: Path) -> list[int]:
    """Processes whose command line names the experiment's directory (the train program running it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(experiment_dir).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:  # ended while we looked
            pass
    return found


def test_a_server_killed_mid_run_resumes_the_experiment_and_keeps_the_budget_exact(prose_tokens, tmp_path):
    server = Server(tmp_path / "state", prose_tokens, {"k": 1000}).start()
    api = server.api("k")
    # 400 steps in 4 chunks: a few seconds of training, killed after its first chunk. With the model options, so
    # that the resumed run must rebuild the same model from its checkpoint (GQA's smaller k/v, one tied matrix).
    experiment_id = api.submit(config(total_train_tokens=400 * TOKENS_PER_STEP, max_runtime_seconds=120.0,
                                      **OPTIONS))["experiment_id"]
    wait_for(lambda: status(api, experiment_id).get("val_losses"), 120, "a first chunk")
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    experiment_dir = tmp_path / "state" / "experiments" / str(experiment_id)
    wait_for(lambda: not train_processes(experiment_dir), 30, "the experiment's process ending with its server")
    # While no server runs, the state file still holds the reservation.
    assert Store(tmp_path / "state" / "state.sqlite").budget("k")["used_seconds"] == 120.0
    server = Server(tmp_path / "state", prose_tokens, {}).start()  # the key and its budget come from the state file
    try:
        api = server.api("k")
        done = api.wait(experiment_id, timeout=180, poll=0.2)
        assert done["status"]["status_type"] == "completed", done
        assert done["attempts"] == 2 and len(done["status"]["val_losses"]) == 4
        charged = min(max(done["status"]["used_runtime_seconds"], 1.0), 120.0)
        assert done["charged_seconds"] == charged and api.budget()["used_seconds"] == charged
        steps = [json.loads(line)["step"] for line in (experiment_dir / "metrics.jsonl").read_text().splitlines()]
        assert steps == [100, 200, 300, 400]  # one run, resumed from its checkpoint: no chunk twice, none lost
        saved = load_run_checkpoint(experiment_dir / "checkpoint.pt")
        assert (saved["config"]["num_kv_heads"], saved["config"]["tie_embeddings"]) == (2, True)
        assert saved["model"]["layers.0.attn.k_proj.weight"].shape == (2 * 16, 64)
    finally:
        server.stop()
