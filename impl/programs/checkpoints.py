"""The programs' checkpoints as ``--resume`` and the readers of a run read them: a file that is not one — missing,
truncated, corrupt, written by something else, or holding objects other than tensors (refused unread:
``torch.load(weights_only=True)``) — is a one-line ``UserError`` naming it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from impl.programs.cli import UserError, gist
from impl.programs.config import TrainConfig

ENTRIES = ("model", "optimizer", "iteration", "config", "settings", "tokenizer_sha256", "sampler_state", "elapsed_s")
# The sft and grpo programs' (impl/programs/alignment_run.py): "base" rebuilds the model the weights belong to.
POLICY_ENTRIES = ("program", "base", "model", "optimizer", "iteration", "config", "rng", "elapsed_s")


def read_program_checkpoint(path: Path, written_by: str) -> dict:
    import pickle

    from impl.train import read_checkpoint  # torch: only once a checkpoint is read

    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        return read_checkpoint(path)
    except (RuntimeError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as error:
        raise UserError(f"{path} is not a checkpoint of the {written_by} (truncated, corrupt, or holding objects "
                        f"other than tensors, which are refused unread): {gist(error)}") from None


def load_run_checkpoint(path: Path) -> dict:
    checkpoint = read_program_checkpoint(path, "train program")
    missing = [entry for entry in ENTRIES if entry not in checkpoint]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    if missing or not all(isinstance(checkpoint[entry], dict) and set(checkpoint[entry]) == fields
                          for entry in ("config", "settings")):
        raise UserError(f"{path} was not written by this version of the train program "
                        f"({'missing ' + ', '.join(missing) if missing else 'other config fields'})")
    return checkpoint


def load_policy_checkpoint(path: Path) -> dict:
    checkpoint = read_program_checkpoint(path, "sft, grpo or dpo program")
    missing = [entry for entry in POLICY_ENTRIES if entry not in checkpoint]
    if missing:
        raise UserError(f"{path} was not written by this version of the sft, grpo or dpo program (missing "
                        f"{', '.join(missing)})")
    return checkpoint
