"""The client documents itself: every constructor argument in its class docstring with its default, and a
py.typed marker that the package ships."""

import inspect
import pathlib
import tomllib

import pytest

import kafkalite_client
from kafkalite_client import Admin, Consumer, Producer

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cls", [Producer, Consumer, Admin])
def test_the_class_docstring_names_every_argument_with_its_default(cls):
    doc = inspect.getdoc(cls) or ""
    missing = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        if param.kind is param.VAR_POSITIONAL:
            wanted = f"*{name}:"
        elif param.default is param.empty:
            wanted = f"{name}:"
        else:
            wanted = f"{name}={param.default!r}:"
        if wanted not in doc:
            missing.append(wanted)
    assert not missing, f"{cls.__name__}'s docstring lacks {missing}"


def test_py_typed_is_there_and_packaged():
    package = pathlib.Path(kafkalite_client.__file__).parent
    assert (package / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["kafkalite_client"]
