"""The C record decoder for the consumer; everything else about the package is in pyproject.toml.

optional=True: without a compiler the install still succeeds and the consumer uses the pure-Python decoder.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kafkalite_client._records",
            sources=["clients/kafkalite_client/_records.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
