"""The workflow on a real SLURM cluster on localhost, through profiles/slurm.

``tests/slurm/local_cluster.sh`` installs (apt-get) and starts munged, MariaDB, slurmdbd,
slurmctld and slurmd with two fake GPUs; the module fixture starts it once and always
stops it. The demo pipeline then runs through ``--profile profiles/slurm`` exactly as a
user would run it on a cluster, and must give the same bytes as a local run. Where the
machine cannot host the cluster (not root, no apt-get) every test here is skipped.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdcnn.core.shards import assign_shards
from tests.support.configs import (
    SHARDED_CONFIG,
    SHEET_PROMPTS,
    SMALL_CONFIG,
    sheet_rows,
    write_sheet,
)
from tests.support.job_plan import LOGGER_PLUGINS, JobPlan, job_log_arguments, read_job_plan
from tests.support.real_sets import SMALL_REAL_SHARDS
from tests.support.runs import result_files, run_snakemake
from tests.support.workspace import REPO, copy_workflow

pytestmark = [pytest.mark.pipeline, pytest.mark.slurm]

CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "local_cluster.sh"
GPU_RULES = ("generate", "predict", "predict_real")
REAL_SHARDS = list(SMALL_REAL_SHARDS)  # the sharded run's real images (SMALL_CONFIG's)
# What every run here adds to the profile: snakemake's defaults are made for real clusters
# (first status check after 40 s); --verbose prints each sbatch call.
SLURM_ARGS = (
    "--profile",
    "profiles/slurm",
    "--workflow-profile",
    "none",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--verbose",
    # the local cluster's GPUs are gres entries without CUDA: its GPU jobs may run on its
    # CPUs only because this says so (the default, fail, stops them: tests/workflow/test_gpu_run.py)
    "--config",
    "gpu_fallback=cpu",
)
# Bounds, not expectations: a run past them is a hang (several times what the runs take
# on 2 busy cores).
PIPELINE_TIMEOUT = 600
FAILURE_TIMEOUT = 240


def why_no_cluster() -> str | None:
    if os.geteuid() != 0:
        return "it must run as root (it installs packages and starts system daemons)"
    for tool in ("apt-get", "dpkg-query", "setsid", "timeout"):
        if shutil.which(tool) is None:
            return f"{tool} is not available (the cluster script needs Debian or Ubuntu)"
    return None


def free_port_base() -> int:
    """Four consecutive free ports on 127.0.0.1 for slurmctld, slurmd, slurmdbd, MariaDB,
    below Linux's ephemeral range (32768-60999), which outgoing connections take from."""
    for _ in range(50):
        base = random.randrange(20000, 32000)
        try:
            for port in range(base, base + 4):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("found no four consecutive free ports on 127.0.0.1")


