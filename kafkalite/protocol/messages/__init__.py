"""The registry of every API kafkalite speaks: one module per API, each defining `API`."""

import importlib
import pkgutil

from kafkalite.protocol.schema import ApiSchema


def _load() -> dict[int, ApiSchema]:
    registry: dict[int, ApiSchema] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:  # data/: schemas that are not APIs
            continue
        api = importlib.import_module(f"{__name__}.{info.name}").API
        if api.key in registry:
            raise RuntimeError(f"API key {api.key} defined twice ({registry[api.key].name}, {api.name})")
        registry[api.key] = api
    return dict(sorted(registry.items()))


APIS: dict[int, ApiSchema] = _load()
APIS_BY_NAME: dict[str, ApiSchema] = {api.name: api for api in APIS.values()}
