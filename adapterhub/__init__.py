"""adapterhub: a parameter-efficient adapter hub for multilingual NLP."""

__version__ = "0.1.0"
