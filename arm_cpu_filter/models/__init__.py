"""Layer 3: named CPU models -- a versioned, hierarchical catalog with provenance.

``catalog()`` loads the model files of ``data/``; ``realize("grace-v1,feat_AES=off")`` turns a
model (+ overrides) into the CpuDefinition a VM's guest sees; ``resolve`` says which model in
the chain set each property; ``fix_model`` finds the smallest override set that makes a model
usable on a host.
"""

from arm_cpu_filter.models.realization import parse_spec, realize, realize_model
from arm_cpu_filter.models.registry import Model, catalog, chain, composite_spec, get_model, load_catalog
from arm_cpu_filter.models.resolution import resolve


def fix_model(spec: str, host):  # noqa: ANN001,ANN201 - thin lazy wrapper (engine is a later layer)
    """The smallest ``MODEL,PROP=VAL,...`` spec usable on ``host``; None if there is none."""
    from arm_cpu_filter.models.fix import fix_model as _fix

    return _fix(spec, host)


__all__ = [
    "Model",
    "catalog",
    "chain",
    "composite_spec",
    "fix_model",
    "get_model",
    "load_catalog",
    "parse_spec",
    "realize",
    "realize_model",
    "resolve",
]
