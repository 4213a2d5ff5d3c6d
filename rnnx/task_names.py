"""The built-in training tasks' names: the one list (torch-free, so ``rnnx --help`` needs no torch).

``rnnx.training.tasks.get_task`` builds them; ``rnnx train --task`` offers them.
"""

TASKS = ("sine", "chars", "forecast", "blobs")  # what --task takes, in the order shown
