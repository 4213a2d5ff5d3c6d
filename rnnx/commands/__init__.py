"""One module per CLI command; ``rnnx.cli`` loads them lazily so ``rnnx run`` never imports torch."""
