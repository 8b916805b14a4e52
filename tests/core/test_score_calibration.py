"""Calibrated relevance: the logistic map, its inverse, and which parameters an encoder gets."""

import json
import math

import pytest

from grace_rag.score_calibration import ScoreCalibration, read_model_info, score_calibration
from grace_rag.errors import ConfigError
from grace_rag.models import BASE_MODEL

DEFAULT_SETTINGS = {"max_rationale_tokens": 32, "pooling": "mean", "layer": "last", "temperature": 0.0, "batch_size": 16}


def test_relevance_is_the_logistic_of_the_cosine_and_cutoff_inverts_it():
    calibration = ScoreCalibration(a=10.0, b=-8.0)
    assert calibration.relevance(0.8) == pytest.approx(0.5)
    assert calibration.relevance(0.9) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert calibration.relevance(-100.0) == pytest.approx(0.0) and calibration.relevance(100.0) == pytest.approx(1.0)
    for p in (0.1, 0.5, 0.9):
        assert calibration.relevance(calibration.cutoff(p)) == pytest.approx(p)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        calibration.cutoff(1.0)


def test_a_model_without_a_fit_gets_no_calibration():
    assert score_calibration(BASE_MODEL, None, DEFAULT_SETTINGS) is None  # the untrained base carries none
    assert score_calibration("/some/other-model", {"settings": {}}, DEFAULT_SETTINGS) is None


def test_parameters_travel_with_the_model(tmp_path):
    data = {"score_calibration": {"method": "logistic", "a": 20, "b": -17, "settings": {"layer": "penultimate"}}}
    (tmp_path / "grace_encoder.json").write_text(json.dumps(data))
    info = read_model_info(str(tmp_path))
    calibration = score_calibration(str(tmp_path), info, {"layer": "penultimate"})
    assert (calibration.a, calibration.b) == (20.0, -17.0)
    assert score_calibration(str(tmp_path), info, {"layer": "last"}) is None
    assert ScoreCalibration.from_dict(calibration.to_dict()) == calibration
    assert read_model_info(BASE_MODEL) is None


@pytest.mark.parametrize("value, message", [
    ({"a": "x", "b": 1}, "needs numbers 'a' and 'b'"),
    ({"a": -1, "b": 1}, "'a' must be a positive number"),
    ({"method": "isotonic", "a": 1, "b": 1}, "unknown method 'isotonic'"),
    ({"a": 1, "b": 1, "settings": [1]}, "'settings' must be an object"),
])
def test_malformed_parameters_are_clear_errors(value, message):
    with pytest.raises(ConfigError, match=message):
        ScoreCalibration.from_dict(value)
