"""`bentoml build` from bentofile.yaml, run the way users run it, and the bento it builds.

The build is offline: `python.lock_packages: false` (serving/requirements.txt is already pinned from
uv.lock), so BentoML does not re-resolve the requirements against PyPI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from tests.helpers import REPO  # noqa: E402

REQUIREMENTS = REPO / "serving" / "requirements.txt"
EXPORT_CMD = ["uv", "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]
PACKAGES = ("features", "serving")  # the served models need no training code
PINNED = ("mlflow", "bentoml", "pandas", "scikit-learn", "statsmodels", "mlxtend")
# the image's Python (docker.python_version) on Linux: the markers of the exported requirements
TARGET = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
          "platform_system": "Linux", "implementation_name": "cpython",
          "platform_python_implementation": "CPython", "os_name": "posix", "platform_machine": "x86_64"}


def lock_versions() -> dict[str, set[str]]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    out: dict[str, set[str]] = {}
    for pkg in lock["package"]:
        if "version" in pkg:
            out.setdefault(canonicalize_name(pkg["name"]), set()).add(pkg["version"])
    return out


def pins(text: str) -> dict[str, str]:
    """name -> version of the `name==version [; marker]` lines that apply to TARGET."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        req, _, marker = line.partition(";")
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*==\s*(\S+)", req.strip())
        assert match, f"not an exact pin: {line!r}"
        if marker.strip() and not Marker(marker.strip()).evaluate(TARGET):
            continue
        name = canonicalize_name(match.group(1).split("[")[0])
        assert out.get(name, match.group(2)) == match.group(2), f"{name} pinned twice with different versions"
        out[name] = match.group(2)
    return out


def without_header(text: str) -> str:
    lines = text.splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines)


# ---- serving/requirements.txt is uv.lock's runtime stack ----


def test_requirements_match_the_lock() -> None:
    locked = lock_versions()
    pinned = pins(REQUIREMENTS.read_text())
    for name, version in pinned.items():
        assert version in locked.get(name, set()), f"serving/requirements.txt pins {name}=={version}, uv.lock has {locked.get(name)}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        name = canonicalize_name(re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0])
        assert name in pinned, f"{name} (a dependency in pyproject.toml) is missing from serving/requirements.txt"
    for name in PINNED:
        assert len(locked[name]) == 1 and pinned[name] in locked[name]


def test_requirements_are_the_current_uv_export() -> None:
    """Regenerate with: uv export --frozen --no-dev --no-hashes --no-emit-project -o serving/requirements.txt"""
    if shutil.which("uv") is None:
        pytest.skip("uv is not on PATH (the pins are still checked against uv.lock above)")
    fresh = subprocess.run(EXPORT_CMD, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0, fresh.stderr
    assert without_header(REQUIREMENTS.read_text()) == without_header(fresh.stdout), (
        "serving/requirements.txt is stale: uv export --frozen --no-dev --no-hashes --no-emit-project "
        "-o serving/requirements.txt"
    )


# ---- the bento ----


def bentoml_cli() -> str:
    script = Path(sys.executable).parent / "bentoml"
    return str(script) if script.exists() else (shutil.which("bentoml") or pytest.fail("no bentoml command"))


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("ECOMLAB_SERVE_CONFIG", None)
    done = subprocess.run([bentoml_cli(), "build", "--output", "tag"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"bentoml build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    match = re.search(r"ecomlab:([a-z0-9]+)", done.stdout)
    assert match, done.stdout
    path = home / "bentos" / "ecomlab" / match.group(1)
    assert (path / "bento.yaml").is_file()
    return path


@pytest.mark.slow  # builds a Bento in a subprocess
def test_bento_service_and_envs(bento: Path) -> None:
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["service"] == "serving.service:EcomlabService"
    assert info["name"] == "ecomlab" and info["entry_service"] == "ecomlab"
    assert info["image"]["python_version"] == "3.11"
    envs = {e["name"]: e for e in info["envs"]}
    assert {"MLFLOW_TRACKING_URI", "ECOMLAB_SERVE_CONFIG", "ECOMLAB_API_TOKEN"} <= set(envs)
    assert all(e["value"] == "" for e in envs.values()), "a value in bentofile envs would be baked into the bento"


@pytest.mark.slow  # builds a Bento in a subprocess
def test_bento_src_holds_the_packages_and_nothing_else(bento: Path) -> None:
    src = bento / "src"
    files = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    for package in PACKAGES:
        expected = {p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts}
        assert expected and expected <= files, f"{package}/ is incomplete in the bento: {sorted(expected - files)}"
    assert "configs/serve.yaml" in files
    for path in files:
        top = path.split("/", 1)[0]
        assert top in (*PACKAGES, "configs", "bentofile.yaml"), f"unexpected file in the bento: {path}"
        assert not path.endswith((".db", ".pyc")) and "__pycache__" not in path, path
    assert [f for f in files if f.startswith("configs/")] == ["configs/serve.yaml"]


@pytest.mark.slow  # builds a Bento in a subprocess
def test_bento_requirements_pin_the_locked_stack(bento: Path) -> None:
    locked = lock_versions()
    pinned = pins((bento / "env" / "python" / "requirements.txt").read_text())
    for name in PINNED:
        assert name in pinned, f"{name} is not in the bento's requirements"
        assert {pinned[name]} == locked[name], f"bento pins {name}=={pinned[name]}, uv.lock has {locked[name]}"
    for name, version in pinned.items():
        assert version in locked.get(name, set()), f"bento pins {name}=={version}, not in uv.lock"
