"""The packaged recipes, one YAML per task: installed as ``adapterhub._recipes``.

This file makes the folder a package so that ``importlib.resources`` finds the recipes both in an
installed wheel and in an editable checkout (see ``adapterhub/recipes.py`` and pyproject.toml).
"""
