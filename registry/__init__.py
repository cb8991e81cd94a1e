"""The project's registry store (see README.md): installed as ``adapterhub._registry``.

This file makes the folder a package so that ``importlib.resources`` finds the store both in an
installed wheel and in an editable checkout (see ``project_registry_dir`` in
``adapterhub/registry/remotes.py``). The store itself reads only ``*/*/*/*/manifest.json``
entries, so this file is no part of it.
"""
