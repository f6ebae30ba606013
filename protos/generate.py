"""Regenerate the Python client code from protos/: ``python protos/generate.py``.

The generated modules (with mypy stubs) live in clients/python/orderhub/v1 and are
committed, so a plain ``pip install`` needs no code generator. CI regenerates them and
fails when the committed copy is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "clients" / "python"


def main() -> int:
    """Run protoc with the Python, gRPC and mypy plugins over every proto file."""
    protos = sorted(str(p.relative_to(HERE)) for p in (HERE / "orderhub").rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    gen = OUT / "orderhub" / "v1"
    for stale in gen.glob("*_pb2*"):
        stale.unlink()
    bindir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"-I{HERE}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *protos,
    ]
    code = protoc.main(args)
    if code == 0:
        print(f"generated {len(protos)} proto files into {gen}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
