"""Does filtering matter? The A4 §4 leaderboard question at a size that runs here: one LM, trained twice with the
same settings, steps and seed, on the tokens of a crawl's filtered output and on the unfiltered crawl; validation
loss on held-out clean English that neither saw.

    web-data-run                                       # ~7-10 minutes on 2 cores -> runs/web-data-<time>/
    web-data-run --max-steps 30 --out-dir /tmp/wdr     # the shortened CI version
    web-data-run --out-dir /tmp/wdr --resume           # a stopped or killed run continues: the steps done are kept

The steps (each program's own progress shows):

1. crawl: WARC files of clean English pages (prose chapters of the kit's train split) mixed with junk: ten other
   languages, exact and near copies, short pages, listings, archives (impl/programs/web_crawl.py says what, and
   crawl.json which record is what).
2. train-bpe: a 4096-token BPE on the crawl's clean chapters, fixed before either stream exists and the same for
   both, as the leaderboard fixes GPT-2's (a 50K vocabulary would make a CPU model mostly embedding).
3. filter-web-data with the kit's default pipeline (extract, English, Gopher, PII masks, MinHash dedup), tokens
   with that BPE: ``filtered/tokens.npy``.
4. unfiltered: every record's extracted text (the same extraction, nothing dropped), each document ended by
   <|endoftext|> as filter-web-data does: ``unfiltered/tokens.npy``.
5. tokenize the kit's prose valid split (chapters not in the crawl; the fixture prose.warc.gz is made of them and
   is not used) with the same BPE: the held-out set.
6. train twice (the ``train`` program, configs/web_data_cpu.toml): the same model, steps, batch and seed, so both
   see exactly the same number of tokens; the unfiltered stream is larger, so it is seen for fewer epochs. No
   wall-clock limit: both runs take every step.
7. the validation loss of both final checkpoints on the whole held-out set (every non-overlapping window), the
   curves and the streams' make-up in compare.png, and summary.json.

Result, the default (commit cf68ab8's code; the later ones change the report, not the run), on the shared 2-core
machine: ``web-data-run --out-dir /tmp/wdr/full/run``

    stream      tokens      clean pages' text   epochs seen   held-out loss (nats/token)   bits/byte
    filtered      763,526   92%                 1.07          4.382                        1.625
    unfiltered  1,541,198   62%                 0.53          4.578                        1.697

Filtering lowers the held-out loss by 0.196 nats/token (seed 0; the curves are apart at every one of 16
evaluations, by 0.07 to 0.23). Both saw 819,200 tokens (400 steps of 16 x 128). With ``--seed 1`` (2026-12-04,
code of ac3297a, with 195fe9b's AdamW refactor of the same arithmetic; the same machine): filtered 4.395, unfiltered
4.570, a gap of **0.175**, the curves apart at every evaluation by 0.09 to 0.19; so two seeds give 0.175-0.196, the
seed moving each loss by about 0.01. In seed 0's run the gap opens at the first evaluation (25 steps: 6.11 vs 6.18)
and is 0.18-0.23 from step 50 on. It is not only the clean tokens the junk displaces: by the point where the
filtered run had seen as many clean pages' tokens as the unfiltered run saw in all (554K tokens), its validation loss
was already lower (4.449 vs the unfiltered run's last 4.500, eval batches), with a learning rate not yet decayed.
Wall time: 30 min, with three other jobs loading the machine (load 3-6); the training steps take 0.48 s unloaded,
about 7 minutes for the run.

What it shows: at equal compute, what the filters remove (here mostly other languages, then copies) costs loss on
clean English held out, seemingly more than the clean tokens it displaces would explain (eval batches; seed 1
gives the same: 4.495 at 554K tokens against the unfiltered run's last 4.522).
What it does not show: the held-out set is the same kind of text as the crawl's clean pages (other chapters of the
same books), the most favourable case for filtering; a leaderboard set (C4's domains) is far more varied, and the
Debian English the filters keep is off the held-out domain. The crawl is cleaner than Common Crawl and its junk is what
these filters catch, with no junk that passes them (what a quality classifier is for): they keep one copy of each
clean chapter and of each English Debian page, and nothing else, so the gap measures this mixture, not the filters'
precision. The filtered stream is smaller and repeats 7% of itself, which if anything works against it. One size
(5.2M parameters, <1M tokens): no claim about how the gap scales. The BPE, trained on English prose, spends about a
token per character of Chinese, Japanese and Korean: the foreign share of the unfiltered tokens (24%) is larger than
GPT-2's vocabulary would make it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from impl.programs import filter_web_data, tokenizer, train
from impl.programs.cli import ArgumentParser, UserError, positive_int, run
from impl.programs.config import TrainConfig, check_config
from impl.programs.corpora import EOT
from impl.programs.files import atomic_write, atomic_write_text
from impl.programs.web_crawl import CrawlPlan, prose_chapters, write_crawl
from impl.programs.web_streams import filtered_make_up, held_out_loss, plot_comparison, write_unfiltered

CONFIG = Path(__file__).with_name("configs") / "web_data_cpu.toml"
STREAMS = ("filtered", "unfiltered")
VOCAB_SIZE = 4096


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, web_data_run)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser("web-data-run", __doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, help="default: runs/web-data-<date-time>")
    parser.add_argument("--config", type=Path, default=CONFIG, help="train config of both runs")
    parser.add_argument("--filter-config", type=Path, default=filter_web_data.DEFAULT_CONFIG,
                        help="filter-web-data config (its [output] tokenizer is replaced by the run's BPE)")
    parser.add_argument("--max-steps", type=positive_int, help="override the train config's max_steps")
    parser.add_argument("--clean-pages", type=positive_int, default=CrawlPlan.clean,
                        help="prose chapters in the crawl; the junk pages are shares of it (web_crawl.CrawlPlan)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the LMs' seed, the same in both runs (the crawl's is fixed)")
    parser.add_argument("--workers", type=positive_int, default=len(os.sched_getaffinity(0)),
                        help="processes of the data steps")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out-dir with its own arguments: the steps done are kept, "
                             "filter-web-data and train go on from their own checkpoints, the rest is done again")
    return parser


# The arguments that decide what a run computes: a resumed run takes them from run.json, never from its command line.
RUN_ARGUMENTS = ("config", "filter_config", "max_steps", "clean_pages", "seed")


def web_data_run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = args.out_dir or Path("runs") / time.strftime("web-data-%Y%m%d-%H%M%S")
    if args.resume:
        args = resumed_arguments(args, out)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out-dir {out} is not an empty directory: choose another, or add --resume to continue it")
    pipeline, train_args, cfg = check_arguments(args, out)
    if not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "run.json", json.dumps({key: str(getattr(args, key)) for key in RUN_ARGUMENTS}) + "\n")
    streams = make_streams(args, out, pipeline)
    for stream in STREAMS:
        lm = out / f"lm-{stream}"
        resume = ["--resume"] if (lm / "checkpoint.pt").is_file() else []  # else it starts afresh (none was saved)
        once(out, f"train-{stream}", lambda: program(f"train on the {stream} tokens", train.main,
                                                      [*train_args[stream], *resume]))
    step("held-out loss")
    summary = compare(args, out, streams, cfg) | {"wall_s": round(time.perf_counter() - start, 1)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    step("result")
    for stream in STREAMS:
        s = streams[stream]
        print(f"{stream:>10}: {s['tokens']:>9,} tokens ({s['share']['clean_all']:.0%} the clean pages' text), "
              f"seen {s['tokens_seen']:,} ({s['epochs']:.2f} epochs); held-out loss {s['held_out_loss']:.3f} "
              f"nats/token ({s['held_out_bits_per_byte']:.3f} bits/byte)")
    gap = summary["held_out_loss_gap"]
    print(f"the filtered run's held-out loss is {abs(gap):.3f} nats/token {'lower' if gap > 0 else 'higher'} "
          f"({summary['wall_s']:.0f} s in all)\nplot: {out / 'compare.png'}; summary: {out / 'summary.json'}")
    return 0


def resumed_arguments(args: argparse.Namespace, out: Path) -> argparse.Namespace:
    """``args`` with the run's own arguments (run.json), which the command line may repeat but not change."""
    if args.out_dir is None:
        raise UserError("--resume needs --out-dir, the run to continue")
    try:
        saved = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"--resume: {out} holds no web-data-run to continue ({error})") from None
    parser = build_parser()
    defaults = vars(parser.parse_args([]))
    changed = [f"--{key.replace('_', '-')}" for key in RUN_ARGUMENTS
               if getattr(args, key) != defaults[key] and str(getattr(args, key)) != saved.get(key)]
    if changed:
        raise UserError(f"--resume continues {out} with its own arguments: {', '.join(changed)} differ from its "
                        f"run.json; start a new run to change them")
    # The saved values read back through the parser, with its types.
    restored = parser.parse_args([word for key in RUN_ARGUMENTS if saved[key] != "None"
                                  for word in (f"--{key.replace('_', '-')}", saved[key])])
    return argparse.Namespace(**{**vars(args), **{key: getattr(restored, key) for key in RUN_ARGUMENTS}})


