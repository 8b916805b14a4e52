"""Quality runs: each configuration on the SciFact dev subset and the STS-B dev subset, cached."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from benchmarks.configs import BenchConfig, slug
from grace_rag.evaluation.loading import load_model
from grace_rag.evaluation.datasets import BeirDataset, StsDataset
from grace_rag.evaluation.runner import evaluate_loaded

logger = logging.getLogger(__name__)


def result_path(results_dir: Path, config: BenchConfig,
                dataset: BeirDataset | StsDataset) -> Path:
    digest = dataset.subset["digest"] if dataset.subset else "full"
    return results_dir / f"quality-{dataset.name}-{digest}-{slug(config.label)}.json"


def run_quality(config: BenchConfig, datasets: list[BeirDataset | StsDataset],
                results_dir: Path) -> dict[str, dict[str, Any]]:
    """Results of ``config`` on each dataset, read from ``results_dir`` when already there."""
    rows: dict[str, dict[str, Any]] = {}
    loaded = None
    for dataset in datasets:
        path = result_path(results_dir, config, dataset)
        if path.is_file():
            rows[dataset.name] = json.loads(path.read_text())
            continue
        if loaded is None:
            loaded = load_model(config.model, config.settings)
        logger.info("quality: %s on %s", config.label, dataset.name)
        row = evaluate_loaded(loaded, dataset)
        row.update(model=config.label, subset=dataset.subset)
        path.write_text(json.dumps(row, indent=2) + "\n")
        rows[dataset.name] = row
    return rows
