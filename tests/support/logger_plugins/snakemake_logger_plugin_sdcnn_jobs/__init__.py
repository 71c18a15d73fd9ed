"""A Snakemake logger plugin for the tests: the jobs a run plans, as JSON lines.

Snakemake 9 has no command that prints the jobs a run would execute in a machine-readable
form (``--dag`` and ``--d3dag`` draw every job, done or not; ``--summary`` lists files);
what it has is the structured log records its logger plugins receive.  This plugin
writes two of them to ``--logger-sdcnn-jobs-path``, one JSON object a line:

    {"event": "job_info", "rule": "generate", "wildcards": {"shard": "1-of-2"}}
    {"event": "run_info", "stats": {"generate": 2, ..., "total": 9}}

``job_info``: one a job the run (or dry run) will execute; ``run_info``: Snakemake's job
counts per rule.  Snakemake finds the plugin by its package name
(``snakemake_logger_plugin_*``) on ``sys.path``: tests.support.runs puts this folder on
the run's PYTHONPATH, and ``--logger sdcnn-jobs`` turns it on.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    # a real type, not a string: Snakemake makes the CLI option from it
    path: Optional[str] = field(  # noqa: UP045 (Snakemake reads typing.Optional only)
        default=None,
        metadata={"help": "the JSON-lines file to write the planned jobs to", "required": True},
    )


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        if self.settings is None or not self.settings.path:
            raise ValueError("--logger sdcnn-jobs needs --logger-sdcnn-jobs-path")
        self._file = open(self.settings.path, "w", encoding="utf-8")  # noqa: SIM115

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event == LogEvent.JOB_INFO:
            line = {
                "event": "job_info",
                "rule": record.rule_name,
                "wildcards": {key: str(value) for key, value in record.wildcards.items()},
            }
        elif event == LogEvent.RUN_INFO and hasattr(record, "stats"):
            line = {"event": "run_info", "stats": dict(record.stats)}
        else:
            return
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False  # Snakemake would list it as the run's log file

    @property
    def has_filter(self) -> bool:
        return True  # every record, whatever --quiet says

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
