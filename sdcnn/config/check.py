"""The config, checked before any job runs: one message that names the key.

``check_config`` is what ``rules/common.smk`` calls.  It

1. re-reads the config files Snakemake loaded with a strict YAML loader, because
   Snakemake's loader silently keeps the last of two equal keys;
2. turns the strings Snakemake makes of nested ``--config`` values into the numbers,
   booleans and nulls the schema wants (a value that is none of them names its key);
3. validates the merged config against ``config/schema.yaml`` (the single source
   of the rules) and fills in the schema's defaults, as
   ``snakemake.utils.validate`` does, but turns the most relevant jsonschema
   error into one sentence ("config key generation.height: 100 is not a
   multiple of 8") instead of a dump of the schema;
4. checks what a schema cannot: prompt ids that differ only in case, a local
   model folder that is missing or is not a diffusers pipeline, and a given
   weights file whose header does not fit the labels and tensor shape;
5. reads and checks the real set (``checked_real_images``): every file named, labelled
   and readable, or one message naming the file.

Nothing here imports torch or diffusers, so a bad config fails in a second.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import yaml

from sdcnn.config.values import WEIGHTS_FILE, image_channels, weights_mode

if TYPE_CHECKING:
    from sdcnn.evaluate.real_images import RealImage

MAX_SHOWN_CHARS = 60
MAX_OTHER_PROBLEMS = 5
TOP_LEVEL = "(top level)"  # the key of a problem with the config as a whole

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


class ConfigError(ValueError):
    """A problem with the config, phrased for the user (it names the key or file).

    ``key`` is the config key to change (``classifier.labels``), None where the message
    names a config file instead; ``problem`` is the message less its ``config key <key>: ``
    (the whole message where there is no key).  ``ConfigError.of_key`` writes both.
    """

    def __init__(self, message: str, *, key: str | None = None, problem: str | None = None):
        super().__init__(message)
        self.key = key
        self.problem = message if problem is None else problem

    @classmethod
    def of_key(cls, key: str, problem: str) -> Self:
        """The error ``config key <key>: <problem>``."""
        return cls(f"config key {key}: {problem}", key=key, problem=problem)


# ---- 1. duplicate keys in the config files


# libyaml's loader where PyYAML was built with it: far faster on a large config
# (benchmarks/dry_run_scale.py, RESULTS.md §5)
FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def refuse_duplicate_keys(text: str) -> None:
    """Raise ConstructorError for a key given twice in one YAML mapping.

    PyYAML (and so Snakemake) keeps the last of two equal keys without a word.
    The check walks the composed node tree (no values are constructed), where
    each key's line and its path from the top are known.
    """
    document = yaml.compose(text, Loader=FAST_SAFE_LOADER)
    if document is not None:
        _refuse_duplicate_keys(document, (), set())


def _refuse_duplicate_keys(node: yaml.Node, path: tuple[Any, ...], visited: set[int]) -> None:
    if id(node) in visited:  # an alias seen before
        return
    visited.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, (*path, index), visited)
    if not isinstance(node, yaml.MappingNode):
        return
    first_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            continue  # '<<: *base' followed by a key is YAML's own way to override
        line = key_node.start_mark.line + 1
        if key_node.value in first_lines:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key_name((*path, key_node.value))} is given twice (lines "
                f"{first_lines[key_node.value]} and {line}); YAML would silently keep "
                "only the last one, so remove one of them",
                key_node.start_mark,
            )
        first_lines[key_node.value] = line
        _refuse_duplicate_keys(value_node, (*path, key_node.value), visited)


def _reject_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise ConfigError(f"key {key!r} is given twice; JSON would keep only the last one")
        mapping[key] = value
    return mapping


def check_config_file(path: str | os.PathLike[str]) -> None:
    """Refuse a JSON or YAML config file that gives a key twice.

    Snakemake reads a config file as JSON first, then as YAML; so does this.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        json.loads(text, object_pairs_hook=_reject_duplicate_json_keys)
        return
    except ConfigError as error:
        raise ConfigError(f"config file {path}: {error}") from None
    except ValueError:
        pass  # not JSON: read it as YAML
    try:
        refuse_duplicate_keys(text)
    except yaml.constructor.ConstructorError as error:  # a duplicate key, from above
        raise ConfigError(f"config file {path}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path}: {error}") from None


# ---- 2. values given on the command line


# YAML 1.1's words for true, false and null, as a user types them after --config
_BOOLEANS = {
    **dict.fromkeys(("true", "yes", "on"), True),
    **dict.fromkeys(("false", "no", "off"), False),
}
_NULLS = ("null", "~", "none", "")