@dataclass(frozen=True)
class Cluster:
    state: Path
    env: dict[str, str]  # the environment in which snakemake and SLURM's clients find it

    def script(self, *args: str, timeout: float = 900) -> None:
        result = subprocess.run(
            ["bash", str(CLUSTER_SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"local_cluster.sh {' '.join(args)} exited {result.returncode}\n{result.stderr}"
            )

    def client(self, *command: str) -> str:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env=self.env,
        ).stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = why_no_cluster()
    if reason:
        pytest.skip(f"no local SLURM cluster: {reason}")
    state = tmp_path_factory.mktemp("slurm")
    env = {
        **os.environ,
        "SLURM_LOCAL_PORT_BASE": str(free_port_base()),
        "SLURM_CONF": str(state / "etc" / "slurm.conf"),
        "PATH": f"{state / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    cluster = Cluster(state, env)
    try:
        cluster.script("start", str(state))  # apt-get included on a fresh machine
        yield cluster
    finally:
        cluster.script("stop", str(state), timeout=300)
        shutil.rmtree(state / "mariadb", ignore_errors=True)  # 100+ MB; the logs stay


@dataclass(frozen=True)
class SlurmRun:
    workdir: Path
    output: str  # stdout and stderr of snakemake
    seconds: float
    plan: JobPlan  # the jobs it planned


# the sharded run's sheet: 40 prompts in at most 4 shards, one GPU generate job a shard
SHARDS = assign_shards([row["prompt_id"] for row in sheet_rows()], SHARDED_CONFIG["shards"])


@pytest.fixture(scope="module")
def slurm_run(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> SlurmRun:
    """The demo pipeline on a 40-prompt sheet in 4 shards (SHARDED_CONFIG), run through
    profiles/slurm on the local cluster."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm_run"), SHARDED_CONFIG)
    write_sheet(workdir / "prompts.tsv", sheet_rows())
    job_log = tmp_path_factory.mktemp("slurm_jobs") / "jobs.jsonl"
    started = time.monotonic()
    result = run_snakemake(
        workdir,
        *SLURM_ARGS,
        *job_log_arguments(job_log),
        timeout=PIPELINE_TIMEOUT,
        env=cluster.env,
        pythonpath=[LOGGER_PLUGINS],
    )
    seconds = time.monotonic() - started
    return SlurmRun(workdir, result.stdout + result.stderr, seconds, read_job_plan(job_log))


def sbatch_calls(output: str) -> dict[str, list[str]]:
    """rule name -> the sbatch command lines snakemake printed for its jobs."""
    calls: dict[str, list[str]] = {}
    for line in output.splitlines():
        if "sbatch call:" not in line:
            continue
        rule = re.search(r"--comment '?rule_([A-Za-z0-9_]+?)(?:_wildcards_\S*)?'? ", line)
        assert rule, f"an sbatch call without the rule's comment: {line}"
        calls.setdefault(rule.group(1), []).append(line.split(" --wrap=", 1)[0])
    return calls


def test_slurm_outputs_equal_a_local_run(slurm_run: SlurmRun, sharded_run: Path) -> None:
    slurm_files, local_files = result_files(slurm_run.workdir), result_files(sharded_run)
    assert any(name.startswith("predictions/") for name in slurm_files)
    assert sorted(slurm_files) == sorted(local_files)
    different = [name for name in slurm_files if slurm_files[name] != local_files[name]]
    assert different == ["training/plan.json"]
    # the plan holds the generate jobs' planned runtime: profiles/slurm asks for a GPU
    # (their images are made on the cluster's CPUs here, gpu_fallback: cpu)
    slurm_plan, local_plan = (
        json.loads(files["training/plan.json"]) for files in (slurm_files, local_files)
    )
    slurm_runtime, local_runtime = slurm_plan["images"]["runtime"], local_plan["images"]["runtime"]
    assert (slurm_runtime["device"], slurm_runtime["dtype"]) == ("cuda", "float16")
    assert (local_runtime["device"], local_runtime["dtype"]) == ("cpu", "float32")
    slurm_plan["images"]["runtime"] = local_runtime
    assert slurm_plan == local_plan
    print(f"the pipeline through SLURM took {slurm_run.seconds:.0f} s")


def local_rules() -> set[str]:
    """The rules of rules/*.smk marked ``localrule: True``: they run on the submitting host."""
    rules = set()
    for path in (REPO / "rules").glob("*.smk"):
        blocks = re.split(r"^rule (\w+):$", path.read_text(encoding="utf-8"), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            if re.search(r"^\s+localrule: True$", body, flags=re.M):
                rules.add(name)
    return rules


def test_cheap_aggregates_run_on_the_submitting_host() -> None:
    """No cluster needed: the summary, its page and the run info page are seconds of work
    (a 30-minute, 2 GB job each in the queue would cost more than they do); the manifest
    hashes every output, a job's worth of reading at 100,000 prompts, so it is submitted."""
    local = local_rules()
    assert {"training_plan", "summary", "summary_page", "run_info"} <= local, local
    assert "manifest" not in local


def test_every_job_was_a_slurm_job(slurm_run: SlurmRun) -> None:
    planned = slurm_run.plan.counts
    # one GPU generate job (and predict job) per shard, not per prompt
    assert planned["generate"] == planned["predict"] == len(SHARDS) < SHEET_PROMPTS
    submitted = {rule: len(lines) for rule, lines in sbatch_calls(slurm_run.output).items()}
    local = local_rules()
    assert "training_plan" in local  # writes a small JSON: not worth a queue
    assert submitted == {
        rule: count for rule, count in planned.items() if rule != "all" and rule not in local
    }
    assert submitted["generate"] == len(SHARDS), f"generate submissions: {submitted}"


def test_gpu_steps_were_submitted_with_one_gpu(slurm_run: SlurmRun) -> None:
    for rule, lines in sbatch_calls(slurm_run.output).items():
        for line in lines:
            if rule in GPU_RULES:
                assert re.search(r" --gpus=1\b", line), line
                assert " -p gpu " in line, line
            else:
                assert "--gpus" not in line and "--gres" not in line, line
                assert " -p cpu " in line, line


def test_the_gpu_jobs_said_they_ran_on_the_cpu(slurm_run: SlurmRun) -> None:
    for shard in SHARDS:
        log = slurm_run.workdir / "results" / "logs" / "generate" / f"{shard}.log"
        assert "running on the CPU (gpu_fallback: cpu)" in log.read_text(), shard


def test_slurm_gave_the_gpu_jobs_a_gpu(slurm_run: SlurmRun, cluster: Cluster) -> None:
    """Accounting shows the GPU allocated, and the steps saw their request (and no CUDA)."""
    run_id = re.search(r"SLURM run ID: (\S+)", slurm_run.output)
    assert run_id, "snakemake printed no SLURM run ID"
    rows = cluster.client(
        "sacct", "-X", "-n", "-P", "--name", run_id.group(1), "-o", "JobID,State,AllocTRES"
    ).splitlines()
    n_jobs = sum(len(lines) for lines in sbatch_calls(slurm_run.output).values())
    assert len(rows) == n_jobs and all("|COMPLETED|" in row for row in rows), rows
    # generate and predict for each shard, predict_real for each shard of the real images
    assert sum("gres/gpu=1" in row for row in rows) == 2 * len(SHARDS) + len(REAL_SHARDS), rows
    logs = slurm_run.workdir / "results" / "logs"
    for rule in GPU_RULES:
        for shard in REAL_SHARDS if rule == "predict_real" else SHARDS:
            log = (logs / rule / f"{shard}.log").read_text()
            assert "a GPU was requested but CUDA is not available" in log, log


def test_wrong_partition_is_a_clear_error(cluster: Cluster, tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "wrong_partition", SMALL_CONFIG)
    started = time.monotonic()
    result = run_snakemake(
        workdir,
        *SLURM_ARGS,
        "--default-resources",
        "slurm_partition=no_such_partition",
        "runtime=5",
        "mem_mb=500",
        check=False,
        timeout=FAILURE_TIMEOUT,
        env=cluster.env,
    )
    output = result.stdout + result.stderr
    seconds = time.monotonic() - started
    assert result.returncode != 0, output[-3000:]
    assert "Invalid partition name specified" in output, output[-3000:]
    assert "-p no_such_partition" in output, output[-3000:]
    assert not (workdir / "results" / "predictions").exists()
    print(f"wrong partition: exit {result.returncode} after {seconds:.1f} s")


def test_stopped_controller_is_a_clear_error(cluster: Cluster, tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "no_controller", SMALL_CONFIG)
    cluster.script("stop", str(cluster.state), "slurmctld", timeout=120)
    try:
        started = time.monotonic()
        result = run_snakemake(
            workdir, *SLURM_ARGS, check=False, timeout=FAILURE_TIMEOUT, env=cluster.env
        )
        seconds = time.monotonic() - started
    finally:
        cluster.script("start", str(cluster.state), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Unable to contact slurm controller" in output, output[-3000:]
    assert not (workdir / "results" / "predictions").exists()
    print(f"stopped controller: exit {result.returncode} after {seconds:.1f} s")