def check_arguments(args: argparse.Namespace, out: Path) -> tuple:
    """Every argument, before any work: the filter config, both runs' train arguments and their config."""
    tokenizer.check_output(out, directory=True)
    n_chapters = len(prose_chapters())
    if args.clean_pages > n_chapters:
        raise UserError(f"--clean-pages {args.clean_pages}: the prose train split has {n_chapters} chapters")
    try:
        import warcio  # noqa: F401  (fixtures/web/warc.py writes the crawl with it)
    except ImportError:
        raise UserError("web-data-run writes its crawl with warcio: pip install warcio (or '.[oracles]')") from None
    if not args.filter_config.is_file():
        raise UserError(f"--filter-config {args.filter_config} does not exist")
    try:
        pipeline = filter_web_data.read_config(args.filter_config)
    except UserError as error:  # it names the file as filter-web-data's --config
        raise UserError(str(error).replace("--config", "--filter-config", 1)) from None
    train_args = {stream: ["--config", str(args.config), "--train-data", str(out / stream / "tokens.npy"),
                           "--valid-data", str(out / "valid.npy"), "--out-dir", str(out / f"lm-{stream}"),
                           "--seed", str(args.seed), "--max-minutes", "0",
                           *(["--max-steps", str(args.max_steps)] if args.max_steps is not None else [])]
                  for stream in STREAMS}
    cfg = TrainConfig(**train.given_settings(train.build_parser().parse_args(train_args["filtered"])))
    check_config(cfg)
    return pipeline, train_args, cfg


