"""The package list; everything else about the build is in pyproject.toml.

pyproject.toml cannot combine package discovery with folders mapped in from outside the package,
so the list is made here: every package found under adapterhub/, plus the top-level recipes/ and
registry/ folders, shipped as adapterhub._recipes and adapterhub._registry (their mapping and
file patterns are in pyproject.toml).
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["adapterhub*"]),
        "adapterhub._recipes",
        "adapterhub._registry",
    ]
)
