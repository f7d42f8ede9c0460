"""What train-classifier measures of a model: held-out precision, recall and accuracy (overall and by source), the
hand-labelled gold set, sanity sentences, and, for quality, how it fares on a source it never saw."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from impl.programs.classifier_data.datasets import Example, HarmExample
from impl.programs.classifier_data.fasttext_training import (
    Hyperparameters,
    precision_recall,
    probabilities,
    train,
    write_training_file,
)

# (text, label) pairs that any usable classifier of the task gets right; printed with every run.
SANITY = {
    "nsfw": [
        ("SUCK MY C*CK WIKIPEDIA EDITORS...F*CKING *UCK DICK HOLES!!! YOU ARE ALL FUCKING IDIOTS", "nsfw"),
        (("Why did that idiot revert my edit? Can that moron not post on the talk page? What a rude fuck. None of you "
         "fuckers have any right to tell me about vandalism, you're all stupid."), "nsfw"),
        ("Umm, theres no actual article for prostitution ring.  - Crunch Captain.", "non-nsfw"),
        (("Thanks for the review. I rebased the patch on main and the failing test now passes; could you take another "
         "look at the error handling in the parser?"), "non-nsfw"),
        ("The rooster, or cock, is the adult male chicken; Dick Cheney later defended the policy.", "non-nsfw"),
    ],
    "toxic": [
        (("Why did that idiot revert my edit? Can that moron not post on the talk page? What a rude fuck. None of you "
         "fuckers have any right to tell me about vandalism, you're all stupid."), "toxic"),
        ("You are a pathetic little man and everyone here despises you. Get lost, loser.", "toxic"),
        ("Umm, theres no actual article for prostitution ring.  - Crunch Captain.", "non-toxic"),
        ("I disagree with this edit: the 2010 census figure is better sourced than the blog post you cited.",
         "non-toxic"),
        (("Thanks for the review. I rebased the patch on main and the failing test now passes; could you take another "
         "look at the error handling in the parser?"), "non-toxic"),
    ],
    "quality": [
        (("The Treaty of Westphalia, signed in 1648 in the cities of Osnabrück and Münster, ended the Thirty Years' War "
         "in the Holy Roman Empire and the Eighty Years' War between Spain and the Dutch Republic. Historians often "
         "describe the settlement as the origin of the modern system of sovereign states, although this "
         "interpretation has been disputed."), "wiki"),
        (("Photosynthesis is the process by which green plants, algae and some bacteria convert light energy into "
         "chemical energy. In the light-dependent reactions, chlorophyll absorbs photons and water molecules are "
         "split, releasing oxygen. The energy captured is stored in ATP and NADPH, which the Calvin cycle then uses "
         "to fix carbon dioxide into sugars."), "wiki"),
        (("Home | Shop | Deals | Cart (0)\nBEST CHEAP Wireless Earbuds 2024 - Buy Wireless Earbuds Online FREE "
         "SHIPPING\nWireless Earbuds $19.99 $39.99 Add to cart\n★★★★★ (1,203) best earbuds cheap earbuds\n"
         "© 2023 MegaDeals. All rights reserved. Privacy Policy"), "cc"),
        (("Sign in to your account\nEmail address\nPassword\nKeep me signed in\nForgot password?\nSign in\n"
         "New here? Create an account\nTerms | Privacy | Help"), "cc"),
        (("lol cant believe its monday again ugh. anyone watching the game tonight?? #bored\n@anonymous haha yes!!\n"
         "click here for FREE iphone giveaway >>> bit.ly/xyz"), "cc"),
    ],
}
GENERATED_SOURCES = ("synthetic", "injected")
UNSEEN_SOURCES = ["wikipedia", "nyt", "python_docs", "prose", "debian_reference"]


def evaluate(model, task: str, positive: str, held_out: list[Example], gold: list[HarmExample] | None) -> dict:
    """The figures of one model (a loaded fastText model) on the held-out examples, the gold set and the sanity
    sentences; "positive" is the class the filter looks for (nsfw, toxic, wiki)."""
    truth = np.array([e.label == positive for e in held_out])
    predicted = probabilities(model, [e.text for e in held_out], positive) >= 0.5
    figures = {"held_out": precision_recall(truth, predicted)}
    if task != "quality":
        generated = np.array([e.source in GENERATED_SOURCES for e in held_out])
        figures["held_out_real"] = precision_recall(truth[~generated], predicted[~generated])
        figures["held_out_generated"] = precision_recall(truth[generated], predicted[generated])
    by_source: dict[str, list[bool]] = defaultdict(list)
    for example, correct in zip(held_out, truth == predicted):
        by_source[example.source.split("<")[0]].append(bool(correct))
    figures["accuracy_by_source"] = {s: {"n": len(v), "accuracy": round(float(np.mean(v)), 3)}
                                     for s, v in sorted(by_source.items())}
    if gold:
        gold_truth = np.array([getattr(e, task) for e in gold])
        figures["gold"] = precision_recall(gold_truth, probabilities(model, [e.text for e in gold], positive) >= 0.5)
    sentences = SANITY[task]
    scores = probabilities(model, [text for text, _ in sentences], positive)
    figures["sanity"] = [{"text": text, "expected": label, "probability_of_" + positive: round(float(p), 3),
                          "correct": bool((p >= 0.5) == (label == positive))}
                         for (text, label), p in zip(sentences, scores)]
    return figures


def from_source(example: Example, source: str) -> bool:
    """The example is one of the source's documents, a framed or cut copy of one, or a spoiled one."""
    return example.source.split("<")[-1].removesuffix("+nav").removesuffix("_lead") == source


def leave_one_source_out(examples: list[Example], hyperparameters: Hyperparameters, workdir: Path) -> dict:
    """For each of the main "wiki" sources: a model trained without it (originals, copies and spoiled versions), and
    the share of its originals called "wiki" and of its spoiled versions called "cc". A large drop from the held-out
    figures means the model learned the sources rather than quality."""
    import fasttext

    results = {}
    for source in UNSEEN_SOURCES:
        seen = [e for e in examples if not e.held_out and not from_source(e, source)]
        write_training_file(workdir / "loso.txt", seen)
        train(workdir / "loso.txt", workdir / "loso.bin", None, hyperparameters)
        model = fasttext.load_model(str(workdir / "loso.bin"))
        unseen = [e for e in examples if from_source(e, source)]
        called_wiki = probabilities(model, [e.text for e in unseen], "wiki") >= 0.5
        originals = np.array([e.label == "wiki" for e in unseen])
        results[source] = {"originals": int(originals.sum()),
                           "originals_called_wiki": round(float(called_wiki[originals].mean()), 3),
                           "spoiled": int((~originals).sum()),
                           "spoiled_called_cc": round(float((~called_wiki[~originals]).mean()), 3)}
    return results