def make_streams(args: argparse.Namespace, out: Path, pipeline) -> dict:
    """Steps 1-5: the crawl, the BPE, both token streams, the held-out tokens; the streams' make-up."""
    plan = CrawlPlan(clean=args.clean_pages)
    crawl = once(out, "crawl", lambda: write_crawl_and_clean_text(plan, out))
    tokenizer_dir = out / "tokenizer"
    once(out, "train-bpe", lambda: program("train-bpe", tokenizer.train_main, [
        "--input", str(out / "clean.txt"), "--vocab-size", str(VOCAB_SIZE), "--out", str(tokenizer_dir),
        "--workers", str(args.workers)]))
    atomic_write_text(out / "filter.toml", toml_text(pipeline.as_dict() | {
        "output": {**pipeline.output, "tokenizer": str(tokenizer_dir.resolve())}}))
    warcs = [out / "crawl" / name for name in crawl["files"]]
    once(out, "filter-web-data", lambda: program("filter-web-data", filter_web_data.main, [  # resumes by itself too
        *map(str, warcs), "--config", str(out / "filter.toml"), "--out", str(out / "filtered"),
        "--workers", str(args.workers)]))

    def unfiltered_tokens() -> dict:
        step("unfiltered tokens")
        return write_unfiltered(warcs, crawl["kinds"], tokenizer_dir, out / "unfiltered", args.workers)

    unfiltered = once(out, "unfiltered", unfiltered_tokens)
    filtered = filtered_make_up(out / "filtered", crawl["kinds"], tokenizer_dir)
    once(out, "tokenize-valid", lambda: program("tokenize valid", tokenizer.tokenize_main, [
        "--tokenizer", str(tokenizer_dir), "--split", "valid", "--out", str(out / "valid.npy"), "--workers", "1"]))
    return {"crawl": crawl, "filtered": filtered, "unfiltered": unfiltered}


def write_crawl_and_clean_text(plan: CrawlPlan, out: Path) -> dict:
    """Step 1: the crawl, and clean.txt (its prose chapters, the BPE's training text)."""
    step("crawl")
    crawl = write_crawl(plan, out / "crawl")
    print(f"{sum(crawl['pages'].values())} pages in {plan.files} WARC files: "
          + ", ".join(f"{kind} {n}" for kind, n in crawl["pages"].items()), flush=True)
    chapters = prose_chapters()
    with atomic_write(out / "clean.txt") as file:
        file.write("".join(chapters[i] + EOT for i in crawl["clean_chapters"]).encode())
    return crawl


def once(out: Path, name: str, work):
    """``work()``'s result, or, where an earlier run of this out-dir finished the step, the result it saved in
    ``steps/<name>.json`` (written once the step is done: a step killed half-way is done again)."""
    marker = out / "steps" / f"{name}.json"
    if marker.is_file():
        step(f"{name}: done by an earlier run")
        return json.loads(marker.read_text(encoding="utf-8"))
    result = work()
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(result) + "\n")
    return result


