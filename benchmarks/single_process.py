"""The default pipeline's work in ONE Python process: the baseline of pipeline_overhead.py.

    python benchmarks/single_process.py WORKDIR

Reads WORKDIR/config/config.yaml, fills in the schema's defaults, and calls the same
package functions as the workflow's scripts, in order, with the same arguments, writing
WORKDIR/results/. No Snakemake, one interpreter, every library imported once; no image
store (pipeline_overhead.py turns it off for the workflow too). Its data outputs must be
byte-identical to the workflow's: pipeline_overhead.py checks that they are.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sdcnn.core.environment import pin_threads, set_hub_mode  # noqa: E402

DIVERSITY_KEYS = ("hash", "max_hamming", "min_mean_distance", "max_duplicate_share")


def main(workdir: Path) -> None:
    os.chdir(workdir)  # outputs record relative paths, as in the workflow
    import yaml

    from sdcnn.config.check import load_schema, validate_config

    schema = load_schema(REPO / "config" / "schema.yaml")
    config = validate_config(yaml.safe_load(Path("config/config.yaml").read_text()), schema)
    gen, model, pre, clf = (config[k] for k in ("generation", "model", "preprocess", "classifier"))
    assert model["source"] == "demo" and clf["backend"] != "flux"
    assert clf["weights"] in (None, "glorot", "trained")
    pin_threads(gen["threads"])
    set_hub_mode(offline=True)

    from dataclasses import asdict

    from sdcnn.classify.prediction import predict_shard, with_truth
    from sdcnn.classify.training import (
        LabelledPrompts,
        TrainingOutputs,
        TrainingSettings,
        train_classifier,
    )
    from sdcnn.classify.weights import init_weights, save_weights
    from sdcnn.config.prompts import PromptRules, load_prompts
    from sdcnn.core.fileio import write_json_atomic
    from sdcnn.core.naming import image_ids
    from sdcnn.core.provenance import config_sha256, output_config
    from sdcnn.core.shards import ShardLayout, assign_shards, quota, shard_batches
    from sdcnn.demo.real_set import DEMO_REAL, demo_real_folder
    from sdcnn.evaluate.diversity import DiversitySettings, shard_diversity
    from sdcnn.evaluate.diversity_results import merge_documents
    from sdcnn.evaluate.real_images import read_real_images, shard_real_images
    from sdcnn.evaluate.real_prediction import predict_real_shard
    from sdcnn.evaluate.real_shard import preprocess_real_shard
    from sdcnn.evaluate.scores import RealCounts
    from sdcnn.export.webdataset_tars import write_shard_dataset
    from sdcnn.generate.model_source import resolve_model_source
    from sdcnn.generate.pipeline import GenerationSettings, PromptSpec
    from sdcnn.generate.safety_checker import with_verdicts
    from sdcnn.generate.shard_generator import generate_shard
    from sdcnn.preprocess.image_to_tensor import preprocess_shard
    from sdcnn.reporting.figures import (
        write_evaluation_figure,
        write_shard_figures,
        write_training_figures,
    )
    from sdcnn.reporting.manifest import write_manifest
    from sdcnn.reporting.pages import write_run_info, write_summary_page
    from sdcnn.reporting.summary import write_summary

    prompts = load_prompts(config["prompts"], PromptRules.from_schema(schema, clf["labels"]))
    shards = assign_shards(prompts, config["shards"])
    layout = ShardLayout(config["shards"] is not None)
    results = "results"
    settings = GenerationSettings.from_config(gen)
    model_source = resolve_model_source("demo")
    preprocess = {key: pre[key] for key in ("size", "grayscale", "interpolation")}
    fields = ("text", "negative_prompt", "n_images")
    specs = {
        shard: [PromptSpec(prompt_id=pid, **{k: prompts[pid][k] for k in fields}) for pid in ids]
        for shard, ids in shards.items()
    }
    folder = {
        (kind, shard): f"{results}/{kind}/{shard}"
        for kind in ("images", "tensors", "previews", "charts")
        for shard in shards
    }
    data_outputs = []
    diversity = {}
    evaluation = config["evaluation"]
    diversity_settings = DiversitySettings(
        **{k: evaluation["diversity"][k] for k in DIVERSITY_KEYS}
    )
    for shard, shard_specs in specs.items():  # generate and preprocess every shard
        generate_shard(
            output_dir=folder["images", shard],
            prompts=shard_specs,
            layout=layout,
            settings=settings,
            model=model_source,
            allow_download=False,
            gpus=0,
            store=None,
        )
        preprocess_shard(
            folder["images", shard],
            folder["tensors", shard],
            folder["previews", shard],
            {spec.prompt_id: image_ids(spec.prompt_id, spec.n_images) for spec in shard_specs},
            layout,
            **preprocess,
            threads=pre["threads"],
        )
        data_outputs += [folder[kind, shard] for kind in ("images", "tensors", "previews")]
        counts = {spec.prompt_id: spec.n_images for spec in shard_specs}
        diversity[shard] = shard_diversity(
            folder["tensors", shard], counts, layout, diversity_settings
        )
        write_json_atomic(f"{results}/diversity/{shard}.json", diversity[shard])
    if clf["weights"] == "trained":  # then train on the labelled prompts
        weights_path = f"{results}/weights/trained.safetensors"
        labelled = [
            {
                "prompt_id": pid,
                "label": prompts[pid]["label"],
                "n_images": prompts[pid]["n_images"],
                "shard": shard,
            }
            for shard, ids in shards.items()
            for pid in ids
            if prompts[pid]["label"] is not None
        ]
        metrics = train_classifier(
            LabelledPrompts(
                {shard: folder["tensors", shard] for shard in shards},
                labelled,
                clf["labels"],
                layout,
            ),
            TrainingSettings.from_config(config["training"]),
            TrainingOutputs(weights_path, f"{results}/training/metrics.json"),
        )
        write_training_figures(
            metrics, f"{results}/training/curve.png", f"{results}/training/confusion_matrix.png"
        )
    else:
        weights_path = f"{results}/weights/glorot.safetensors"
        architecture = {
            "in_channels": 1 if pre["grayscale"] else 3,
            "image_size": pre["size"],
            "n_labels": len(clf["labels"]),
        }
        save_weights(weights_path, init_weights(**architecture, seed=clf["weights_seed"]))
    data_outputs.append(weights_path)
    truth = {
        "labels": {pid: prompts[pid]["label"] for pid in prompts},
        "holdout_every": config["training"]["holdout_every"],
    }
    predictions = []
    for shard, shard_specs in specs.items():  # then predict and draw every shard
        counts = {spec.prompt_id: spec.n_images for spec in shard_specs}
        prediction = f"{results}/predictions/{shard}" + ("" if layout.sharded else ".json")
        sheet = f"{results}/contact_sheets/{shard}" + ("" if layout.sharded else ".png")
        batches = shard_batches(folder["tensors", shard], counts, layout)
        predict_shard(
            backend="torch",
            batches=with_truth(with_verdicts(batches, folder["images", shard], layout), truth),
            weights_path=weights_path,
            labels=clf["labels"],
            output=prediction,
            layout=layout,
            gpus=0,
            threads=clf["threads"],
            julia_project=REPO / "julia",
        )
        figures, n_shards = config["figures"], config["shards"]
        index = int(shard.split("-of-")[0]) - 1 if layout.sharded else 0  # as the workflow
        share = {
            key: quota(figures[key], index, n_shards) if layout.sharded else figures[key]
            for key in ("charts", "contact_sheets")
        }
        write_shard_figures(
            prompts=[asdict(spec) for spec in shard_specs],
            layout=layout,
            predictions=prediction,
            image_dir=folder["images", shard],
            preview_dir=folder["previews", shard],
            charts_dir=folder["charts", shard],
            contact_sheets=sheet,
            charts=share["charts"],
            sheets=share["contact_sheets"],
            sheet_images=figures["sheet_images"],
            diversity=diversity[shard],
        )
        write_shard_dataset(
            prompts=[asdict(spec) for spec in shard_specs],
            layout=layout,
            predictions=prediction,
            image_dir=folder["images", shard],
            output_path=f"{results}/dataset/{shard}.tar",
        )
        predictions.append(prediction)
    real_predictions = []  # the real images (evaluation.real), in their own shards
    source = evaluation["real"]
    if source is not None:
        images = read_real_images(
            demo_real_folder() if source == DEMO_REAL else source, clf["labels"], check="decode"
        )
        for shard, shard_images in shard_real_images(images, evaluation["shards"]).items():
            tensors = f"{results}/real/tensors/{shard}"
            preprocess_real_shard(
                {image.image_id: image.path for image in shard_images},
                tensors,
                **preprocess,
                threads=pre["threads"],
            )
            output = f"{results}/real/predictions/{shard}.json"
            predict_real_shard(
                {i.image_id: {"path": i.relative, "label": i.label} for i in shard_images},
                tensors,
                output,
                shard=shard,
                backend="torch",
                weights_path=weights_path,
                labels=clf["labels"],
                gpus=0,
                threads=clf["threads"],
                julia_project=REPO / "julia",
            )
            data_outputs.append(tensors)
            real_predictions.append(output)
    sections = write_summary(
        predictions,
        f"{results}/summary.csv",
        f"{results}/summary.json",
        list(prompts),
        diversity=merge_documents(diversity.values(), list(prompts)),
        real=RealCounts.from_documents(
            json.loads(Path(path).read_text(encoding="utf-8")) for path in real_predictions
        ),
    )
    config_for_outputs = output_config(config)
    data_outputs += [*predictions, *real_predictions, f"{results}/summary.csv"]
    data_outputs += [f"{results}/summary.json", *(f"{results}/diversity/{s}.json" for s in shards)]
    if sections["evaluation"] is not None:
        write_json_atomic(f"{results}/evaluation/metrics.json", sections["evaluation"])
        write_evaluation_figure(
            sections["evaluation"], f"{results}/evaluation/confusion_matrix.png"
        )
        data_outputs.append(f"{results}/evaluation/metrics.json")
    write_manifest(
        f"{results}/manifest.json",
        data_outputs,
        predictions,
        config_sha256({**config_for_outputs, "prompts": prompts}),
    )
    write_summary_page(f"{results}/summary.csv", f"{results}/summary.html")
    write_run_info(config_for_outputs, f"{results}/manifest.json", f"{results}/run_info.html")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
