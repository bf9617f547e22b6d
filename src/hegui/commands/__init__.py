"""Command groups of the ``hegui`` CLI, one module per group, each with ``register(app)``."""