def _subschema(schema: Mapping[str, Any], root: Mapping[str, Any], key: Any) -> dict | None:
    """The schema of ``key`` inside ``schema`` (a property, or any entry of a mapping)."""
    if "$ref" in schema:
        schema = {**_resolve(root, schema["$ref"]), **schema}
    properties = schema.get("properties", {})
    if key in properties:
        return properties[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _resolve(root: Mapping[str, Any], reference: str) -> dict[str, Any]:
    node: Any = root
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _coerced(text: str, schema: Mapping[str, Any], root: Mapping[str, Any], key: str) -> Any:
    """``text`` as the type the schema wants (integer, number, boolean, null), or as it is."""
    if "$ref" in schema:
        schema = {**_resolve(root, schema["$ref"]), **schema}
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    word = text.strip().lower()
    if "null" in kinds and word in _NULLS:
        return None
    if "string" in kinds:
        return text
    if "boolean" in kinds and word in _BOOLEANS:
        return _BOOLEANS[word]
    for kind, parse in (("integer", int), ("number", float)):
        if kind in kinds:
            try:
                return parse(text.strip())
            except ValueError:
                pass
    wanted = " or ".join(_TYPE_NAMES.get(kind, kind) for kind in kinds if kind != "null")
    if not wanted:
        return text
    raise ConfigError.of_key(
        key,
        f"{text!r} (given with --config) is not {wanted}"
        f"{' or null' if 'null' in kinds else ''}{_expected(schema)}",
    )


def coerce_command_line(
    config: dict[str, Any], given: Mapping[str, Any], schema: Mapping[str, Any]
) -> dict[str, Any]:
    """Turn the strings of ``--config`` values into what the schema wants, in ``config``.

    Snakemake reads a top-level ``--config key=value`` as a number or boolean where it
    can, but every scalar inside a nested value (``--config 'generation={steps: 5}'``)
    with YAML's BaseLoader, as a string.  Only the values in ``given`` (the command
    line's) are touched: a string written in a config file is still refused.
    """

    def walk(given_node: Any, config_node: Any, schema_node: Any, path: tuple) -> None:
        if not isinstance(given_node, Mapping) or not isinstance(config_node, dict):
            return
        for name, value in given_node.items():
            spec = _subschema(schema_node, schema, name) if schema_node else None
            if spec is None or name not in config_node:
                continue
            if isinstance(value, str):
                config_node[name] = _coerced(value, spec, schema, key_name((*path, name)))
            elif isinstance(value, Mapping):
                walk(value, config_node[name], spec, (*path, name))

    walk(given, config, schema, ())
    return config


# ---- 3. the schema, with defaults and readable messages


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    return _load_schema(str(path))


@functools.cache
def _load_schema(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _defaults_filling_validator(schema: dict[str, Any]) -> Any:
    """A Draft 2020-12 validator that fills in ``default``s while it validates.

    The recipe of the jsonschema FAQ, which ``snakemake.utils.validate`` uses too.
    """
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):  # noqa: ANN001, ANN202
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, _copy(property_schema["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    extended = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return extended(schema)


def _copy(value: Any) -> Any:
    """A fresh copy of a default, so two configs never share a list from the schema."""
    return json.loads(json.dumps(value))


def key_name(path: Iterable[Any]) -> str:
    """``("classifier", "labels", 2)`` -> ``classifier.labels[2]``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _shown(value: Any) -> str:
    """A value as the user wrote it in YAML (null, true), cut to a readable length."""
    text = json.dumps(value) if value is None or isinstance(value, bool) else repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _type_of(value: Any) -> str:
    for name, python_types in (
        ("null", type(None)),
        ("true or false", bool),
        ("an integer", int),
        ("a number", float),
        ("a string", str),
        ("a list", list),
        ("a mapping", dict),
    ):
        if isinstance(value, python_types):
            return name
    return type(value).__name__


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _described(schema: dict[str, Any]) -> str:
    description = schema.get("description", "").strip().rstrip(".")
    return description[:1].lower() + description[1:]


def _expected(schema: dict[str, Any]) -> str:
    return f"; expected {_described(schema)}" if _described(schema) else ""


def _unknown_key_error(error: Any) -> ConfigError:
    known = list(error.schema.get("properties", {}))
    unknown = [key for key in error.instance if key not in known]
    key = key_name([*error.absolute_path, unknown[0]])
    guess = _closest(unknown[0], known)
    hint = f" (did you mean {key_name([*error.absolute_path, guess])}?)" if guess else ""
    where = f"of {key_name(error.absolute_path)} " if error.absolute_path else ""
    return ConfigError.of_key(key, f"unknown key{hint}; the keys {where}are {', '.join(known)}")


def _problem(error: Any) -> str:
    """What is wrong with ``error.instance``, in words, for the usual jsonschema keywords."""
    kind, limit, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        types = [limit] if isinstance(limit, str) else limit
        wanted = " or ".join(_TYPE_NAMES.get(name, name) for name in types)
        got = "is empty (null)" if value is None else f"{_shown(value)} is {_type_of(value)}"
        described = f" ({_described(error.schema)})" if _described(error.schema) else ""
        return f"{got}, expected {wanted}{described}"
    if kind == "required":
        missing = next(name for name in limit if name not in value)
        return f"missing, but required{_expected(error.schema['properties'].get(missing, {}))}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {
            "minimum": "less than the minimum",
            "exclusiveMinimum": "not above",
            "maximum": "more than the maximum",
            "exclusiveMaximum": "not below",
        }[kind]
        return f"{_shown(value)} is {relation} {limit}"
    if kind == "multipleOf":
        return f"{_shown(value)} is not a multiple of {limit}"
    if kind == "enum":
        guess = _closest(value, [str(option) for option in limit])
        hint = f" (did you mean {guess!r}?)" if guess else ""
        options = ", ".join(str(option) for option in limit)
        return f"{_shown(value)} is not one of {options}{hint}"
    if kind == "minLength":
        return f"{_shown(value)} is empty" if not value else f"{_shown(value)} is too short"
    if kind == "maxLength":
        return f"{_shown(value)} is {len(value)} characters long, more than {limit}"
    if kind == "pattern":
        blank = isinstance(value, str) and not value.strip()
        problem = "is empty or blank" if blank else "is not allowed"
        return f"{_shown(value)} {problem}{_expected(error.schema)}"
    if kind == "minItems":
        return f"{_shown(value)} has {len(value)} items, expected at least {limit}"
    if kind == "maxItems":
        return f"{_shown(value)} has {len(value)} items, expected at most {limit}"
    if kind == "uniqueItems":
        repeated = next(item for index, item in enumerate(value) if item in value[:index])
        return f"{_shown(repeated)} appears more than once"
    if kind == "minProperties":
        return f"has {len(value)} entries, expected at least {limit}{_expected(error.schema)}"
    return error.message


def config_error_from(error: Any) -> ConfigError:
    """One jsonschema ``ValidationError`` as the ConfigError ``config key <path>: <problem>``."""
    if error.validator == "additionalProperties" and error.validator_value is False:
        return _unknown_key_error(error)
    path = list(error.absolute_path)
    if "propertyNames" in error.absolute_schema_path:  # a bad name, not a bad value
        return ConfigError.of_key(
            key_name(path) or TOP_LEVEL,
            f"the name {_shown(error.instance)} is not allowed{_expected(error.schema)}",
        )
    if error.validator == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        path.append(missing)
    return ConfigError.of_key(key_name(path) or TOP_LEVEL, _problem(error))


def validate_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fill in the schema's defaults in place; raise ``ConfigError`` with the best message."""
    from jsonschema.exceptions import best_match

    errors = list(_defaults_filling_validator(schema).iter_errors(config))
    if not errors:
        return config
    best = config_error_from(best_match(errors))
    others = sorted(
        {str(config_error_from(error)) for error in errors} - {str(best)},
    )[:MAX_OTHER_PROBLEMS]
    if not others:
        raise best
    listed = "\nother problems:\n" + "\n".join(f"  {other}" for other in others)
    raise ConfigError.of_key(best.key, best.problem + listed)


# ---- 4. what a schema cannot check


def check_prompt_ids(prompts: dict[str, Any]) -> None:
    """Ids become file names: two that differ only in case collide on macOS and Windows."""
    by_folded: dict[str, str] = {}
    for prompt_id in prompts:
        if prompt_id.endswith("\n"):  # the schema's "$" lets one final newline through
            raise ConfigError.of_key("prompts", f"the id {prompt_id!r} ends in a newline")
        other = by_folded.setdefault(prompt_id.casefold(), prompt_id)
        if other != prompt_id:
            raise ConfigError.of_key(
                "prompts",
                f"the ids {other!r} and {prompt_id!r} differ only in case; "
                "their files would be the same on case-insensitive file systems",
            )


def check_model_source(source: str) -> None:
    """A local model folder must exist and be a diffusers pipeline (Hub ids load in the job)."""
    from sdcnn.core.errors import StepError
    from sdcnn.generate.model_source import DEMO, check_local_pipeline, resolve_model_source

    if source == DEMO:
        return
    try:
        if resolve_model_source(source).kind == "local":
            check_local_pipeline(os.path.expanduser(source))  # as written, e.g. ./models/sd
    except StepError as error:
        raise ConfigError.of_key("model.source", str(error)) from None


def check_scheduler_fits(source: str, scheduler: str) -> None:
    """``generation.scheduler`` fits a local model's kind (flow-matching or ε/v), as its
    scheduler_config.json says; a Hub id's is checked in the job, once it is loaded."""
    from sdcnn.generate.families import NO_SIGMAS, read_layout, scheduler_problem
    from sdcnn.generate.model_source import DEMO, DEMO_PIPELINE_DIR, looks_like_path

    if source != DEMO and not looks_like_path(source):
        return
    folder = DEMO_PIPELINE_DIR if source == DEMO else os.path.expanduser(source)
    layout = read_layout(folder)
    if layout is None or layout.scheduler_class is None:
        return
    problem = scheduler_problem(scheduler, layout.scheduler_class, layout.scheduler)
    if problem is not None or scheduler in NO_SIGMAS:
        # the choices named must fit too: diffusers is imported only here, to read whether
        # the pipeline always passes custom sigmas (which some flow schedulers refuse)
        sigmas = pipeline_passes_sigmas(layout.class_name)
        problem = scheduler_problem(
            scheduler, layout.scheduler_class, layout.scheduler, sigmas=sigmas
        )
    if problem is not None:
        raise ConfigError.of_key(
            "generation.scheduler",
            f"{problem.removeprefix('generation.scheduler ')} (model.source {source!r})",
        )


def pipeline_passes_sigmas(class_name: str) -> bool:
    """Whether the diffusers pipeline class ``class_name`` always passes custom sigmas (its
    module is imported: only asked for a scheduler that cannot take them)."""
    import diffusers

    from sdcnn.generate.families import passes_sigmas

    return passes_sigmas(getattr(diffusers, class_name, None))


def check_weights_file(path: str, labels: Sequence[str], channels: int, size: int) -> None:
    """A given weights file fits the labels and tensors; only its header is read."""
    from sdcnn.classify.weights import IncompatibleWeights, check_compatible, read_header
    from sdcnn.core.errors import StepError

    try:
        header = read_header(path)
    except StepError as error:
        raise ConfigError.of_key("classifier.weights", str(error)) from None
    try:
        check_compatible(header, path, labels, (channels, size, size))
    except IncompatibleWeights as error:
        raise ConfigError.of_key(error.key, error.problem) from None


def checked_real_images(
    source: str | os.PathLike[str], labels: Sequence[str], check: str
) -> list[RealImage]:
    """The real set at ``source`` (``evaluation.real``, the demo's resolved to its folder),
    checked as ``check`` says (``read_real_images``); a problem names the key and file."""
    from sdcnn.evaluate.real_images import RealImageError, read_real_images

    try:
        return read_real_images(Path(source).expanduser(), labels, check=check)
    except RealImageError as error:
        raise ConfigError.of_key("evaluation.real", str(error)) from None


def config_problems_beyond_schema(config: dict[str, Any]) -> None:
    if isinstance(config["prompts"], dict):  # a sheet's ids are checked as it is read
        check_prompt_ids(config["prompts"])
    check_model_source(config["model"]["source"])
    check_scheduler_fits(config["model"]["source"], config["generation"]["scheduler"])
    classifier, preprocess = config["classifier"], config["preprocess"]
    if weights_mode(classifier["weights"]) == WEIGHTS_FILE:  # a file of the user's
        check_weights_file(
            classifier["weights"],
            classifier["labels"],
            channels=image_channels(preprocess),
            size=preprocess["size"],
        )


def check_config(
    config: dict[str, Any],
    schema_path: str | os.PathLike[str],
    config_files: Iterable[str | os.PathLike[str]] = (),
    command_line: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything above, in order; the config gains its defaults. Raises ``ConfigError``.

    ``command_line``: the values given with ``--config``, whose strings are coerced.
    """
    for path in _unique(config_files):
        check_config_file(path)
    schema = load_schema(schema_path)
    if command_line:
        coerce_command_line(config, command_line, schema)
    validate_config(config, schema)
    config_problems_beyond_schema(config)
    return config


def _unique(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    seen = set()
    for path in paths:
        resolved = Path(path).resolve()
        if resolved not in seen:
            seen.add(resolved)
            yield Path(path)
