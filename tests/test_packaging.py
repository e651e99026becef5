"""A non-editable install (a built wheel) carries the shipped rules and analyses a call like the checkout.

The editable install in ``.venv`` reads everything from the source tree, so it cannot show that a
file the package needs at run time is missing from the wheel. These tests build the wheel from a
copy of the sources (so nothing is written into the repository), look inside it, and install it
into a fresh virtualenv that borrows ``.venv``'s dependencies but not its editable ``qa_audio``.
Everything they write lies under pytest's ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qa_audio"
SUBPACKAGES = ("speech", "acoustic", "checks", "rubric", "report", "batch", "cli", "redact", "coaching", "workbench")
# The shortest stereo sample call (42 s; stereo needs no diarization model, so this is the quick one).
SAMPLE = ROOT / "sample_calls" / "call09_talkover_stereo.wav"
# setuptools reads a PEP 639 SPDX string in ``project.license`` (``license = "MIT"``) from 77 on.
SETUPTOOLS_FOR_SPDX_LICENSE = 77


def _private_env(base: Path, *, keep_pythonpath: bool) -> dict[str, str]:
    """The environment for a child process: its temp files, caches and home all under ``base``."""
    env = dict(os.environ)
    for name in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PIP_TARGET", "PIP_PREFIX", "PIP_USER"):
        env.pop(name, None)
    if not keep_pythonpath:
        env.pop("PYTHONPATH", None)
    dirs = {"TMPDIR": "tmp", "HOME": "home", "XDG_CACHE_HOME": "cache", "NUMBA_CACHE_DIR": "numba"}
    for name, sub in dirs.items():
        (base / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(base / sub)
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1", PIP_NO_CACHE_DIR="1", PIP_NO_INPUT="1")
    return env


def _run(cmd: list[str | Path], *, env: dict[str, str], cwd: Path, timeout: int = 600) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def _build_outputs() -> dict[Path, int]:
    """What a setuptools build leaves in a source tree (build/, dist/, *.egg-info), with mtimes.

    The editable install's ``qa_audio.egg-info`` may already be there; a build from the repository
    would rewrite it, so its files' mtimes are part of the snapshot.
    """
    roots = [p for p in ROOT.iterdir() if p.name in ("build", "dist") or p.name.endswith(".egg-info")]
    roots += [
        p for p in PACKAGE.rglob("*") if p.is_dir() and (p.name in ("build", "dist") or p.name.endswith(".egg-info"))
    ]
    found: dict[Path, int] = {}
    for top in roots:
        for p in [top, *top.rglob("*")]:
            found[p] = p.stat().st_mtime_ns
    return found


def _setuptools_version(env: dict[str, str]) -> str:
    """The setuptools that ``pip wheel --no-build-isolation`` will use (the running interpreter's)."""
    out = _run(
        [sys.executable, "-c", "import setuptools; print(setuptools.__version__); print(setuptools.__file__)"],
        env=env,
        cwd=Path(env["TMPDIR"]),
    )
    version, origin = out.split()
    license_ = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"].get("license")
    if isinstance(license_, str) and int(version.split(".")[0]) < SETUPTOOLS_FOR_SPDX_LICENSE:
        pytest.fail(
            f"setuptools {version} ({origin}) cannot build qa-audio without build isolation: pyproject.toml's "
            f"`license = {license_!r}` is a PEP 639 expression, which setuptools reads from "
            f"{SETUPTOOLS_FOR_SPDX_LICENSE} on (and [build-system] should require setuptools>="
            f"{SETUPTOOLS_FOR_SPDX_LICENSE}); install setuptools>={SETUPTOOLS_FOR_SPDX_LICENSE} into this venv"
        )
    return version


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Path, int]]:
    """The qa-audio wheel, built from a copy of the sources, and the repository's build outputs before."""
    base = tmp_path_factory.mktemp("wheel")
    env = _private_env(base, keep_pythonpath=True)
    _setuptools_version(env)
    before = _build_outputs()
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "qa_audio", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = base / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-w", out, src],
        env=env,
        cwd=base,
    )
    wheels = sorted(out.glob("qa_audio-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], before


def test_wheel_carries_rules_typing_marker_and_every_subpackage(built_wheel: tuple[Path, dict[Path, int]]) -> None:
    wheel, before = built_wheel
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        tops = {n.split("/")[0] for n in names}
        dist_info = [t for t in tops if t.endswith(".dist-info")]
        assert len(dist_info) == 1, tops
        assert tops == {"qa_audio", dist_info[0]}  # nothing from outside the package (tests/, bench/, ...)
        entry_points = zf.read(f"{dist_info[0]}/entry_points.txt").decode()

    source_rules = {f"qa_audio/rules/{p.name}" for p in (PACKAGE / "rules").glob("*.yaml")}
    assert "qa_audio/rules/rubric.yaml" in source_rules  # the source tree is where we think it is
    wheel_rules = {n for n in names if n.startswith("qa_audio/rules/") and n.endswith(".yaml")}
    assert wheel_rules == source_rules
    source_notes = {f"qa_audio/rules/{p.name}" for p in (PACKAGE / "rules").glob("*.md")}
    assert source_notes <= names  # FINDINGS.md: the reasons behind the shipped thresholds

    assert "qa_audio/py.typed" in names
    # the workbench's pages and their one stylesheet and script (no build step: shipped as they are)
    source_pages = {p.relative_to(ROOT).as_posix() for folder in ("templates", "static")
                    for p in (PACKAGE / "workbench" / folder).iterdir()}
    assert "qa_audio/workbench/templates/call.html" in source_pages and source_pages <= names
    assert "qa_audio/report/player.js" in names  # the report inlines it, the workbench serves it
    for sub in SUBPACKAGES:
        assert f"qa_audio/{sub}/__init__.py" in names, sub
    # every module of the source tree, so a new folder without __init__.py cannot silently drop out
    source_modules = {
        p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
    }
    assert source_modules == {n for n in names if n.endswith(".py")}
    assert "qa-audio = qa_audio.cli:app" in entry_points

    assert _build_outputs() == before, "building the wheel wrote build/, dist/ or *.egg-info into the repository"


def _base_python() -> Path:
    """The interpreter ``.venv`` was made from (a venv made from a venv's python would be fine too,
    but the base one is what a user has)."""
    base = getattr(sys, "_base_executable", None)
    if base and Path(base).is_file():
        return Path(base)
    found = shutil.which("python3.11")
    assert found, "no base python3.11 to make a virtualenv with"
    return Path(found)


def _differences(a: object, b: object, path: str = "$") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += _differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = [f"{path}: {len(a)} vs {len(b)} items"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            out += _differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def _comparable(doc: dict) -> tuple[dict, str, object]:
    """The analysis without what legitimately differs between installs: timings and file locations."""
    doc = json.loads(json.dumps(doc))
    doc.pop("timings")
    doc["acoustics"].pop("compute_s")
    sheet_path = doc["rubric"]["sheet"].pop("path")
    rules_dir = doc["settings"].pop("rules_dir")
    # the personal-data rules file lies beside the sheet, wherever the package is
    personal = Path(doc["settings"]["personal_data"].pop("rules"))
    assert personal.parent == Path(sheet_path).parent and personal.name == "personal_data.yaml"
    return doc, sheet_path, rules_dir


@pytest.mark.slow
def test_wheel_install_analyses_a_call_like_the_editable_checkout(
    built_wheel: tuple[Path, dict[Path, int]], tmp_path: Path
) -> None:
    wheel, before = built_wheel
    env = _private_env(tmp_path, keep_pythonpath=False)
    work = tmp_path / "work"  # the cwd of every command: outside the repository
    work.mkdir()

    venv = tmp_path / "venv"
    _run([_base_python(), "-m", "venv", venv], env=env, cwd=work)
    py = venv / "bin" / "python"
    # Install before borrowing .venv's packages, so pip sees a clean venv (and never .venv's
    # editable qa-audio, which it might otherwise count as installed).
    _run([py, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", wheel], env=env, cwd=work)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([py, "-c", purelib], env=env, cwd=work).strip())
    # A plain path line in a .pth is appended to sys.path without processing the .pth files in that
    # folder, so .venv's ``__editable__.qa_audio-*.pth`` (which installs the finder that maps
    # qa_audio to the source tree) is never run, and the venv's own site-packages stays first.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_qa_audio_test_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)), encoding="utf-8")

    probe = (
        "import json, qa_audio, yaml, numpy; from qa_audio.rule_files import DEFAULT_RULES_DIR; "
        "print(json.dumps([qa_audio.__file__, str(DEFAULT_RULES_DIR)]))"
    )
    module_file, rules_dir = map(Path, json.loads(_run([py, "-c", probe], env=env, cwd=work)))
    assert module_file.resolve() == (site / "qa_audio" / "__init__.py").resolve(), module_file
    assert not module_file.resolve().is_relative_to(ROOT)
    assert rules_dir.resolve() == (site / "qa_audio" / "rules").resolve()
    assert (rules_dir / "rubric.yaml").is_file()

    command = ["analyze", SAMPLE, "-q"]
    installed = json.loads(_run([venv / "bin" / "qa-audio", *command], env=env, cwd=work))
    editable = json.loads(_run([Path(sys.executable).parent / "qa-audio", *command], env=env, cwd=work))

    installed_doc, installed_sheet, installed_rules = _comparable(installed)
    editable_doc, editable_sheet, editable_rules = _comparable(editable)
    # the rubric sheet path differs only in where the package lies
    tail = ("qa_audio", "rules", "rubric.yaml")
    assert Path(installed_sheet).resolve() == (site / "qa_audio" / "rules" / "rubric.yaml").resolve()
    assert Path(editable_sheet).resolve() == PACKAGE / "rules" / "rubric.yaml"
    assert Path(installed_sheet).parts[-3:] == Path(editable_sheet).parts[-3:] == tail
    # settings.rules_dir names the shipped rules; should it ever be a path, only its prefix may differ
    if installed_rules != editable_rules:
        assert Path(installed_rules).parts[-2:] == Path(editable_rules).parts[-2:] == tail[:2]
    diffs = _differences(installed_doc, editable_doc)
    assert not diffs, "the wheel install and the editable checkout disagree:\n" + "\n".join(diffs[:30])
    assert _build_outputs() == before
