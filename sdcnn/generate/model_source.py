"""Where a text-to-image model comes from: the shipped demo, a local diffusers folder or a
Hugging Face Hub id, checked before anything loads."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from sdcnn.core.errors import StepError
from sdcnn.generate.families import ModelLayout, native_side, read_layout

log = logging.getLogger(__name__)


DEMO = "demo"
# The offline default: a tiny Stable Diffusion pipeline trained by the project on pictures
# of coloured shapes (sdcnn/demo/training.py), shipped with the package, loaded like any
# checkpoint folder.
DEMO_PIPELINE_DIR = Path(__file__).resolve().parents[1] / "demo" / "assets" / "demo-pipeline"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
HUB_PROBE_TIMEOUT_S = 5.0  # one request, no retries, before going online


@dataclass(frozen=True)
class ModelSource:
    """Where a pipeline comes from: ``kind`` is ``demo``, ``local`` or ``hub``."""

    kind: str
    location: str  # a folder for demo and local, a repository id for hub
    name: str  # the config's value, recorded in every PNG


def looks_like_path(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().exists()


def resolve_model_source(source: str, demo_dir: str | Path = DEMO_PIPELINE_DIR) -> ModelSource:
    """Classify the config's ``model.source``: ``demo``, a local folder, or a Hub id."""
    if source == DEMO:
        return ModelSource(DEMO, str(demo_dir), DEMO)
    if looks_like_path(source):
        return ModelSource("local", str(Path(source).expanduser()), source)
    if HUB_ID.match(source):
        return ModelSource("hub", source, source)
    raise StepError(
        f"model.source {source!r} is neither 'demo', an existing local folder, "
        "nor a Hugging Face id of the form 'organisation/name' "
        "(write a local folder as ./path or /path)"
    )


def _download_advice(folder: str) -> str:
    return (
        f"download a pipeline with 'hf download <organisation/name> --local-dir {folder}' "
        "on a machine with network access, or set model.source: demo"
    )


def check_local_pipeline(folder: str) -> None:
    """A local model folder exists and holds a complete diffusers pipeline.

    Complete means: ``model_index.json`` is a JSON object and every component it
    lists (``unet``, ``vae``, ``text_encoder``, ...) has a non-empty folder.
    """
    path = Path(folder)
    if not path.exists():
        raise StepError(
            f"model folder {folder!r} does not exist (relative to {Path.cwd()}); "
            + _download_advice(folder)
        )
    if not path.is_dir():
        raise StepError(
            f"model.source {folder!r} is a file; point it at the folder that holds "
            "model_index.json (a diffusers pipeline saved with save_pretrained)"
        )
    index_path = path / "model_index.json"
    if not index_path.is_file():
        inside = sorted(str(index.parent) for index in path.glob("*/model_index.json"))
        hint = f"; did you mean {inside[0]!r}?" if inside else ""
        raise StepError(
            f"model folder {folder!r} is not a diffusers pipeline (it has no model_index.json)"
            f"{hint}; save one with pipeline.save_pretrained(folder) or " + _download_advice(folder)
        )
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise StepError(f"{index_path} is not valid JSON ({error}); download it again") from None
    if not isinstance(index, dict):
        raise StepError(f"{index_path} is not a JSON object; download the pipeline again")
    components = [
        name
        for name, entry in index.items()
        if not name.startswith("_") and isinstance(entry, list) and None not in entry
    ]
    missing = [
        name
        for name in components
        if not (path / name).is_dir() or not any((path / name).iterdir())
    ]
    if missing:
        raise StepError(
            f"model folder {folder!r} is incomplete: model_index.json lists "
            f"{', '.join(missing)}, but their folders are missing or empty; "
            + _download_advice(folder)
        )


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_unreachable_reason(repo_id: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Ask the Hub about ``repo_id`` once, without retries: ``None`` when it answers, else why not.

    ``from_pretrained`` retries a failed connection before it gives up; this one
    request, with a short timeout, tells sooner whether to go online at all.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except HfHubHTTPError:
        return None  # the Hub answered (not found, gated, ...): from_pretrained says what
    except Exception as error:  # DNS, refused, timeout, proxy: all mean "offline" here
        return f"{type(error).__name__}: {error}"
    return None


def check_model_available(model: ModelSource, *, allow_download: bool) -> str | None:
    """Fail at once, before diffusers is imported, for a model that cannot load.

    A local folder must be a complete pipeline.  A Hub id must be in the local
    cache unless downloads are allowed; then the Hub is asked once, and when it
    cannot be reached the cache must hold the model.  Returns why the Hub is
    unreachable (``None`` when it is reachable or not needed).
    """
    if model.kind != "hub":
        check_local_pipeline(model.location)
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(model.location, "model_index.json"), str)
    unreachable = hub_unreachable_reason(model.location) if allow_download else None
    if not cached and (not allow_download or unreachable is not None):
        missing = FileNotFoundError(f"{model.location}: model_index.json is not in the cache")
        raise hub_error(model, missing, allow_download=allow_download, unreachable=unreachable)
    return unreachable


def hub_error(
    model: ModelSource,
    error: Exception,
    *,
    allow_download: bool = False,
    unreachable: str | None = None,
) -> StepError:
    """An actionable message for a Hub id that could not be loaded."""
    text = str(error).strip()
    cause = f"{type(error).__name__}: {text.splitlines()[0] if text else 'no details'}"
    local_dir = f"./models/{model.location}"
    fix = (
        f"download it once with 'hf download {model.location} --local-dir {local_dir}' on a "
        f"machine with network access and set model.source: {local_dir}"
    )
    if not allow_download:
        problem = (
            f"model.source {model.name!r} is not (completely) in the local Hugging Face cache "
            f"{_hub_cache()} ({cause}) and downloads are off (model.allow_download: false). "
            f"To fix: {fix}; or set model.allow_download: true on a machine that can reach the Hub"
        )
    elif unreachable is not None:
        problem = (
            f"model.source {model.name!r}: the Hugging Face Hub cannot be reached ({unreachable}) "
            f"and the model is not (completely) in the local cache {_hub_cache()}. "
            f"Check the network (or HF_ENDPOINT and the proxy settings), or {fix}"
        )
    else:
        problem = (
            f"model.source {model.name!r} could not be loaded from the Hugging Face Hub "
            f"({cause}). Check the id at https://huggingface.co/{model.location}; for a gated "
            "model accept its licence there and log in with 'hf auth login'"
        )
    if Path(model.location.split("/")[0]).is_dir():
        problem += (
            f". If you meant a local folder: {model.location!r} does not exist under {Path.cwd()}"
        )
    return StepError(problem)


def model_folder(model: ModelSource) -> Path | None:
    """The local folder of a model: itself, or a Hub model's cached snapshot."""
    if model.kind != "hub":
        return Path(model.location)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model.location, local_files_only=True))
    except Exception:  # noqa: BLE001 (not cached: the size is known once it is loaded)
        return None


def model_layout(model: ModelSource) -> ModelLayout | None:
    """The pipeline class and component configs of a model, read from its folder (a Hub
    model's cached snapshot); None when there is no folder to read yet."""
    return read_layout(model_folder(model))


def native_size(model: ModelSource) -> int | None:
    """The image side a pipeline draws by default, from its configs alone (nothing loaded):
    its default sample size times its VAE's scale factor (``families.native_side``)."""
    layout = model_layout(model)
    return None if layout is None else native_side(layout)
