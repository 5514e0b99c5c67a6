"""The NEURON template subprocess: a JSON job file in, a MEArec templates ``.h5`` file out.

:func:`_run_template_worker` writes the job file and starts a fresh interpreter that runs
:func:`_template_worker_main` (NEURON state, ``chdir`` and ``sys.exit`` inside MEArec stay out of
the caller's process). The job holds ``cell_set_folder``, ``cell_models``, ``parameters`` (MEArec
template parameters), ``templates_work_folder``, ``output_file``, ``n_jobs`` and ``verbose``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from spikeinterface_vqcompress.groundtruth.errors import TemplateGenerationError
from spikeinterface_vqcompress.groundtruth.neuron import _subprocess_environment, _tail

#: The module the subprocess imports :func:`_template_worker_main` from (this one).
_WORKER_MODULE = "spikeinterface_vqcompress.groundtruth.worker"


def _template_worker_main(job_file):
    """Run MEArec's template generation for one job (called in a subprocess, cwd = work folder)."""
    import MEArec as mr

    with open(job_file) as file:
        job = json.load(file)
    n_jobs = int(job["n_jobs"])
    template_generator = mr.gen_templates(
        job["cell_set_folder"],
        params=job["parameters"],
        templates_tmp_folder=job["templates_work_folder"],
        parallel=n_jobs > 1,
        n_jobs=n_jobs,
        recompile=False,
        delete_tmp=True,
        verbose=bool(job["verbose"]),
    )
    celltypes = [str(name) for name in template_generator.celltypes]
    missing = sorted(set(job["cell_models"]) - set(celltypes))
    expected = int(job["parameters"]["n"]) * len(job["cell_models"])
    if missing or len(celltypes) != expected:
        counts = {name: celltypes.count(name) for name in job["cell_models"]}
        sys.stderr.write(f"MEArec produced {len(celltypes)} templates instead of {expected}: {counts}\n")
        sys.exit(3)
    mr.save_template_generator(template_generator, job["output_file"], verbose=False)


def _run_template_worker(job, work_folder, cache_folder, verbose):
    """Run :func:`_template_worker_main` in a fresh interpreter (NEURON state, chdir and
    ``sys.exit`` inside MEArec stay out of the caller's process)."""
    job_file = Path(work_folder) / "job.json"
    job_file.write_text(json.dumps(job, indent=1))
    command = [
        sys.executable,
        "-c",
        f"import sys; from {_WORKER_MODULE} import _template_worker_main; _template_worker_main(sys.argv[1])",
        str(job_file),
    ]
    log_file = Path(work_folder) / "mearec_templates.log"
    with open(log_file, "w") as log:
        completed = subprocess.run(
            command,
            cwd=work_folder,
            env=_subprocess_environment(cache_folder),
            stdout=None if verbose else log,
            stderr=subprocess.STDOUT if not verbose else None,
        )
    if completed.returncode != 0 or not Path(job["output_file"]).is_file():
        log_text = log_file.read_text(errors="replace") if not verbose else "(output shown above)"
        raise TemplateGenerationError(
            f"MEArec/NEURON template generation failed (exit code {completed.returncode}):\n" + _tail(log_text)
        )
