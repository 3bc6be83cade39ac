"""The services talk only through libs/contracts: the import contracts in pyproject.toml ([tool.importlinter]) hold,
and they name every service package, so a new service cannot slip past them."""
import os
import tomllib

from importlinter import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYPROJECT = os.path.join(ROOT, "pyproject.toml")


def _contracts():
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]["contracts"]


def test_every_service_is_in_the_independence_contract():
    services = {"services." + name for name in os.listdir(os.path.join(ROOT, "services"))
                if os.path.isfile(os.path.join(ROOT, "services", name, "__init__.py"))}
    independent = set(next(c for c in _contracts() if c["type"] == "independence")["modules"])
    assert services | {"gateway", "sandbox"} <= independent


def test_no_module_imports_another_service():
    # The report (which import breaks which contract) is printed: pytest shows it when this fails.
    assert cli.lint_imports(config_filename=PYPROJECT, no_cache=True) == 0
