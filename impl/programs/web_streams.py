"""The token streams of ``web-data-run`` and what it measures on them: the unfiltered crawl's tokens, what each
stream is made of (by the crawl's record kinds), the held-out loss of a checkpoint, and the comparison plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from impl.programs.files import atomic_write, atomic_write_text
from impl.programs.web_crawl import KINDS

CLEAN_KINDS = ("clean", "clean_copy", "clean_near")  # the prose chapters' text, once or more
_encoder = None


def _init(tokenizer_dir: Path) -> None:
    global _encoder
    from impl.programs.web_stages import encoder

    _encoder = encoder(str(tokenizer_dir))


def _file_tokens(path: Path) -> tuple[np.ndarray, list[tuple[str, int]], int]:
    """Every document of a WARC file with text, as filter-web-data extracts it, nothing dropped: the ids (each
    document ended by <|endoftext|>), (url, tokens) per document, and the records that gave no text."""
    from impl.programs.web_records import Outcome, read_documents

    arrays, docs, no_text = [], [], 0
    for item in read_documents(path, max_replacement_fraction=1.0):  # 1.0: any text the extraction gives
        if not isinstance(item, Outcome):
            continue
        if item.text is None:
            no_text += 1
            continue
        ids = np.array([*_encoder.tokenizer.encode(item.text), _encoder.eot], dtype=np.uint16)
        arrays.append(ids)
        docs.append((item.url, len(ids)))
    return (np.concatenate(arrays) if arrays else np.zeros(0, np.uint16)), docs, no_text


def make_up(docs: list[tuple[str, int]], kinds: dict[str, str]) -> dict:
    """Documents and tokens by kind, and each kind's share of the tokens ("clean_all": the clean pages' text)."""
    by_kind = {kind: {"documents": 0, "tokens": 0} for kind in KINDS}
    for url, n in docs:
        by_kind[kinds[url]]["documents"] += 1
        by_kind[kinds[url]]["tokens"] += n
    total = sum(n for _, n in docs)
    share = {kind: by_kind[kind]["tokens"] / total for kind in KINDS}
    share["clean_all"] = sum(share[kind] for kind in CLEAN_KINDS)
    return {"documents": len(docs), "tokens": total, "by_kind": by_kind, "share": share}


def write_unfiltered(files: list[Path], kinds: dict[str, str], tokenizer_dir: Path, out: Path, workers: int) -> dict:
    """``out/tokens.npy`` + ``tokens.json`` (as `tokenize` writes them) from every record's text; its make-up."""
    from impl.programs.tokenizer import load_tokenizer, npy_header, token_sidecar
    from impl.tokenizer.training import worker_context

    out.mkdir(parents=True, exist_ok=True)
    docs, no_text, n_tokens = [], 0, 0
    with worker_context().Pool(workers, _init, (tokenizer_dir,)) as pool, atomic_write(out / "tokens.npy") as file, \
            tqdm(total=len(files), desc="unfiltered", unit="file") as bar:
        file.write(npy_header(0))  # the count is known at the end; the header's length does not depend on it
        for ids, file_docs, file_no_text in pool.imap(_file_tokens, files):  # imap: the files' order
            file.write(ids.astype("<u2").tobytes())
            n_tokens += len(ids)
            docs += file_docs
            no_text += file_no_text
            bar.update(1)
        file.seek(0)
        file.write(npy_header(n_tokens))
    atomic_write_text(out / "tokens.json", token_sidecar(n_tokens, load_tokenizer(tokenizer_dir), tokenizer_dir,
                                                         "crawl/ (every record's extracted text)",
                                                         sum(p.stat().st_size for p in files)))
    return make_up(docs, kinds) | {"records_without_text": no_text}


def filtered_make_up(filtered: Path, kinds: dict[str, str], tokenizer_dir: Path) -> dict:
    """The make-up of filter-web-data's output (its documents, masked as they were tokenized, encoded again);
    checked against the count of its tokens.npy."""
    from impl.programs.web_stages import encoder

    enc = encoder(str(tokenizer_dir))
    docs = []
    for path in sorted((filtered / "documents").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            docs.append((doc["url"], len(enc.tokenizer.encode(doc["text"])) + 1))
    result = make_up(docs, kinds)
    expected = json.loads((filtered / "tokens.json").read_text())["num_tokens"]
    assert result["tokens"] == expected, f"documents/ encode to {result['tokens']} tokens, tokens.npy has {expected}"
    return result


def held_out_loss(checkpoint_path: Path, tokens: np.ndarray, batch: int = 32) -> float:
    """Mean cross-entropy (nats/token) of the checkpoint's model over every non-overlapping window of ``tokens``:
    the whole held-out set, not the trainer's sample of eval_batches windows."""
    import torch
    import torch.nn.functional as F

    from impl.programs.checkpoints import load_run_checkpoint
    from impl.programs.config import TrainConfig, build_model

    checkpoint = load_run_checkpoint(checkpoint_path)
    cfg = TrainConfig(**{**checkpoint["config"], "device": "cpu", "kernels": "none"})
    model = build_model(cfg)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    m = cfg.context_length
    n = (len(tokens) - 1) // m
    x = torch.from_numpy(np.asarray(tokens[: n * m], dtype=np.int64).reshape(n, m))  # (windows, m)
    y = torch.from_numpy(np.asarray(tokens[1 : n * m + 1], dtype=np.int64).reshape(n, m))  # the next tokens
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch):
            logits = model(x[i : i + batch])  # (b, m, vocab)
            total += F.cross_entropy(logits.flatten(0, 1), y[i : i + batch].flatten(), reduction="sum").item()
    return total / (n * m)


def plot_comparison(out: Path, streams: dict, title: str) -> None:
    """compare.png: validation loss against tokens seen for both runs; what each stream is made of."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for stream, colour in zip(streams, ("tab:blue", "tab:red")):
        rows = [json.loads(line) for line in (out / f"lm-{stream}" / "metrics.jsonl").read_text().splitlines()]
        curves.plot([r["tokens"] for r in rows], [r["train_loss"] for r in rows], color=colour, alpha=0.35,
                    linewidth=1, label=f"{stream}: train loss (its own stream)")
        val = [r for r in rows if "val_loss" in r]
        curves.plot([r["tokens"] for r in val], [r["val_loss"] for r in val], "o-", color=colour, markersize=3,
                    label=f"{stream}: held-out loss (eval batches); whole set at the end "
                          f"{streams[stream]['held_out_loss']:.3f}")
    curves.set_xlabel("tokens seen")
    curves.set_ylabel("cross-entropy (nats/token)")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    names = list(streams)
    left = np.zeros(len(names))
    colours = plt.get_cmap("tab10")
    for k, kind in enumerate(KINDS):
        tokens = np.array([streams[s]["by_kind"][kind]["tokens"] for s in names], dtype=float)
        if tokens.any():
            bars.barh(names, tokens / 1e6, left=left, color=colours(k), label=kind)
            left += tokens / 1e6
    bars.set_xlabel("tokens (millions), by the kind of page they came from")
    bars.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(out / "compare.png") as file:
        fig.savefig(file, format="png", dpi=120)
    plt.close(fig)