def compare(args: argparse.Namespace, out: Path, streams: dict, cfg: TrainConfig) -> dict:
    """Step 7: both checkpoints' loss on the whole held-out set, compare.png; the summary."""
    crawl = streams.pop("crawl")
    valid = np.load(out / "valid.npy", mmap_mode="r")
    valid_bytes = json.loads((out / "valid.json").read_text())["source_bytes"]
    for stream in STREAMS:
        lm = out / f"lm-{stream}"
        rows = [json.loads(line) for line in (lm / "metrics.jsonl").read_text().splitlines()]
        loss = held_out_loss(lm / "checkpoint.pt", valid)
        seen = rows[-1]["tokens"]
        streams[stream] |= {"tokens_seen": seen, "epochs": seen / streams[stream]["tokens"],
                            # windows are drawn uniformly: the expected count of the clean pages' tokens among them
                            "clean_tokens_seen": round(seen * streams[stream]["share"]["clean_all"]),
                            "steps": rows[-1]["step"], "train_loss": rows[-1]["train_loss"],
                            "val_loss_eval_batches": rows[-1]["val_loss"], "held_out_loss": loss,
                            "held_out_bits_per_byte": loss * len(valid) / valid_bytes / math.log(2)}
    if streams["filtered"]["tokens_seen"] != streams["unfiltered"]["tokens_seen"]:
        raise UserError(f"the runs saw {streams['filtered']['tokens_seen']} and {streams['unfiltered']['tokens_seen']} "
                        f"tokens: not comparable (outputs in {out})")
    steps = streams["filtered"]["steps"]
    plot_comparison(out, streams, f"the same LM ({cfg.d_model}x{cfg.num_layers}, vocab {VOCAB_SIZE}, seed "
                    f"{args.seed}), {steps} steps of {cfg.batch_size}x{cfg.context_length} tokens, on filter-web-data's"
                    f" output and on the unfiltered crawl; held out: prose_valid")
    return {"arguments": {key: str(value) for key, value in vars(args).items() if key != "debug"},
            "crawl": {"pages": crawl["pages"], "plan": crawl["plan"]},
            "tokenizer": {"dir": "tokenizer", "vocab_size": VOCAB_SIZE, "trained_on": "clean.txt"},
            "train": {"config": str(args.config), "max_steps": steps, "seed": args.seed,
                      "tokens_per_step": cfg.batch_size * cfg.context_length},
            "held_out": {"source": "prose_valid", "tokens": len(valid), "bytes": valid_bytes},
            "streams": streams,
            "held_out_loss_gap": streams["unfiltered"]["held_out_loss"] - streams["filtered"]["held_out_loss"],
            "filtered_val_at_equal_clean_tokens": at_equal_clean_tokens(out, streams)}


def at_equal_clean_tokens(out: Path, streams: dict) -> dict:
    """Is the junk only wasted compute? The filtered run's validation loss (its eval batches, interpolated) at the
    point where it had seen as many of the clean pages' tokens as the unfiltered run saw in all, beside the
    unfiltered run's last one. Its learning rate there has not decayed yet, which favours the unfiltered run."""
    filtered, unfiltered = streams["filtered"], streams["unfiltered"]
    tokens = unfiltered["clean_tokens_seen"] / filtered["share"]["clean_all"]
    rows = [json.loads(line) for line in (out / "lm-filtered" / "metrics.jsonl").read_text().splitlines()]
    points = [(r["tokens"], r["val_loss"]) for r in rows if "val_loss" in r]
    return {"tokens_seen": round(tokens), "filtered_val_loss": float(np.interp(tokens, *zip(*points))),
            "unfiltered_val_loss": unfiltered["val_loss_eval_batches"]}


def step(name: str) -> None:
    print(f"== {name}", flush=True)


def program(name: str, main_fn, argv: list[str]) -> None:
    step(name)
    if main_fn(argv) != 0:
        raise UserError(f"the {name} step failed (its error is above)")


def toml_text(config: dict) -> str:
    """filter-web-data's settings as TOML (strings, numbers, booleans, lists of strings: JSON spells them alike)."""
    lines = [f"partitions = {config['partitions']}"]
    for f in config["filters"]:
        lines += ["", "[[filters]]", *(f"{key} = {json.dumps(value)}" for key, value in f.items())]
    lines += ["", "[output]", *(f"{key} = {json.dumps(value)}" for key, value in config["output"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
