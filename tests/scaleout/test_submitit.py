"""``--executor slurm`` / ``local-submitit``: one submitit job per run, as a job array, with
submitit's checkpoint protocol for preemption. SLURM itself is not needed: the jobs run
through submitit's LocalExecutor, and the sbatch script is checked against stand-ins of
``sbatch`` / ``srun`` / ``sacct``."""

from __future__ import annotations

import json
import os
import stat
import sys

import cloudpickle
import pytest
from submitit.core.utils import DelayedSubmission

from benchmarks.commands.cli import main
from benchmarks.executors import slurm
from benchmarks.executors.unit import run_dir

from .conftest import assert_same_records, interrupt_before_evaluation, smoke_args, smoke_task


def _manifest(out):
    path = out / "submitit" / "submissions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_local_submitit_runs_one_job_per_run_and_resubmission_skips_finished(serial_reference, smoke_cache,
                                                                             tmp_path, capsys):
    out = tmp_path / "submitit-local"
    args = [*smoke_args(out, smoke_cache), "--executor", "local-submitit", "--slurm-cpus", "1"]

    assert main(args) == 0
    text = capsys.readouterr().out
    assert "submitted 2 local jobs" in text and "2 ok, 0 failed, 0 errors" in text
    assert_same_records(serial_reference, out)
    jobs = _manifest(out)
    assert len({job["job_id"] for job in jobs}) == 2
    for job in jobs:  # each job logged which run it trained, in <out>/submitit/<job_id>/
        log = (out / "submitit" / job["job_id"] / f"{job['job_id']}_0_log.out").read_text()
        assert f"{job['label']}: starting" in log and f"{job['label']}: ok" in log

    assert main(args) == 0  # resubmission is the same command: finished runs are skipped
    assert "2 done, 0 to run" in capsys.readouterr().out
    assert len(_manifest(out)) == 2


def test_preempted_job_requeues_the_same_task_which_resumes_from_its_checkpoint(serial_reference, smoke_cache,
                                                                                tmp_path, monkeypatch):
    task = smoke_task(tmp_path / "preempted", smoke_cache, seed=0)
    seconds = interrupt_before_evaluation(task, monkeypatch)  # the job was preempted after its last epoch

    # what submitit does on SIGUSR2: call checkpoint(*args), pickle the result, requeue it
    delayed = slurm.RunJob(cpus=1).checkpoint(task)
    assert isinstance(delayed, DelayedSubmission) and isinstance(delayed.function, slurm.RunJob)
    assert delayed.args == (task,) and not delayed.kwargs
    requeued = cloudpickle.loads(cloudpickle.dumps(delayed))

    outcome = requeued.result()  # the requeued job starts
    assert outcome.status == "ok" and outcome.task == task
    record = run_dir(task).read()
    assert record.epochs[-1]["seconds"] == seconds  # resumed, not retrained
    reference = run_dir(smoke_task(serial_reference, smoke_cache, seed=0)).read()
    assert (record.predictions("deceiving")["logits"] == reference.predictions("deceiving")["logits"]).all()


def _fake_slurm(bin_dir, job_id="4242", states=None):
    """Executables standing in for SLURM: sbatch keeps the script it was given."""
    bin_dir.mkdir()
    scripts = bin_dir / "sbatch-scripts"
    scripts.mkdir()
    py = sys.executable
    tools = {
        "sbatch": f'import shutil, sys, pathlib\nd = pathlib.Path("{scripts}")\n'
                  f'shutil.copy(sys.argv[-1], d / f"{{len(list(d.iterdir()))}}.sh")\n'
                  f'print("Submitted batch job {job_id}")\n',
        "srun": "pass\n",
        "sacct": "print('JobID|State|NodeList')\n"
                 + "".join(f"print('{j}|{s}|node1')\n" for j, s in (states or {}).items()),
    }
    for name, code in tools.items():
        path = bin_dir / name
        path.write_text(f"#!{py}\n{code}")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return scripts


def test_slurm_array_script_and_no_double_submission(smoke_cache, tmp_path, monkeypatch, capsys):
    out = tmp_path / "slurm"
    scripts = _fake_slurm(tmp_path / "bin", states={"4242_0": "RUNNING", "4242_1": "PENDING"})
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    args = [*smoke_args(out, smoke_cache), "--executor", "slurm", "--slurm-partition", "gpu", "--slurm-time", "90",
            "--slurm-gpus", "2", "--slurm-cpus", "4", "--slurm-array-parallelism", "1",
            "--slurm-param", "slurm_account=lab", "--no-wait"]

    assert main(args) == 0
    assert "2 submitted, not waited for" in capsys.readouterr().out
    (script,) = scripts.iterdir()  # one sbatch call: a job array
    text = script.read_text()
    for line in ("--array=0-1%1", "--partition=gpu", "--time=90", "--gpus-per-node=2", "--ntasks-per-node=2",
                 "--cpus-per-task=4", "--account=lab", "--signal=USR2@"):
        assert f"#SBATCH {line}" in text, line
    assert [job["job_id"] for job in _manifest(out)] == ["4242_0", "4242_1"]
    assert all(job["run"].startswith(str(out.resolve())) for job in _manifest(out))

    assert main(args) == 0  # sacct says both jobs are still queued or running: nothing is submitted again
    assert "still queued or running as job 4242_0" in capsys.readouterr().out
    assert len(list(scripts.iterdir())) == 1


def test_slurm_without_sbatch_says_what_to_do(smoke_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM here
    assert main([*smoke_args(tmp_path / "out", smoke_cache), "--executor", "slurm"]) == 2
    assert "local-submitit" in capsys.readouterr().err


def test_slurm_params_parse_numbers():
    assert slurm.parse_params(["slurm_account=lab", "mem_gb=16", "slurm_signal_delay_s=120"]) == {
        "slurm_account": "lab", "mem_gb": 16, "slurm_signal_delay_s": 120}
