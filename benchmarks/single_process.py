"""The default pipeline's work in ONE Python process: the baseline of pipeline_overhead.py.

    python benchmarks/single_process.py WORKDIR

Reads WORKDIR/config/config.yaml, fills in the schema's defaults, and calls the same
package functions as the workflow's scripts, in order, with the same arguments, writing
WORKDIR/results/. No Snakemake, one interpreter, every library imported once; no image
store (pipeline_overhead.py turns it off for the workflow too). Its data outputs must be
byte-identical to the workflow's: pipeline_overhead.py checks that they are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sdcnn.step import pin_threads, set_hub_mode  # noqa: E402


def main(workdir: Path) -> None:
    os.chdir(workdir)  # outputs record relative paths, as in the workflow
    import yaml

    from sdcnn.configcheck import load_schema, validate_config

    config = validate_config(
        yaml.safe_load(Path("config/config.yaml").read_text()),
        load_schema(REPO / "config" / "schema.yaml"),
    )
    gen, model, pre, clf = (config[k] for k in ("generation", "model", "preprocess", "classifier"))
    assert model["source"] == "demo" and clf["backend"] != "flux" and not clf["weights"]
    pin_threads(gen["threads"])
    set_hub_mode(offline=True)

    from sdcnn.demo_model import save_demo_pipeline
    from sdcnn.generation import (
        GenerationSettings,
        PromptSpec,
        generate_prompt,
        resolve_model_source,
    )
    from sdcnn.manifest import write_manifest
    from sdcnn.naming import image_ids
    from sdcnn.pages import write_run_info, write_summary_page
    from sdcnn.plots import write_contact_sheet, write_probability_charts
    from sdcnn.prediction import predict_prompt
    from sdcnn.preprocessing import preprocess_prompt
    from sdcnn.provenance import config_sha256
    from sdcnn.seeds import image_seeds
    from sdcnn.summary import write_summary
    from sdcnn.weights import init_weights, save_weights

    results = "results"
    demo_dir, weights_path = f"{results}/models/demo", f"{results}/weights/cnn.safetensors"
    save_demo_pipeline(demo_dir, seed=model["demo_seed"])
    architecture = {
        "in_channels": 1 if pre["grayscale"] else 3,
        "image_size": pre["size"],
        "n_labels": len(clf["labels"]),
    }
    save_weights(weights_path, init_weights(**architecture, seed=clf["weights_seed"]))
    settings = GenerationSettings(
        **{key: gen[key] for key in ("steps", "guidance_scale", "height", "width", "scheduler")}
    )
    predictions = []
    for prompt_id, prompt in config["prompts"].items():
        stems = image_ids(prompt_id, prompt["n_images"])
        spec = PromptSpec(
            prompt_id=prompt_id, **{k: prompt[k] for k in ("text", "negative_prompt", "n_images")}
        )
        images, tensors = f"{results}/images/{prompt_id}", f"{results}/tensors/{prompt_id}"
        previews = f"{results}/previews/{prompt_id}"
        prediction = f"{results}/predictions/{prompt_id}.json"
        generate_prompt(
            output_dir=images, prompt=spec,
            seeds=image_seeds(gen["base_seed"], prompt_id, prompt["n_images"]),
            settings=settings, model=resolve_model_source("demo", demo_dir=demo_dir),
            allow_download=False, gpus=0, threads=gen["threads"], precision=gen["precision"],
            store=None,
        )  # fmt: skip
        preprocess_prompt(
            images, tensors, previews, stems,
            **{key: pre[key] for key in ("size", "grayscale", "interpolation")},
            threads=pre["threads"],
        )  # fmt: skip
        predict_prompt(
            backend="torch", prompt_id=prompt_id, tensor_dir=tensors, image_ids=stems,
            weights_path=weights_path, labels=clf["labels"], output_path=prediction,
            gpus=0, threads=clf["threads"], julia_project=REPO / "julia",
        )  # fmt: skip
        write_probability_charts(prediction, f"{results}/charts/{prompt_id}", stems)
        write_contact_sheet(
            prompt_id=prompt_id, prompt_text=prompt["text"],
            negative_prompt=prompt["negative_prompt"], predictions_path=prediction,
            image_dir=images, preview_dir=previews, image_ids=stems,
            output_path=f"{results}/contact_sheets/{prompt_id}.png",
        )  # fmt: skip
        predictions.append(prediction)
    write_summary(predictions, f"{results}/summary.csv", f"{results}/summary.json")
    output_config = {key: value for key, value in config.items() if key != "store"}
    data_outputs = [demo_dir, weights_path]
    for prompt_id in config["prompts"]:
        data_outputs += [
            f"{results}/{kind}/{prompt_id}" for kind in ("images", "tensors", "previews")
        ]
    data_outputs += [*predictions, f"{results}/summary.csv", f"{results}/summary.json"]
    write_manifest(
        f"{results}/manifest.json", data_outputs, predictions, config_sha256(output_config)
    )
    write_summary_page(f"{results}/summary.json", f"{results}/summary.html")
    write_run_info(output_config, f"{results}/manifest.json", f"{results}/run_info.html")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
