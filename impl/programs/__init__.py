"""The programs of the reference: ``train-bpe``, ``tokenize``, ``train``, ``generate``, ``fetch-corpus``, ``embedded-run``,
``train-classifier``.

Each is a module with a ``main(argv) -> exit code`` (the tokenizer module has two) installed as a console
script by pyproject.toml, with its plumbing beside it: the one error path and argument parsing (cli.py), the
one atomic-write helper (files.py), the run configuration (config.py), the train run (trainer.py) and its
checkpoints as programs read them (checkpoints.py), torchrun launch and data-parallel wrapping (launch.py), the
metrics log and plots (run_log.py), the corpora (corpora.py), the TOML configs (configs/) and the classifiers'
training data (classifier_data/). They use the library (impl/<area>); the library never imports them.
"""
