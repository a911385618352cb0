"""Layer 3: named CPU models -- a versioned, hierarchical catalog with provenance.

``catalog()`` loads the model files of ``data/`` and of the site models directory;
``realize("grace-v1,feat_AES=off")`` turns a model (+ overrides) into the CpuDefinition a VM's
guest sees; ``sitefile`` writes a site model in the catalog's format; ``resolve`` says which model in
the chain set each property.  (Finding the smallest override set that makes a model usable on
a host needs the engine: ``arm_cpu_filter.engine.fix_model``.)
"""

from arm_cpu_filter.models.realization import is_abstract, parse_spec, realize, realize_model
from arm_cpu_filter.models.registry import (
    MODELS_DIR_ENV,
    Model,
    bundled_catalog,
    catalog,
    chain,
    composite_spec,
    get_model,
    load_catalog,
    models_dir,
    set_models_dir,
)
from arm_cpu_filter.models.resolution import resolve

__all__ = [
    "MODELS_DIR_ENV",
    "Model",
    "bundled_catalog",
    "catalog",
    "chain",
    "composite_spec",
    "get_model",
    "is_abstract",
    "load_catalog",
    "models_dir",
    "parse_spec",
    "realize",
    "realize_model",
    "resolve",
    "set_models_dir",
]
