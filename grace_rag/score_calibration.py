"""Calibrated relevance: a cosine turned into the probability that a document is related to a query.

Which cosine means "related" depends on the model and its settings (``benchmarks/score_calibration.py``
measures it), so a usual ``similarity_cutoff=0.7`` can keep most noise. A logistic fit
``relevance = 1 / (1 + exp(-(a * cosine + b)))`` on labelled pairs maps cosines to a scale users
can threshold; ``cutoff(p)`` gives the cosine where relevance reaches ``p``.

The parameters are data that travel with a model: the ``"score_calibration"`` key of the model
directory's ``grace_encoder.json``::

    "score_calibration": {"method": "logistic", "a": 26.56, "b": -14.94,
                          "settings": {"max_rationale_tokens": 16, "pooling": "mean", "layer": "penultimate"},
                          "fitted_on": "SciFact dev: 80 query-positive vs 80 query-random pairs"}

``settings`` lists the encoder settings the fit holds for; an encoder with other values for
any of them gets no calibration (``None``). The shipped default adapter carries its own fit;
other models get one by running ``benchmarks/score_calibration.py`` and adding its output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from grace_rag.errors import ConfigError

KEY = "score_calibration"
MODEL_INFO_FILE = "grace_encoder.json"


@dataclass(frozen=True)
class ScoreCalibration:
    """``relevance(cosine) = 1 / (1 + exp(-(a * cosine + b)))``, valid for encoders with ``settings``."""

    a: float
    b: float
    settings: dict[str, Any] = field(default_factory=dict)
    fitted_on: str = ""

    def relevance(self, cosine: float) -> float:
        """The calibrated probability that the pair is related (0..1)."""
        z = self.a * float(cosine) + self.b
        return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))

    def cutoff(self, probability: float = 0.5) -> float:
        """The cosine at which relevance equals ``probability`` (a ``similarity_cutoff`` for raw scores)."""
        if not 0 < probability < 1:
            raise ConfigError(f"probability must be between 0 and 1 (exclusive), got {probability}")
        return (math.log(probability / (1 - probability)) - self.b) / self.a

    def applies_to(self, settings: Mapping[str, Any]) -> bool:
        """Whether an encoder with ``settings`` matches every setting the fit was made with."""
        return all(_plain(settings.get(name)) == value for name, value in self.settings.items())

    def to_dict(self) -> dict[str, Any]:
        return {"method": "logistic", "a": self.a, "b": self.b, "settings": dict(self.settings), "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCalibration:
        """Read the ``"score_calibration"`` value; anything malformed is a ConfigError saying what."""
        if data.get("method", "logistic") != "logistic":
            raise ConfigError(f"{KEY}: unknown method {data.get('method')!r}; the only method is 'logistic'")
        try:
            a, b = float(data["a"]), float(data["b"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{KEY} needs numbers 'a' and 'b' (relevance = sigmoid(a * cosine + b)), got {dict(data)!r}") from None
        if a <= 0 or not math.isfinite(a) or not math.isfinite(b):
            raise ConfigError(f"{KEY}: 'a' must be a positive number and 'b' finite, got a={a}, b={b}")
        settings = data.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{KEY}: 'settings' must be an object of encoder settings, got {settings!r}")
        return cls(a=a, b=b, settings=dict(settings), fitted_on=str(data.get("fitted_on", "")))


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def score_calibration(model_name: str, model_info: Mapping[str, Any] | None,
                      settings: Mapping[str, Any]) -> ScoreCalibration | None:
    """The calibration for an encoder: its model's ``score_calibration`` (from ``grace_encoder.json``);
    ``None`` when the model has none or the fit does not hold for ``settings``."""
    if not model_info or KEY not in model_info:
        return None
    calibration = ScoreCalibration.from_dict(model_info[KEY])
    return calibration if calibration.applies_to(settings) else None


def read_model_info(model_name: str) -> dict[str, Any] | None:
    """``grace_encoder.json`` of a model directory or of a built-in adapter folder (``None`` for
    other aliases, files and directories without one)."""
    from grace_rag.models import BUILTIN_MODELS, OWN_DISTRIBUTION, builtin_path

    entry = BUILTIN_MODELS.get(model_name)
    directory = builtin_path(model_name) if entry is not None and entry.distribution == OWN_DISTRIBUTION else Path(model_name)
    path = directory / MODEL_INFO_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
    return data if isinstance(data, dict) else None


def calibration_for(encoder: Any) -> ScoreCalibration | None:
    """The calibration that holds for a GraceEncoder (or ``None``)."""
    settings = encoder.config.to_dict() if hasattr(encoder.config, "to_dict") else {}
    return score_calibration(str(encoder.model_name), read_model_info(str(encoder.model_name)), settings)
