"""Import rules derived from the registry, so that a new service is covered without editing a list: services
never import each other, and the common library (and the testkit) import no service."""

from __future__ import annotations

import itertools

import grimp
import pytest

from comptaflow.common.registry import discover

REGISTRY = discover()
PACKAGES = sorted({spec.factory.split(":")[0].rsplit(".", 1)[0] for spec in REGISTRY})


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("comptaflow", cache_dir=None)


def test_every_registered_service_has_its_own_package() -> None:
    assert len(PACKAGES) == len(REGISTRY.services)
    assert {"comptaflow.gateway", "comptaflow.loader", "comptaflow.period_validator"} <= set(PACKAGES)


@pytest.mark.parametrize(("importer", "imported"), list(itertools.permutations(PACKAGES, 2)))
def test_services_never_import_each_other(graph: grimp.ImportGraph, importer: str, imported: str) -> None:
    assert not graph.chain_exists(importer=importer, imported=imported, as_packages=True), (
        f"{importer} imports {imported}: services share only comptaflow.common"
    )


@pytest.mark.parametrize("library", ["comptaflow.common", "comptaflow.testkit"])
@pytest.mark.parametrize("service", PACKAGES)
def test_the_libraries_import_no_service(graph: grimp.ImportGraph, library: str, service: str) -> None:
    assert not graph.chain_exists(importer=library, imported=service, as_packages=True)
