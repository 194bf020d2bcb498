"""runtag's tooling: one module per concern. The experiment itself lives one level up."""
