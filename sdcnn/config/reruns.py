"""What a change of each config key re-runs: the ``x-reruns`` of config/schema.yaml.

Every leaf key of the schema declares the rules whose jobs run again when its value
changes (``x-reruns``), and may say more (``x-reruns-note``).  A per-shard rule
(generate, preprocess, diversity, predict, figures, dataset) means every shard's job, and
``rule@shard`` only the job of the changed prompt's shard; a per-real-shard rule
(preprocess_real, predict_real) every shard of the real images (evaluation.real) there is.
The README's "you change / what runs again" table is made from these declarations
(``python -m sdcnn.config.reruns`` prints it), and tests/workflow/test_reruns.py checks
every one of them with a real dry run, so the table, the schema and the workflow cannot
drift apart.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdcnn.config.check import key_name, load_schema

PER_PROMPT = "prompts"  # the keys under it are a prompt's own
ALL_PROMPTS = "*"  # stands for any prompt id in a key's path
# the order the table names rules in: the order they run
RULE_ORDER = (
    "init_weights",
    "instantiate_julia",
    "generate",
    "preprocess",
    "diversity",
    "preprocess_real",
    "training_plan",
    "train_classifier",
    "predict",
    "predict_real",
    "figures",
    "dataset",
)
# one job per shard of the prompts
SHARD_RULES = ("generate", "preprocess", "diversity", "predict", "figures", "dataset")
REAL_SHARD_RULES = ("preprocess_real", "predict_real")  # one job per shard of the real images
ITS_SHARD = "@shard"  # "generate@shard": only the changed prompt's shard


@dataclass(frozen=True)
class Effect:
    """What re-runs when one config key changes."""

    key: tuple[str, ...]  # e.g. ("generation", "steps") or ("prompts", "*", "text")
    rules: tuple[str, ...]  # rule names, a per-shard one maybe with ITS_SHARD
    note: str | None = None

    @property
    def name(self) -> str:
        return key_name(self.key)

    @property
    def per_prompt(self) -> bool:
        return self.key[0] == PER_PROMPT and len(self.key) > 1


def leaf_keys(schema: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every key a user can set, with its schema: the leaves of the config's tree.

    ``prompts`` is a leaf itself (a sheet's path) and the parent of each prompt's keys.
    """
    for name, spec in schema["properties"].items():
        if spec.get("properties") and spec.get("type") == "object":
            for key, child_spec in leaf_keys(spec):  # a section (evaluation.diversity.hash)
                yield (name, *key), child_spec
            continue
        yield (name,), spec
        item = spec.get("additionalProperties")
        if isinstance(item, dict) and "properties" in item:
            for child, child_spec in item["properties"].items():
                yield (name, ALL_PROMPTS, child), child_spec


def _rule(declared: str) -> str:
    return declared.removesuffix(ITS_SHARD)


class UndeclaredEffect(ValueError):
    """A schema key without ``x-reruns``."""


def declared_effects(schema: Mapping[str, Any]) -> list[Effect]:
    """Each leaf key's effect, in the schema's order; a key without one is an error."""
    effects, undeclared = [], []
    for key, spec in leaf_keys(schema):
        if "x-reruns" not in spec:
            undeclared.append(key_name(key))
            continue
        unknown = [rule for rule in spec["x-reruns"] if _rule(rule) not in RULE_ORDER]
        if unknown:
            raise UndeclaredEffect(f"{key_name(key)}: x-reruns names unknown rules {unknown}")
        rules = tuple(sorted(spec["x-reruns"], key=lambda rule: RULE_ORDER.index(_rule(rule))))
        effects.append(Effect(key, rules, spec.get("x-reruns-note")))
    if undeclared:
        raise UndeclaredEffect(
            "config keys without a declared effect (x-reruns in config/schema.yaml): "
            + ", ".join(undeclared)
        )
    return effects


def _scope(declared: str) -> str:
    if _rule(declared) in REAL_SHARD_RULES:
        return " of every real shard"
    if _rule(declared) not in SHARD_RULES:
        return ""
    return " of its shard" if declared.endswith(ITS_SHARD) else " of every shard"


def _what_runs(effect: Effect) -> str:
    """The rules in the order they run, consecutive ones of one scope named together."""
    groups: list[tuple[str, list[str]]] = []
    for declared in effect.rules:
        scope = _scope(declared)
        if groups and groups[-1][0] == scope:
            groups[-1][1].append(_rule(declared))
        else:
            groups.append((scope, [_rule(declared)]))
    text = "; ".join(", ".join(rules) + scope for scope, rules in groups) or "nothing"
    return f"{text} — {effect.note}" if effect.note else text


def rerun_table(schema: Mapping[str, Any]) -> str:
    """The README's table: keys with the same effect share a row, in the schema's order."""
    rows: dict[str, list[str]] = {}
    for effect in declared_effects(schema):
        rows.setdefault(_what_runs(effect), []).append(f"`{effect.name}`")
    lines = ["| you change | what runs again |", "| --- | --- |"]
    lines += [f"| {', '.join(keys)} | {what} |" for what, keys in rows.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Print the README's re-run table.")
    default = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
    parser.add_argument("--schema", type=Path, default=default)
    print(rerun_table(load_schema(parser.parse_args().schema)), end="")


if __name__ == "__main__":
    main()
