"""Made-up prediction documents of four labels, shared by the tests of the figures and the
report pages (tests/unit/reporting/test_figures.py, tests/unit/reporting/test_pages.py)."""

from __future__ import annotations

LABELS = ["cat", "dog", "ship", "truck"]


def probabilities(*values: float) -> dict[str, float]:
    return dict(zip(LABELS, values, strict=True))


def document(prompt_id: str, rows: list[dict[str, float]]) -> dict:
    images = []
    for index, probs in enumerate(rows):
        top = max(probs, key=probs.get)
        images.append(
            {
                "image_id": f"{prompt_id}_{index:03d}",
                "probabilities": probs,
                "top_label": top,
                "top_probability": probs[top],
            }
        )
    return {"prompt_id": prompt_id, "labels": LABELS, "images": images}
