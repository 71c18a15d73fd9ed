"""The golden vectors tie the torch backend (here) and the Flux backend (julia/test) together.

tests/data/golden/ holds inputs, weights and the probabilities of an independent
direct-loop implementation of Flux's semantics (tests/support/flux_reference.py).  The
torch backend must match them to 1e-5; implementations with the classic porting
mistakes (cross-correlation, transposed kernels, another flatten order) must not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sdcnn.classify.cnn import FluxCNN
from sdcnn.classify.prediction import load_batch, predict_prompt
from sdcnn.classify.weights import load_weights
from tests.support import flux_reference, make_golden
from tests.support.workspace import REPO

GOLDEN = REPO / make_golden.GOLDEN_DIR
CASES = [case.name for case in make_golden.CASES]


def read_case(name: str) -> dict[str, Any]:
    expected = json.loads((GOLDEN / name / "expected.json").read_text(encoding="utf-8"))
    weights = load_weights(GOLDEN / name / "weights.safetensors")
    paths = [GOLDEN / name / "tensors" / f"{stem}.npy" for stem in expected["image_ids"]]
    return {"expected": expected, "weights": weights, "batch": load_batch(paths)}


@pytest.mark.parametrize("name", CASES)
def test_torch_backend_matches_the_golden_probabilities(name: str) -> None:
    case = read_case(name)
    expected = case["expected"]
    model = FluxCNN(case["weights"])
    with torch.inference_mode():
        batch = torch.from_numpy(case["batch"])
        probabilities = model(batch).numpy()
        logits = model.logits(batch).numpy()
    assert expected["tolerance"] == 1e-5
    np.testing.assert_allclose(probabilities, expected["probabilities"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(logits, expected["logits"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", CASES)
def test_reference_reproduces_the_committed_golden_values(name: str) -> None:
    case = read_case(name)
    probabilities = flux_reference.probabilities(case["weights"].tensors, list(case["batch"]))
    np.testing.assert_allclose(probabilities, case["expected"]["probabilities"], rtol=1e-12)


@pytest.mark.parametrize("variant", [v for v in flux_reference.VARIANTS if v != "flux"])
@pytest.mark.parametrize("name", CASES)
def test_porting_mistakes_do_not_match_the_golden_values(name: str, variant: str) -> None:
    case = read_case(name)
    wrong = flux_reference.probabilities(case["weights"].tensors, list(case["batch"]), variant)
    error = np.abs(wrong - np.array(case["expected"]["probabilities"])).max()
    assert error > 100 * case["expected"]["tolerance"], f"{variant} is not told apart: {error}"


def test_reference_convolution_moves_an_impulse_the_flux_way() -> None:
    # One tap at (kh, kw) = (0, 2): y[i, j] = x[i + 1, j - 1] for a true convolution,
    # x[i - 1, j + 1] for a cross-correlation; the impulse at (2, 2) lands at (1, 3) or (3, 1).
    image = np.zeros((1, 5, 5))
    image[0, 2, 2] = 1.0
    kernel = np.zeros((1, 1, 3, 3))
    kernel[0, 0, 0, 2] = 1.0
    convolved = flux_reference.conv3x3_same(image, kernel, np.zeros(1))
    correlated = flux_reference.conv3x3_same(image, kernel, np.zeros(1), "cross_correlation")
    assert list(zip(*np.nonzero(convolved[0]), strict=True)) == [(1, 3)]
    assert list(zip(*np.nonzero(correlated[0]), strict=True)) == [(3, 1)]


@pytest.mark.parametrize("name", CASES)
def test_torch_prediction_document_matches_the_golden_document(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JSON the torch backend writes has the golden document's keys, paths and hashes."""
    golden = json.loads((GOLDEN / name / "prediction.json").read_text(encoding="utf-8"))
    monkeypatch.chdir(REPO)  # the golden document records paths relative to the repository
    written = tmp_path / "prediction.json"
    predict_prompt(
        backend="torch",
        julia_project="julia",
        prompt_id=name,
        tensor_dir=f"{make_golden.GOLDEN_DIR}/{name}/tensors",
        image_ids=[image["image_id"] for image in golden["images"]],
        weights_path=f"{make_golden.GOLDEN_DIR}/{name}/weights.safetensors",
        labels=golden["labels"],
        output_path=str(written),
        gpus=0,
        threads=1,
    )
    document = json.loads(written.read_text(encoding="utf-8"))
    assert (document["backend"], document["device"]) == ("torch", "cpu")
    assert_same_document(document, golden, ignore=("backend", "device"))


def assert_same_document(actual: Any, expected: Any, ignore: tuple[str, ...] = ()) -> None:
    """Same keys in the same order, same strings; numbers within the golden tolerance."""
    if isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            if key not in ignore:
                assert_same_document(actual[key], expected[key])
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for actual_item, expected_item in zip(actual, expected, strict=True):
            assert_same_document(actual_item, expected_item)
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=1e-5)
    else:
        assert actual == expected


def test_golden_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = make_golden.write_golden(tmp_path)
    names = sorted(str(path.relative_to(tmp_path)) for path in written)
    committed = sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file())
    assert names == committed
    different = [n for n in names if (tmp_path / n).read_bytes() != (GOLDEN / n).read_bytes()]
    assert different == []


# sdcnn.classify.training trains in float64 and rounds to float32, so the kernel path (AVX-512,
# AVX2, none; oneDNN's or ATen's convolution) only moves float64's last bits; measured:
# identical weights under ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 and natively
# (AVX2), where float32 training differed by up to 0.2 (docs/reproducibility.md). Allowed:
# a few float32 rounding steps of the largest weights, far below what would change a label.
RETRAINED_WEIGHTS_TOLERANCE = 1e-6


@pytest.mark.parametrize("case", [case for case in make_golden.CASES if case.trained])
def test_retraining_a_trained_case_gives_its_committed_weights(case: make_golden.Case) -> None:
    retrained = make_golden.trained_weights(case).tensors
    committed = make_golden.committed_weights(case).tensors
    assert sorted(retrained) == sorted(committed)
    differences = {
        name: float(np.abs(retrained[name] - committed[name]).max()) for name in committed
    }
    worst = max(differences, key=differences.__getitem__)
    assert differences[worst] <= RETRAINED_WEIGHTS_TOLERANCE, (
        f"{case.name}: retrained weights differ from the committed ones by up to "
        f"{differences[worst]:.3g} ({worst}); all: {differences}"
    )
