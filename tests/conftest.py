# The kit's plugin (implementation loading, markers, compliance report) for every test below.
pytest_plugins = ["tests.harness.plugin"]
