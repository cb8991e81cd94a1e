"""Adapter methods, one package each, registered once in :data:`METHODS`.

Every method has the shape of :class:`~adapterhub.methods.base.Method` (PEFT's tuners in
spirit): a documented config dataclass, a training wrap (add a fresh trainable adapter, load a
saved one under a role, save it), ONE verification (:meth:`~Method.validate_config`, the schema
of its ``adapter_config.json``, and :meth:`~Method.check_weights`) that publish, import, pull,
training-time loads and the runtime all run, and :meth:`~Method.serve_parts`, the tensors the
runtime's banks hold. So nothing publishes that the runtime cannot serve.

- ``lora/``, ``ia3/``: PEFT's formats (:mod:`.peft` holds what they share; their folders load
  with ``PeftModel.from_pretrained(backbone.model, folder)``)
- ``bottleneck/``: our own (docs/FORMAT.md), with its torch module in ``bottleneck/layer.py``
- :mod:`.adapted`: the training-side wrapper (``wrap``, ``add_adapter``, ``load_adapter``,
  ``count_parameters``) that dispatches to the method objects; it imports torch, this module
  and the verification halves do not (the registry uses them)

Adding a method ``foo``:

1. ``methods/foo/config.py``: ``FooConfig``, a dataclass whose fields carry their docs, and its
   schema: ``{field: check}`` from :mod:`.schema`, naming every field the saved config may hold
   (bounded patterns through :mod:`.patterns` if it has any).
2. ``methods/foo/verify.py``: ``check_weights`` (key names, shapes against the config and,
   given the backbone model, against its modules).
3. ``methods/foo/serve.py``: ``serve_parts``, the config and weights as
   :class:`~adapterhub.methods.base.Part` s for the banks. A part's ``kind`` names the hook math
   that applies it (``runtime/batched.py``: lora, ia3_in, ia3_out, bottleneck); a method whose
   math none of these is adds its kind there.
4. ``methods/foo/__init__.py``: ``class Foo(Method[FooConfig])`` with ``name``,
   ``config_class``, ``kinds`` and every method of :class:`~adapterhub.methods.base.Method`
   (``detects``, ``config_from_recipe``, ``validate_config``, ``check_weights``,
   ``serve_parts``, ``add_adapter``, ``load_adapter``, ``save``); a torch module of its own
   goes in ``methods/foo/layer.py``.
5. One line here: ``Foo()`` in :data:`METHODS`. Recipes, ``adapterhub train --method``,
   publish, import and the runtime pick it up from this table.
6. Tests: training round trip and identity (tests/train/test_methods.py), serving exactness
   against the reference (tests/serving), and the schema's refusals (tests/registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapterhub.errors import IntegrityError, UsageError
from adapterhub.methods.base import CONFIG_NAME, Method
from adapterhub.methods.bottleneck import Bottleneck
from adapterhub.methods.ia3 import IA3
from adapterhub.methods.lora import Lora

METHODS: dict[str, Method] = {method.name: method for method in (Lora(), IA3(), Bottleneck())}
"""Every adapter method, by name: the one table recipes, the CLI, the registry and the runtime
read."""
METHOD_NAMES = tuple(METHODS)


def get_method(name: str) -> Method:
    """The method called ``name``; a :class:`UsageError` naming the choices otherwise."""
    method = METHODS.get(name)
    if method is None:
        raise UsageError(f"unknown method {name!r}; use one of: {', '.join(METHOD_NAMES)}")
    return method


def method_of(config: Mapping[str, Any], where: str = CONFIG_NAME) -> Method:
    """The method an ``adapter_config.json`` (as a dict) is for; :class:`IntegrityError` when
    no registered method recognises it."""
    for method in METHODS.values():
        if method.detects(config):
            return method
    raise IntegrityError(
        f"{where}: unknown adapter type (peft_type={config.get('peft_type')!r}, "
        f"adapter_method={config.get('adapter_method')!r}); adapterhub reads "
        f"{', '.join(METHOD_NAMES)} adapters"
    )


__all__ = ["METHODS", "METHOD_NAMES", "Method", "get_method", "method_of"]
