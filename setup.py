"""Builds the compiled parts of ``solvent`` from ``ext/``.

* ``solvent._core``: the balance core (mirror of ``solvent/core/twin.py``);
* ``solvent._book``: the order-book kernel (mirror of ``solvent/matching/twin.py``);
* ``solvent._engine``: the market engine (mirror of ``solvent/engine/twin.py``): holds,
  matching and settlement in C over the two above, through ``ext/solvent/*.pxd``;
* ``solvent._proof``: the proof-of-liabilities tree builder (SHA-256 from OpenSSL's
  libcrypto). Built only where OpenSSL's headers are installed (Debian:
  ``libssl-dev``); without it ``solvent.proof`` builds the same trees in pure Python,
  only slower.

Everything else about the package lives in ``pyproject.toml``.
"""

import os
import sysconfig

from Cython.Build import cythonize
from setuptools import Extension, setup


def _have_openssl_headers() -> bool:
    dirs = [sysconfig.get_config_var("INCLUDEDIR") or "", "/usr/include", "/usr/local/include",
            *os.environ.get("CPATH", "").split(os.pathsep)]
    return any(d and os.path.exists(os.path.join(d, "openssl", "evp.h")) for d in dirs)

extensions = [
    Extension(
        "solvent._core",
        ["ext/_core.pyx"],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "solvent._book",
        ["ext/_book.pyx"],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "solvent._engine",
        ["ext/_engine.pyx"],
        extra_compile_args=["-O3"],
    ),
]
if _have_openssl_headers():
    extensions.append(
        Extension(
            "solvent._proof",
            ["ext/_proof.pyx"],
            libraries=["crypto"],
            extra_compile_args=["-O3", "-pthread"],  # hashes on two threads
            extra_link_args=["-pthread"],
        )
    )
else:
    print("setup.py: OpenSSL headers not found; solvent._proof is not built "
          "(solvent.proof falls back to pure Python)")

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        include_path=["ext"],  # ext/solvent/*.pxd: the C interfaces the engine cimports
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
