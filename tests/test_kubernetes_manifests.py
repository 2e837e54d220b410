"""The Kubernetes deployment in docs/scale.md, checked against the schemas it claims.

No cluster runs here, so the checks are the ones a cluster would make first:

- ``deploy/kubernetes/dagster.yaml`` is valid K8sRunLauncher configuration for the installed
  dagster-k8s, and the Job that dagster-k8s builds from it for a run (its own code path, which
  refuses unknown fields) validates against the Kubernetes OpenAPI schemas shipped in the
  ``kubernetes-validate`` package, strictly (no unknown field anywhere), for the oldest version
  with native sidecar containers on by default (1.29) and the newest one shipped;
- ``deploy/kubernetes/floe-node-sidecar.yaml`` validates against the same schemas;
- the run pod and the node's DaemonSet agree with each other and with the sidecar's real flags
  (the paths, the hand-off directory, the grace period, the uid of the images);
- docs/scale.md shows exactly these files.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
import yaml
from support.environment import REPO_ROOT

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
RUN_LAUNCHER = KUBERNETES / "dagster.yaml"
NODE_SIDECAR = KUBERNETES / "floe-node-sidecar.yaml"
SCALE_DOC = REPO_ROOT / "docs" / "scale.md"
VERSIONS = ["1.29", "1.37"]
MANIFEST_KEYS = re.compile(r"^\s*(apiVersion|kind|run_launcher|run_k8s_config):", re.M)


@pytest.fixture(scope="module")
def launcher_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(RUN_LAUNCHER.read_text())["run_launcher"]["config"]
    return config


@pytest.fixture(scope="module")
def run_job(launcher_config: dict[str, Any]) -> dict[str, Any]:
    return _run_job(launcher_config)


@pytest.fixture(scope="module")
def daemonset() -> dict[str, Any]:
    (document,) = list(yaml.safe_load_all(NODE_SIDECAR.read_text()))
    result: dict[str, Any] = document
    return result


def _run_job(launcher_config: dict[str, Any]) -> dict[str, Any]:
    """The Job dagster-k8s launches for a run with this launcher configuration, as the
    Kubernetes API receives it (camelCase JSON)."""
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
    )

    job_config = DagsterK8sJobConfig(
        job_image="registry.example.com/floe-adapter:0.1.0",
        dagster_home=launcher_config["dagster_home"],
        instance_config_map=launcher_config["instance_config_map"],
        postgres_password_secret=launcher_config["postgres_password_secret"],
        service_account_name=launcher_config["service_account_name"],
    )
    job = construct_dagster_k8s_job(
        job_config,
        ["dagster", "api", "execute_run", "{}"],
        "dagster-run-5b3c1b0e",
        user_defined_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            launcher_config["run_k8s_config"]
        ),
        component="run_worker",
        labels={"dagster/job": "__ASSET_JOB"},
    )
    serialized: dict[str, Any] = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    return serialized


# -- schemas ---------------------------------------------------------------------------------


def test_the_run_launcher_is_valid_dagster_k8s_configuration(
    launcher_config: dict[str, Any], tmp_path: Path
) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s.launcher import K8sRunLauncher

    result = process_config(K8sRunLauncher.config_type(), launcher_config)
    assert result.success, result.errors
    (tmp_path / "dagster.yaml").write_text(RUN_LAUNCHER.read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_run_pod_is_a_valid_kubernetes_job(run_job: dict[str, Any], version: str) -> None:
    assert kubernetes_validate.validate(run_job, version, strict=True) == version


@pytest.mark.parametrize("version", VERSIONS)
def test_the_node_sidecar_is_a_valid_kubernetes_daemonset(
    daemonset: dict[str, Any], version: str
) -> None:
    assert daemonset["kind"] == "DaemonSet"
    assert kubernetes_validate.validate(daemonset, version, strict=True) == version


def test_the_checks_catch_mistakes(
    launcher_config: dict[str, Any], run_job: dict[str, Any], daemonset: dict[str, Any]
) -> None:
    """Each check above rejects what a cluster (or dagster-k8s) would reject."""
    typo = copy.deepcopy(launcher_config)
    typo["run_k8s_config"]["pod_spec_config"]["init_containers"][0]["restart_polcy"] = "Always"
    with pytest.raises(Exception, match="restart_polcy"):
        _run_job(typo)
    job = copy.deepcopy(run_job)
    job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "30"
    with pytest.raises(kubernetes_validate.ValidationError, match="not of type 'integer'"):
        kubernetes_validate.validate(job, "1.29", strict=True)
    broken = copy.deepcopy(daemonset)
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError, match="volumeMount"):
        kubernetes_validate.validate(broken, "1.29", strict=True)
    # Native sidecars (restartPolicy on an init container) do not exist before 1.28.
    with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicy"):
        kubernetes_validate.validate(run_job, "1.27", strict=True)


# -- the pieces agree ------------------------------------------------------------------------


def test_the_run_pod_hands_its_spool_to_the_node(
    run_job: dict[str, Any], daemonset: dict[str, Any]
) -> None:
    pod = run_job["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always", "a native sidecar container"
    worker = next(c for c in pod["containers"] if c["name"] == "dagster")
    args = _flags(sidecar["args"])
    assert "--handoff" in args
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["FLOE_SPOOL_DIR"] == args["--spool"], "one spool for the worker and the sidecar"
    assert env["FLOE_SOCKET"] == args["--socket"]
    assert pod["terminationGracePeriodSeconds"] > float(args["--grace"]) + 5

    volumes = {v["name"]: v for v in pod["volumes"]}
    spool_volume = _mount_of(sidecar, args["--spool"])
    socket_volume = _mount_of(sidecar, args["--socket"])
    assert "hostPath" in volumes[spool_volume["name"]], "the spool outlives the pod"
    assert "emptyDir" in volumes[socket_volume["name"]], "only the socket goes with the pod"
    for container in (sidecar, worker):
        mount = _mount_of(container, args["--spool"])
        assert mount == spool_volume, f"{container['name']} mounts the spool elsewhere"
        assert mount["subPathExpr"] == "$(POD_UID)", "each pod sees only its own directory"
        pod_uid = next(e for e in container["env"] if e["name"] == "POD_UID")
        assert pod_uid["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    # The spool is <handoff>/<pod>/spool on the node, as the node's sidecar expects it.
    relative = PurePosixPath(args["--spool"]).relative_to(spool_volume["mountPath"])
    assert relative.parts == ("spool",)

    # The node's sidecar adopts from the directory the run pods' hostPath is.
    node_pod = daemonset["spec"]["template"]["spec"]
    (node_sidecar,) = node_pod["containers"]
    node_args = _flags(node_sidecar["args"])
    host_dir = PurePosixPath(volumes[spool_volume["name"]]["hostPath"]["path"])
    node_volume = _mount_of(node_sidecar, node_args["--adopt"])
    node_host = {v["name"]: v for v in node_pod["volumes"]}[node_volume["name"]]["hostPath"]
    adopt_on_host = PurePosixPath(node_host["path"]) / PurePosixPath(
        node_args["--adopt"]
    ).relative_to(node_volume["mountPath"])
    assert adopt_on_host == host_dir
    spool_on_node = PurePosixPath(node_args["--spool"])
    assert _mount_of(node_sidecar, str(spool_on_node)) == node_volume, "one file system: rename"
    assert not spool_on_node.is_relative_to(node_args["--adopt"])
    # The DaemonSet prepares that directory, owned by the images' uid.
    uid = _image_uid()
    (prepare,) = node_pod["initContainers"]
    script = " ".join(prepare["command"])
    assert f"-o {uid}" in script and str(adopt_on_host) in script
    for spec in (pod, node_pod):
        assert spec["securityContext"]["runAsUser"] == uid
    # Every container of both runs the sidecar image this repository builds.
    for container in (sidecar, node_sidecar, prepare):
        assert container["image"].rsplit(":", 1)[0].endswith("/floe-sidecar")


def test_every_sidecar_flag_they_use_exists(
    run_job: dict[str, Any], daemonset: dict[str, Any]
) -> None:
    known = set(
        re.findall(
            r"(?<![\w-])(--[a-z][a-z0-9-]*)",
            subprocess.run(
                [sys.executable, "-m", "floe_sidecar.cli", "--help"],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            ).stdout,
        )
    )
    (sidecar,) = run_job["spec"]["template"]["spec"]["initContainers"]
    (node_sidecar,) = daemonset["spec"]["template"]["spec"]["containers"]
    for container in (sidecar, node_sidecar):
        used = {a for a in container["args"] if a.startswith("--")}
        assert used <= known, f"{container['name']}: unknown flags {used - known}"


# -- the docs --------------------------------------------------------------------------------


def test_the_docs_show_the_manifests_that_are_tested() -> None:
    blocks = _yaml_blocks(SCALE_DOC.read_text())
    for path in (RUN_LAUNCHER, NODE_SIDECAR):
        assert path.read_text() in blocks, f"docs/scale.md does not show {path.name} as it is"
    for doc in sorted((REPO_ROOT / "docs").glob("*.md")):
        for block in _yaml_blocks(doc.read_text()):
            kubernetes_like = re.search(
                r"^\s*(apiVersion|kind|run_launcher|run_k8s_config):", block, re.M
            )
            if kubernetes_like:
                assert block in {RUN_LAUNCHER.read_text(), NODE_SIDECAR.read_text()}, (
                    f"{doc.name}: a manifest that is not one of the tested files:\n{block[:200]}"
                )


# -- helpers ---------------------------------------------------------------------------------


def _flags(args: list[str]) -> dict[str, str]:
    """``--flag value`` pairs (a flag followed by another flag, or last, maps to "")."""
    out = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            following = args[i + 1] if i + 1 < len(args) else ""
            out[arg] = "" if following.startswith("--") else following
    return out


def _mount_of(container: dict[str, Any], path: str) -> dict[str, Any]:
    """The volume mount of ``container`` that holds ``path`` (the deepest one)."""
    holding = [
        m
        for m in container.get("volumeMounts", [])
        if PurePosixPath(path).is_relative_to(m["mountPath"])
    ]
    assert holding, f"{container['name']}: nothing mounted holds {path}"
    return max(holding, key=lambda m: len(m["mountPath"]))


def _image_uid() -> int:
    uids = set()
    for dockerfile in (REPO_ROOT / "deploy" / "docker").glob("Dockerfile.*"):
        uids |= {int(u) for u in re.findall(r"useradd --uid (\d+)", dockerfile.read_text())}
    (uid,) = uids
    return uid


def _yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", markdown, re.S | re.M)
