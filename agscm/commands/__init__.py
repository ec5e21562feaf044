"""CLI verbs, one module each; every module exposes `register(app)` and imports lazily."""
