"""The installed package imports nothing generic: a project with its own ``schemas`` and
``processors`` packages can import waitline beside them."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from harness import REPO

pytestmark = pytest.mark.integration

PROBE = """
import schemas, processors
import waitline, waitline.schemas.models, waitline.processors.runtime
from waitline import Client
assert schemas.MINE and processors.MINE, "the project's own packages"
assert waitline.__file__.startswith(SITE), waitline.__file__
assert waitline.schemas.models.__file__.startswith(SITE)
print("ok", waitline.processors.runtime.__name__)
"""


def test_waitline_installs_beside_a_project_with_its_own_schemas_and_processors(
    tmp_path: Path,
) -> None:
    dist, venv, project = tmp_path / "dist", tmp_path / "venv", tmp_path / "project"
    # Nothing of the source tree on the path (pip would take it for an installed waitline).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)]
    subprocess.run(build, check=True, capture_output=True, timeout=300, cwd=tmp_path, env=env)
    (wheel,) = dist.glob("waitline-*.whl")
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True
    ).stdout
    tops = {line.split("/", 1)[0].split()[0] for line in names.splitlines()[1:] if "/" in line}
    assert tops == {"waitline", wheel.name.split("-py")[0] + ".dist-info"}, tops

    # A fresh environment with only the wheel installed; its dependencies are borrowed from
    # this one (a path entry, so this environment's own install of waitline stays out).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    subprocess.run([*install, "--no-deps", str(wheel)], check=True, cwd=tmp_path, env=env)
    Path(site, "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    for name in ("schemas", "processors"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text("MINE = True\n")
        (project / name / "models.py").write_text("")
    result = subprocess.run(
        [str(python), "-c", f"SITE = {site!r}\n{PROBE}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "waitline.processors.runtime"]
