"""One real local Ray cluster for every Ray test (started once per session, 2 CPUs, a small object store)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is installed by make setup")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    if ray.is_initialized():  # e.g. left by a doctest
        ray.shutdown()
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = True
    yield ray
    ray.shutdown()
