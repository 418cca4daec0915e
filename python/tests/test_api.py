"""Every public name has a docstring and a type stub."""

import ast
import pathlib

import vic

STUB = pathlib.Path(__file__).resolve().parents[1] / "vic" / "__init__.pyi"


def stub_names():
    tree = ast.parse(STUB.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AnnAssign))
                for n in [n] if not isinstance(n, ast.AnnAssign)
            } | {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = set()
    return names


def test_every_public_name_has_a_docstring_and_a_stub():
    stubs = stub_names()
    for name in vic.__all__:
        if name == "__version__":
            continue
        obj = getattr(vic, name)
        assert obj.__doc__, name
        assert name in stubs, name
    for cls in (vic.Model, vic.Fit):
        public = {n for n in dir(cls) if not n.startswith("_")}
        assert public, cls
        for n in public:
            assert getattr(cls, n).__doc__, f"{cls.__name__}.{n} has no docstring"
            assert n in stubs[cls.__name__], f"{cls.__name__}.{n} has no stub"
        assert public | {"__init__"} >= stubs[cls.__name__] - {"__init__"}, (
            stubs[cls.__name__] - public
        )
