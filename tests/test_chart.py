"""The Helm chart: rendered with real Helm (helm-python-sdk) and the real dependency charts.

The dependency charts (jupyterhub 4.2.0, dask-gateway 2026.3.0) cannot be downloaded here;
``../shared/charts/`` holds the real ones (see its README). Every test works on a temporary copy
of ``helm/hubkit`` whose ``charts/`` links to them, so their templates render, their own
``values.schema.json`` check what hubkit sets, and what hubkit passes them is read back from the
manifests they render: the hub chart keeps its values in its Secret ``hub`` (the hub reads them
from there), the gateway chart writes its configuration file into its ConfigMap (executed here
with the installed dask-gateway-server). Skipped where ``../shared/charts`` is absent, a failure
with ``CI=true``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, need
from podsecurity import pod_templates, restricted_violations

CHART = REPO / "helm" / "hubkit"
SHARED_CHARTS = REPO.parent / "shared" / "charts"
RELEASE, NAMESPACE = "hubkit", "hub"
DEPENDENCIES = {
    "jupyterhub": "https://hub.jupyter.org/helm-chart/",
    "dask-gateway": "https://helm.dask.org/",
}

try:
    import helm_python
except ImportError:  # pragma: no cover - depends on the environment
    helm_python = None
try:
    import kubernetes_validate
    import kubernetes_validate.utils
except ImportError:  # pragma: no cover - depends on the environment
    kubernetes_validate = None


def _need_tools():
    need(helm_python is not None,
         "helm-python-sdk is not installed (pip install helm-python-sdk kubernetes-validate)")
    need(kubernetes_validate is not None,
         "kubernetes-validate is not installed (pip install helm-python-sdk kubernetes-validate)")


def _minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"v?(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def kube_floor(chart_yaml: Path) -> tuple[int, int]:
    """The lowest Kubernetes version a Chart.yaml admits (its ``kubeVersion: >=X.Y.Z-0``)."""
    spec = yaml.safe_load(chart_yaml.read_text())["kubeVersion"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)\.0(-0)?", spec.strip())
    assert match, f"{chart_yaml}: kubeVersion {spec!r} is not a plain floor (>=X.Y.0-0)"
    return _minor(match[1])


def kube_versions() -> list[str]:
    """The Kubernetes versions the chart supports and kubernetes-validate has schemas for:
    from the chart's floor to the newest bundled one."""
    floor = kube_floor(CHART / "Chart.yaml")
    bundled = sorted({_minor(v) for v in kubernetes_validate.utils.all_versions()})
    return [f"{a}.{b}" for a, b in bundled if (a, b) >= floor]


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory) -> Path:
    """A copy of the chart with the real dependency charts linked under ``charts/``."""
    _need_tools()
    need(SHARED_CHARTS.is_dir(),
         f"the real dependency charts are absent ({SHARED_CHARTS} not found)")
    root = tmp_path_factory.mktemp("chart") / "hubkit"
    shutil.copytree(CHART, root, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    (root / "charts").mkdir()
    for dep in declared:
        real = SHARED_CHARTS / dep["name"]
        need((real / "Chart.yaml").is_file(), f"{real} is absent")
        meta = yaml.safe_load((real / "Chart.yaml").read_text())
        assert str(meta["version"]) == str(dep["version"]), (
            f"{real} is version {meta['version']}, Chart.yaml wants {dep['version']}")
        (root / "charts" / dep["name"]).symlink_to(real, target_is_directory=True)
    return root


def _values_file(name: str) -> dict:
    return yaml.safe_load((CHART / "ci" / name).read_text())


def render_files(chart_dir: Path, values: dict | None = None, release: str = RELEASE,
                 namespace: str = NAMESPACE) -> dict[str, str]:
    chart = helm_python.Chart.load(chart_dir)
    return chart.render(values or {}, name=release, namespace=namespace, is_install=True)


def render(chart_dir: Path, values: dict | None = None, release: str = RELEASE,
           namespace: str = NAMESPACE) -> list[dict]:
    """Every manifest the chart and its subcharts render (NOTES.txt left out)."""
    docs = []
    for path, text in sorted(render_files(chart_dir, values, release, namespace).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("_source", path)
                docs.append(doc)
    return docs


def by_source(docs: list[dict], part: str) -> list[dict]:
    return [d for d in docs if part in d["_source"]]


def own(docs: list[dict]) -> list[dict]:
    """Manifests of hubkit's own templates (not the subcharts')."""
    return [d for d in docs if "/charts/" not in d["_source"]]


def hub_values(docs: list[dict]) -> dict:
    """The values the hub chart rendered with (its Secret "hub" keeps them for the hub)."""
    (secret,) = [d for d in by_source(docs, "charts/jupyterhub/templates/hub/secret.yaml")
                 if d["kind"] == "Secret"]
    return yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))


def gateway_config_file(docs: list[dict]) -> str:
    """dask_gateway_config.py as the gateway chart wrote it into its ConfigMap."""
    (config,) = [d for d in by_source(docs, "charts/dask-gateway/templates/gateway/configmap.yaml")
                 if d["kind"] == "ConfigMap"]
    return config["data"]["dask_gateway_config.py"]


def gateway_values(docs: list[dict]) -> dict:
    """The gateway chart's values as its configuration file carries them (``_PROPERTIES``;
    extraConfig is written out as code after it)."""
    literal = re.search(r"^_PROPERTIES = json\.loads\((\".*\")\)$", gateway_config_file(docs),
                        re.M)[1]
    return json.loads(json.loads(literal))


def gateway_extra_config(docs: list[dict]) -> dict[str, str]:
    """The gateway.extraConfig blocks as written into the gateway's configuration file."""
    parts = re.split(r"^# From gateway\.extraConfig\.(\S+)\n", gateway_config_file(docs),
                     flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def find(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


GW = f"{RELEASE}-dask-gateway"  # the gateway chart's name prefix for release "hubkit"


def hub_runtime(docs: list[dict]):
    """The hub's configuration after hub.extraConfig ran, as the hub chart's
    jupyterhub_config.py runs it: with get_config() over the hub's values, the services and
    KubeSpawner.environment it set up before (hub.services, singleuser.extraEnv)."""
    from traitlets.config import Config

    values = hub_values(docs)

    def get_config(key, default=None):
        node = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    c = Config()
    c.KubeSpawner.environment = copy.deepcopy(values["singleuser"].get("extraEnv") or {})
    c.JupyterHub.services = [{**copy.deepcopy(service), "name": name}
                             for name, service in values["hub"]["services"].items()]
    for key, code in sorted((values["hub"].get("extraConfig") or {}).items()):
        exec(compile(code, f"hub.extraConfig.{key}", "exec"),
             {"c": c, "get_config": get_config})
    return c


def gateway_runtime(docs: list[dict]):
    """The gateway's configuration: its whole dask_gateway_config.py (the chart's part and
    hubkit's extraConfig) executed with the installed dask-gateway-server. Its Kubernetes
    backend needs kubernetes_asyncio, which is not installed: a stand-in module provides the
    KubeBackend base class the per-user limit extends."""
    import os
    import sys
    import types
    from unittest import mock

    pytest.importorskip("dask_gateway_server")
    from dask_gateway_server.backends.base import Backend
    from traitlets.config import Config

    fake = types.ModuleType("dask_gateway_server.backends.kubernetes")
    fake.KubeBackend = type("KubeBackend", (Backend,), {})
    c = Config()
    env = {"HUB_SERVICE_HOST": "10.0.0.1", "HUB_SERVICE_PORT": "8081"}
    with mock.patch.dict(sys.modules, {fake.__name__: fake}), mock.patch.dict(os.environ, env):
        exec(compile(gateway_config_file(docs), "dask_gateway_config.py", "exec"),
             {"c": c, "__file__": "/etc/dask-gateway/dask_gateway_config.py"})
    return c


def pod_specs(doc: dict):
    for _, _, spec in pod_templates(doc):
        yield spec


VALUE_SETS = {
    "defaults": lambda: {},
    "values-all": lambda: _values_file("values-all.yaml"),
    "values-dev": lambda: _values_file("values-dev.yaml"),
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request, chart_dir):
    values = VALUE_SETS[request.param]()
    return request.param, values, render(chart_dir, values)


def test_dependencies_are_the_real_charts(chart_dir):
    deps = {d["name"]: d for d in helm_python.dependency_list(chart_dir)}
    assert set(deps) == set(DEPENDENCIES)
    for name, repository in DEPENDENCIES.items():
        assert deps[name]["repository"] == repository
        assert deps[name]["status"] in {"ok", "unpacked"}, deps[name]
    loaded = {d["name"]: d for d in helm_python.Chart.load(chart_dir).dependencies}
    assert {n: str(d["version"]) for n, d in loaded.items()} == {
        "jupyterhub": "4.2.0", "dask-gateway": "2026.3.0"}
    # no chart is kept in the repository: the tests link the real ones in
    assert not (CHART / "charts").exists()


def test_rendered_with_the_real_subcharts(rendered):
    _, _, docs = rendered
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    # objects only the real charts make
    assert ("Deployment", "hub") in kinds and ("Service", "proxy-public") in kinds
    assert ("Deployment", "user-scheduler") in kinds
    assert ("IngressRoute", f"api-{GW}") in kinds
    assert ("Deployment", f"controller-{GW}") in kinds
    assert len(docs) >= 50


@pytest.mark.parametrize("values_file", [None, "values-all.yaml", "values-dev.yaml"])
def test_lint_clean(chart_dir, values_file):
    values = _values_file(values_file) if values_file else {}
    versions = kube_versions()
    for version in (versions[0], versions[-1]):
        report = helm_python.lint(chart_dir, values, strict=True, kube_version=f"v{version}.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not report["errors"] and not problems, (version, report)


def test_kubernetes_floor_is_the_subcharts_maximum(chart_dir):
    """One floor: the umbrella admits no cluster a subchart refuses, and no stricter one."""
    floors = {dep: kube_floor(chart_dir / "charts" / dep / "Chart.yaml") for dep in DEPENDENCIES}
    assert floors == {"jupyterhub": (1, 28), "dask-gateway": (1, 30)}
    assert kube_floor(CHART / "Chart.yaml") == max(floors.values())
    major, minor = max(floors.values())
    floor = f"{major}.{minor}"
    guide = (REPO / "docs" / "admin-guide.md").read_text()
    assert f"Kubernetes ≥ {floor}" in guide
    assert not re.search(rf"Kubernetes (≥|>=) ?{major}\.(?!{minor}\b)\d+", guide)
    assert f">={floor}" in (CHART / "README.md").read_text().replace(" ", "")


def test_supported_kubernetes_versions():
    versions = kube_versions()
    assert versions[0] == "1.30"  # dask-gateway 2026.3.0 declares >=1.30.0-0
    assert len(versions) >= 4


# --- Custom resources: the traefik objects against the gateway chart's own CRDs ----------------

def _strict_openapi(node):
    """An openAPIV3Schema as JSON Schema that, like the API server's strict field validation,
    rejects fields the schema does not declare (unless it preserves unknown fields)."""
    if isinstance(node, list):
        return [_strict_openapi(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict_openapi(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def crd_schemas() -> dict:
    """{(group/version, kind): JSON schema} from the gateway chart's crds/ folder."""
    _need_tools()
    need(SHARED_CHARTS.is_dir(), f"{SHARED_CHARTS} not found")
    schemas = {}
    for path in sorted((SHARED_CHARTS / "dask-gateway" / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            kubernetes_validate.validate(crd, kube_versions()[0], strict=True)
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # metadata is validated by the API server itself, not by the CRD schema
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[key] = _strict_openapi(schema)
    assert ("traefik.io/v1alpha1", "IngressRoute") in schemas
    return schemas


def validate_manifest(doc: dict, version: str, crd_schemas: dict) -> None:
    """Strict validation: Kubernetes' own kinds by kubernetes-validate, custom resources by the
    CRDs they belong to. Fails the test with the object's name and the error."""
    import jsonschema

    manifest = {k: v for k, v in doc.items() if k != "_source"}
    where = f"{doc['_source']}: {doc['kind']} {doc['metadata']['name']} (Kubernetes {version})"
    key = (doc["apiVersion"], doc["kind"])
    if key in crd_schemas:
        try:
            jsonschema.validate(manifest, crd_schemas[key])
        except jsonschema.ValidationError as err:
            pytest.fail(f"{where}: {err.message} at {list(err.absolute_path)}")
        return
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{where}: {err}")
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{where}: no schema for {key} (neither Kubernetes' nor a CRD's)")


def test_manifests_valid_for_every_supported_kubernetes(rendered, crd_schemas):
    _, _, docs = rendered
    assert len(own(docs)) >= 4
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) in crd_schemas]
    assert {d["kind"] for d in custom} == {"IngressRoute", "Middleware"}
    for version in kube_versions():
        for doc in docs:
            validate_manifest(doc, version, crd_schemas)


def test_crd_validation_can_fail(chart_dir, crd_schemas):
    docs = render(chart_dir)
    route = copy.deepcopy(find(docs, "IngressRoute", f"api-{GW}"))
    route["spec"]["routes"][0]["servics"] = route["spec"]["routes"][0].pop("services")
    with pytest.raises(pytest.fail.Exception, match="servics"):
        validate_manifest(route, kube_versions()[0], crd_schemas)
    middleware = copy.deepcopy(find(docs, "Middleware", f"api-prefix-{GW}"))
    middleware["spec"]["stripPrefix"]["prefixes"] = "/services"  # a list in the CRD
    with pytest.raises(pytest.fail.Exception, match="prefixes"):
        validate_manifest(middleware, kube_versions()[0], crd_schemas)


def _check_container_context(where: str, ctx: dict | None):
    assert ctx, f"{where}: no securityContext"
    assert ctx.get("allowPrivilegeEscalation") is False, where
    assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
    assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    assert ctx.get("privileged") in (None, False), where


def test_every_own_pod_is_locked_down(rendered):
    name, _, docs = rendered
    specs = [(d, s) for d in own(docs) for s in pod_specs(d)]
    if name != "defaults":  # the S3 server, its bucket job and the watcher
        assert len(specs) >= 2
    for doc, spec in specs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for container in spec["containers"] + spec.get("initContainers", []):
            _check_container_context(f"{where}/{container['name']}", container["securityContext"])
            assert container.get("resources", {}).get("limits"), f"{where}: no limits"


def test_subchart_pods_are_locked_down(rendered):
    _, _, docs = rendered
    hub = hub_values(docs)
    gateway = gateway_values(docs)
    contexts = {
        "hub": hub["hub"]["containerSecurityContext"],
        "proxy.chp": hub["proxy"]["chp"]["containerSecurityContext"],
        "proxy.traefik": hub["proxy"]["traefik"]["containerSecurityContext"],
        "proxy.secretSync": hub["proxy"]["secretSync"]["containerSecurityContext"],
        "userScheduler": hub["scheduling"]["userScheduler"]["containerSecurityContext"],
        "userPlaceholder": hub["scheduling"]["userPlaceholder"]["containerSecurityContext"],
        "prePuller": hub["prePuller"]["containerSecurityContext"],
        "prePuller.hook": hub["prePuller"]["hook"]["containerSecurityContext"],
        "prePuller.pause": hub["prePuller"]["pause"]["containerSecurityContext"],
        "user servers": hub["hub"]["config"]["KubeSpawner"]["container_security_context"],
    }
    for role in ("scheduler", "worker"):
        backend = gateway["gateway"]["backend"][role]
        contexts[f"dask {role}"] = backend["extraContainerConfig"]["securityContext"]
        pod = backend["extraPodConfig"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000
        assert backend["extraPodConfig"]["automountServiceAccountToken"] is False
    for where, ctx in contexts.items():
        _check_container_context(where, ctx)
    assert hub["singleuser"]["uid"] == 1000
    assert hub["singleuser"]["allowPrivilegeEscalation"] is False
    # the metadata endpoint is blocked by policy, not by a privileged iptables init container
    assert hub["singleuser"]["cloudMetadata"]["blockWithIptables"] is False


def test_network_policies(rendered):
    _, values, docs = rendered
    policies = {d["metadata"]["name"]: d for d in own(docs) if d["kind"] == "NetworkPolicy"}
    assert {"hubkit-dask-clusters", "hubkit-jobs", "hubkit-hub-from-gateway"} <= set(policies)
    if values.get("storage", {}).get("type") == "inCluster":
        assert "hubkit-s3" in policies
    for name in ("hubkit-dask-clusters", "hubkit-jobs"):
        blocks = [
            peer["ipBlock"]
            for rule in policies[name]["spec"]["egress"]
            for peer in rule.get("to", [])
            if "ipBlock" in peer
        ]
        assert blocks and all("169.254.169.254/32" in b["except"] for b in blocks), name
    hub = hub_values(docs)
    for part in (hub["hub"], hub["singleuser"], hub["proxy"]["chp"]):
        assert part["networkPolicy"]["enabled"] is True
    assert hub["singleuser"]["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
    gateway_egress = [
        rule for rule in hub["singleuser"]["networkPolicy"]["egress"]
        for peer in rule["to"]
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        == "traefik"
    ]
    assert gateway_egress, "user servers cannot reach the gateway's traefik"


def test_user_and_worker_image_are_the_same(rendered):
    _, values, docs = rendered
    hub = hub_values(docs)
    gateway = gateway_values(docs)
    user = hub["singleuser"]["image"]
    worker = gateway["gateway"]["backend"]["image"]
    assert (user["name"], str(user["tag"])) == (worker["name"], str(worker["tag"]))
    mine = values.get("image", yaml.safe_load((CHART / "values.yaml").read_text())["image"])
    assert (user["name"], str(user["tag"])) == (mine["name"], str(mine["tag"]))
    env = hub["singleuser"]["extraEnv"]
    assert env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] == "{JUPYTER_IMAGE_SPEC}"
    options = gateway_extra_config(docs)["10-hubkit-options"]
    assert '"image"' in options
    # the image has `dask`, not the removed dask-scheduler / dask-worker scripts
    assert 'worker_cmd = ["dask", "worker"]' in options


def test_mismatched_worker_image_is_refused(chart_dir):
    values = {"dask-gateway": {"gateway": {"backend": {"image": {"tag": "other"}}}}}
    with pytest.raises(helm_python.HelmError, match="must run the same image"):
        render(chart_dir, values)


def test_environment_is_wired(rendered):
    """User servers and Dask pods get the store settings, the keys and the gateway's addresses
    from this release's own objects, which the hub and the gateway name at run time."""
    _, values, docs = rendered
    hub = hub_values(docs)
    gateway_env = find(docs, "ConfigMap", "hubkit-dask-gateway")["data"]
    assert gateway_env == {
        "DASK_GATEWAY__ADDRESS": f"http://traefik-{GW}.{NAMESPACE}.svc:80"
                                 "/services/dask-gateway",
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://traefik-{GW}.{NAMESPACE}.svc:8786",
        "DASK_GATEWAY__PUBLIC_ADDRESS": "/services/dask-gateway/",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub"}
    spawner = hub_runtime(docs).KubeSpawner
    env = spawner.environment
    assert "{JUPYTERHUB_SERVICE_PREFIX}" in env["DASK_DISTRIBUTED__DASHBOARD__LINK"]
    assert env["HUBKIT_STORE"]["valueFrom"]["configMapKeyRef"]["name"] == "hubkit-env"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "hubkit-storage-credentials", "key": key, "optional": True}
    for key in gateway_env:
        assert env[key]["valueFrom"]["configMapKeyRef"] == {"name": "hubkit-dask-gateway",
                                                            "key": key}
    assert spawner.service_account == "hubkit-storage"
    assert find(own(docs), "ServiceAccount", spawner.service_account)

    config = find(own(docs), "ConfigMap", "hubkit-env")
    if values.get("storage", {}).get("type") == "inCluster":
        bucket = values["storage"].get("inCluster", {}).get("bucket", "hubkit")
        assert config["data"]["HUBKIT_STORE"] == f"s3://{bucket}/store"
        assert config["data"]["FSSPEC_S3_ENDPOINT_URL"] == f"http://hubkit-s3.{NAMESPACE}.svc:9000"
    else:
        assert config["data"]["HUBKIT_STORE"] == "s3://hubkit/store"
    kube = gateway_runtime(docs).KubeClusterConfig
    for role in ("scheduler", "worker"):
        env_from = kube[f"{role}_extra_container_config"]["envFrom"]
        assert env_from == [
            {"configMapRef": {"name": "hubkit-env"}},
            {"configMapRef": {"name": "hubkit-dask-gateway"}},
            {"secretRef": {"name": "hubkit-storage-credentials", "optional": True}}]
        pod = kube[f"{role}_extra_pod_config"]
        assert pod["serviceAccountName"] == "hubkit-storage"
        # what the values set stays
        assert pod["securityContext"]["runAsUser"] == 1000
        assert kube[f"{role}_extra_container_config"]["securityContext"][
            "allowPrivilegeEscalation"] is False
    # the image's example notebooks land in a new user's home
    hook = hub["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"]
    assert "/opt/hubkit/notebooks" in hook[-1]


def test_gateway_authenticated_by_the_hub_and_private(rendered):
    _, _, docs = rendered
    hub = hub_values(docs)
    gateway = gateway_values(docs)
    auth = gateway["gateway"]["auth"]
    assert auth["type"] == "jupyterhub"
    assert not auth["jupyterhub"].get("apiToken")  # no hand-made token: the hub generates it
    assert auth["jupyterhub"]["apiTokenFromSecretName"] == "hub"
    assert auth["jupyterhub"]["apiTokenFromSecretKey"] == "hub.services.dask-gateway.apiToken"
    # the hub chart writes the token under exactly that key of its Secret "hub"
    assert "hub.services.dask-gateway.apiToken" in find(docs, "Secret", "hub")["data"]
    api = find(docs, "Deployment", f"api-{GW}")["spec"]["template"]["spec"]
    (token,) = [e for e in api["containers"][0]["env"] if e["name"] == "JUPYTERHUB_API_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {
        "name": "hub", "key": "hub.services.dask-gateway.apiToken"}
    (service,) = [s for s in hub_runtime(docs).JupyterHub.services if s["name"] == "dask-gateway"]
    assert "apiToken" not in service and service["url"] == f"http://traefik-{GW}"
    traefik = find(docs, "Service", f"traefik-{GW}")
    assert traefik["spec"]["type"] == "ClusterIP"
    assert gateway["gateway"]["prefix"] == "/services/dask-gateway"
    # the hub proxies /services/dask-gateway/ to traefik's web port, where the gateway serves
    (web,) = [p for p in traefik["spec"]["ports"] if p["name"] == "web"]
    assert web["port"] == 80
    extra = gateway_extra_config(docs)
    limits = extra["20-hubkit-limits"]
    assert "cluster_max_workers" in limits and "idle_timeout" in limits
    # hub scopes are enforced: the gateway knows its service name, tokens carry the access scope
    assert auth["jupyterhub"]["jupyterhubServiceName"] == "dask-gateway"
    assert ('c.JupyterHubAuthenticator.jupyterhub_service_name = service_name'
            in gateway_config_file(docs))
    access = "access:services!service=dask-gateway"
    roles = hub["hub"]["loadRoles"]
    assert access in roles["user"]["scopes"] and access in roles["server"]["scopes"]
    assert "access:servers!server" in roles["server"]["scopes"]
    assert "HUBKIT_MAX_CLUSTERS_PER_USER = " in extra["40-hubkit-user-limits"]
    assert "c.DaskGateway.backend_class = HubkitKubeBackend" in extra["40-hubkit-user-limits"]
    assert hub["cull"]["enabled"] is True and hub["cull"]["timeout"] > 0
    assert hub["cull"]["every"] > 0
    assert hub["singleuser"]["cpu"]["limit"] and hub["singleuser"]["memory"]["limit"]
    assert all("cpu_limit" in p["kubespawner_override"] and "mem_limit" in p["kubespawner_override"]
               for p in hub["singleuser"]["profileList"])
    assert sum(bool(p.get("default")) for p in hub["singleuser"]["profileList"]) == 1


def test_watch_is_off_by_default(chart_dir):
    docs = render(chart_dir, {})
    assert not [d for d in own(docs) if "watch" in d["metadata"]["name"]]
    notes = render_files(chart_dir, {})["hubkit/templates/NOTES.txt"]
    assert "Watcher:      off (watch.enabled=true runs `hubkit chain watch`)" in notes


@pytest.mark.parametrize("credentials", ["secret", "workloadIdentity"])
def test_watcher_runs_hubkit_chain_watch_without_api_rights(chart_dir, credentials):
    from hubkit.cli import build_parser

    values = {"watch": {"enabled": True, "interval": 120, "maxRoundSeconds": 1800},
              "storage": {"s3": {"credentials": credentials}},
              "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:x"}}}
    docs = render(chart_dir, values)
    watch = find(docs, "Deployment", "hubkit-watch")
    assert watch["spec"]["replicas"] == 1 and watch["spec"]["strategy"]["type"] == "Recreate"
    spec = watch["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    # the real CLI accepts the command, and it is the chain's watch with a heartbeat
    command = container["command"]
    assert command[0] == "hubkit"
    args = build_parser().parse_args(command[1:])
    assert (args.command, args.chain_command) == ("chain", "watch")
    assert args.interval == 120 and args.heartbeat
    assert args.create  # a new install's store prefix is empty until the first upload
    # its own ServiceAccount, no token, no Kubernetes API rights
    account = find(docs, "ServiceAccount", spec["serviceAccountName"])
    assert account["metadata"]["name"] == "hubkit-watch"
    assert account["automountServiceAccountToken"] is False
    assert spec["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}
    bound = [d for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}
             and any(s.get("name") == "hubkit-watch" for s in d.get("subjects") or [])]
    assert not bound
    # the store settings and, with keys, the same Secret as everyone else
    env_from = container["envFrom"]
    assert {"configMapRef": {"name": "hubkit-env"}} in env_from
    has_secret = {"secretRef": {"name": "hubkit-storage-credentials"}} in env_from
    assert has_secret == (credentials == "secret")
    # not the gateway: its LocalCluster is sized to these limits
    assert not any("dask-gateway" in json.dumps(e) for e in env_from)
    assert container["resources"]["limits"] and container["resources"]["requests"]
    # probes on the heartbeat
    assert container["readinessProbe"]["exec"]["command"] == ["test", "-e", args.heartbeat]
    liveness = container["livenessProbe"]["exec"]["command"]
    assert liveness[:2] == ["python", "-c"] and args.heartbeat in liveness[2]
    assert "> 1920)" in liveness[2]  # interval + maxRoundSeconds
    # the chain's network policy covers it
    jobs = find(docs, "NetworkPolicy", "hubkit-jobs")
    from k8smodel import selector_matches
    assert selector_matches(jobs["spec"]["podSelector"], watch["spec"]["template"]["metadata"][
        "labels"])
    notes = render_files(chart_dir, values)["hubkit/templates/NOTES.txt"]
    assert "Watcher:      Deployment hubkit-watch (`hubkit chain watch` every 120 s)" in notes


def test_watch_heartbeat_and_liveness_probe(chart_dir, tmp_path, monkeypatch):
    """`hubkit chain watch --heartbeat` touches the file the probe checks; the probe's own
    command passes on a fresh heartbeat and fails on a stale one."""
    import os
    import subprocess
    import sys

    from hubkit.cli import main

    docs = render(chart_dir, {"watch": {"enabled": True, "interval": 60,
                                        "maxRoundSeconds": 600}})
    (container,) = find(docs, "Deployment", "hubkit-watch")["spec"]["template"]["spec"][
        "containers"]
    probe = container["livenessProbe"]["exec"]["command"]
    heartbeat = tmp_path / "beat" / "heartbeat"
    code = probe[2].replace(container["command"][-1], str(heartbeat))
    monkeypatch.delenv("HUBKIT_DASK", raising=False)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    assert main(["chain", "watch", "--create", "--store", str(tmp_path / "store"),
                 "--interval", "0s", "--rounds", "2", "--workers", "1",
                 "--heartbeat", str(heartbeat)]) == 0
    assert heartbeat.is_file()
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    old = heartbeat.stat().st_mtime - 661
    os.utime(heartbeat, (old, old))
    assert subprocess.run([sys.executable, "-c", code]).returncode == 1


def _kube_traits(name: str) -> set[str]:
    """Trait names of a class of dask-gateway-server's Kubernetes backend, read from the
    installed source (its module needs kubernetes_asyncio, which is not installed here)."""
    import ast

    import dask_gateway_server.backends as backends

    source = Path(backends.__file__).with_name("kubernetes") / "backend.py"
    (cls,) = [node for node in ast.walk(ast.parse(source.read_text()))
              if isinstance(node, ast.ClassDef) and node.name == name]
    return {target.id for node in cls.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def test_gateway_extra_config_runs_against_dask_gateway_server(monkeypatch):
    """The extraConfig snippets use config names the installed dask-gateway-server has, the
    per-user cluster limit refuses a third cluster, and the options stay inside the limits."""
    import asyncio
    import sys
    import types

    pytest.importorskip("dask_gateway_server")
    from dask_gateway_server.app import DaskGateway
    from dask_gateway_server.auth import JupyterHubAuthenticator
    from dask_gateway_server.backends.base import Backend, ClusterConfig, PublicException
    from dask_gateway_server.models import User
    from traitlets.config import Config

    started = []

    class KubeBackend(Backend):  # stand-in: the real one needs kubernetes_asyncio
        running: dict = {}

        async def list_clusters(self, username=None, statuses=None):
            return self.running.get(username, [])

        async def start_cluster(self, user, cluster_options):
            started.append(user.name)
            return f"cluster-{len(started)}"

    fake = types.ModuleType("dask_gateway_server.backends.kubernetes")
    fake.KubeBackend = KubeBackend
    monkeypatch.setitem(sys.modules, "dask_gateway_server.backends.kubernetes", fake)

    extra = yaml.safe_load((CHART / "values.yaml").read_text())["dask-gateway"]["gateway"][
        "extraConfig"]
    c = Config()
    c.KubeClusterConfig.image = "ghcr.io/hubkit/hubkit-notebook:0.1.0"  # set by the chart
    c.KubeBackend.gateway_instance = GW  # set by the chart
    for key in sorted(extra):  # the order the chart writes them in
        exec(compile(extra[key], f"extraConfig.{key}", "exec"), {"c": c})

    kube_traits = _kube_traits("KubeClusterConfig")
    classes = {"ClusterConfig": set(ClusterConfig.class_trait_names()),
               "KubeClusterConfig": kube_traits,
               "JupyterHubAuthenticator": set(JupyterHubAuthenticator.class_trait_names()),
               "Backend": set(Backend.class_trait_names()),
               "DaskGateway": set(DaskGateway.class_trait_names()),
               "KubeBackend": (_kube_traits("KubeBackend") | _kube_traits(
                   "KubeBackendAndControllerMixin") | set(Backend.class_trait_names()))}
    for section in c:
        assert section in classes, section
        unknown = set(c[section]) - set(classes[section])
        assert not unknown, f"{section}: {unknown}"

    limits = ClusterConfig(config=c)  # traitlets validates the values
    assert limits.idle_timeout == 1800 and limits.cluster_max_workers == 20
    # "G" means GiB to dask-gateway-server
    assert limits.cluster_max_cores == 40 and limits.cluster_max_memory == 160 * 2**30

    options = c.Backend.cluster_options
    user = User("alice")
    requested = options.parse_options({"worker_cores": 2, "worker_memory": 8.0})
    chosen = options.get_configuration(requested, user)
    assert set(chosen) <= classes["ClusterConfig"] | kube_traits
    assert chosen["worker_cores_limit"] == 2 and chosen["worker_memory_limit"] == "8.0G"
    assert chosen["idle_timeout"] == 30 * 60
    with pytest.raises(ValueError, match="worker_cores must be <="):
        options.parse_options({"worker_cores": 64})

    backend_class = c.DaskGateway.backend_class
    assert issubclass(backend_class, KubeBackend)
    backend = backend_class(config=c)
    assert asyncio.run(backend.start_cluster(user, {})) == "cluster-1"
    KubeBackend.running = {"alice": ["a", "b"]}
    with pytest.raises(PublicException, match="limit is 2"):
        asyncio.run(backend.start_cluster(user, {}))
    assert asyncio.run(backend.start_cluster(User("bob"), {})) == "cluster-2"


def test_public_gateway_is_refused(chart_dir):
    values = {"dask-gateway": {"traefik": {"service": {"type": "LoadBalancer"}}}}
    with pytest.raises(helm_python.HelmError, match="only through the hub proxy"):
        render(chart_dir, values)


SECRET_WORDS = ("password", "secret", "token", "access_key")
SENSITIVE_KEY = re.compile(r"password|secret|token|access_?key", re.IGNORECASE)
REFERENCE_KEY = re.compile(r"(ref|name|key|type)$", re.IGNORECASE)  # secretKeyRef, ...Name
# traefik's access-log modes for a header (the hub chart's default logs X-Xsrftoken "redacted")
HEADER_MODES = {"keep", "drop", "redacted"}


def _plaintext(obj, path=""):
    """(path, value) of string values under keys that sound like credentials themselves."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            where = f"{path}.{k}"
            if (isinstance(v, str) and v and SENSITIVE_KEY.search(k)
                    and not REFERENCE_KEY.search(k) and v not in HEADER_MODES):
                yield where, v
            yield from _plaintext(v, where)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _plaintext(v, f"{path}[{i}]")


def test_no_plaintext_credentials(rendered):
    _, _, docs = rendered
    for doc in own(docs):
        if doc["kind"] == "Secret":
            assert "stringData" not in doc
            continue
        for container_env in _env_lists(doc):
            for var in container_env:
                if any(w in var["name"].lower() for w in SECRET_WORDS):
                    assert "value" not in var and "secretKeyRef" in var["valueFrom"], var
        found = list(_plaintext({k: v for k, v in doc.items() if k != "_source"}))
        assert not found, f"{doc['kind']} {doc['metadata']['name']}: {found}"
    hub = hub_values(docs)
    for name, value in hub["singleuser"]["extraEnv"].items():
        if any(w in name.lower() for w in SECRET_WORDS):
            assert isinstance(value, dict) and "secretKeyRef" in value["valueFrom"], name
    gateway = gateway_values(docs)
    assert not list(_plaintext(gateway))
    assert not list(_plaintext(hub))


def _env_lists(doc):
    for spec in pod_specs(doc):
        for container in spec["containers"] + spec.get("initContainers", []):
            yield container.get("env", [])


def test_in_cluster_keys_are_generated_in_a_secret(chart_dir):
    docs = render(chart_dir, {"storage": {"type": "inCluster"}})
    (secret,) = [d for d in own(docs) if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "hubkit-storage-credentials"
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    (server,) = [d for d in docs if d["kind"] == "Deployment"
                 and d["metadata"]["name"] == "hubkit-s3"]
    env = server["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all("valueFrom" in v for v in env if v["name"].startswith("MINIO_"))
    # the generated keys appear nowhere but in the Secret's data
    keys = [base64.b64decode(v).decode() for v in secret["data"].values()]
    assert all(len(k) >= 12 for k in keys)
    elsewhere = json.dumps([d for d in docs if d is not secret])
    assert not any(k in elsewhere for k in keys)


def test_checksum_annotations_roll_pods_on_config_change(chart_dir):
    base = {"watch": {"enabled": True}}
    changed = copy.deepcopy(base) | {"storage": {"type": "s3", "s3": {"bucket": "elsewhere"}}}

    def checksum(values):
        (watch,) = [d for d in render(chart_dir, values) if d["kind"] == "Deployment"
                    and d["metadata"]["name"] == "hubkit-watch"]
        return watch["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(base) == checksum(base)
    assert checksum(base) != checksum(changed)


def test_dummy_authenticator_only_in_explicit_dev_values(chart_dir):
    dev = _values_file("values-dev.yaml")
    render(chart_dir, dev)  # allowed there
    dev["dev"]["allowDummyAuthenticator"] = False
    with pytest.raises(helm_python.HelmError, match="DummyAuthenticator"):
        render(chart_dir, dev)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert "dummy" not in json.dumps(defaults["jupyterhub"]).lower()


def test_schema_rejects_a_misspelled_key(chart_dir):
    with pytest.raises(helm_python.HelmError, match="storrage"):
        render(chart_dir, {"storrage": {"type": "s3"}})
    with pytest.raises(helm_python.HelmError, match="bukket"):
        render(chart_dir, {"storage": {"s3": {"bukket": "x"}}})
    with pytest.raises(helm_python.HelmError):
        render(chart_dir, {"storage": {"type": "nfs"}})


@pytest.mark.parametrize("values, wrong", [
    ({"jupyterhub": {"singleuser": {"memmory": {"limit": "4G"}}}}, "memmory"),
    ({"jupyterhub": {"proxy": {"chp": {"networkPolicy": {"egres": []}}}}}, "egres"),
    ({"jupyterhub": {"scheduling": {"userScheduler": {"securityContext": {}}}}},
     "securityContext"),
    ({"jupyterhub": {"cull": {"timeout": "1h"}}}, "timeout"),
    ({"dask-gateway": {"gateway": {"auth": {"jupyterhub": {"apiTokenSecretName": "hub"}}}}},
     "apiTokenSecretName"),
    ({"dask-gateway": {"traefik": {"service": {"port": 80}}}}, "port"),
])
def test_subchart_schema_rejects_a_key_the_real_chart_lacks(chart_dir, values, wrong):
    (chart,) = values
    with pytest.raises(helm_python.HelmError, match=rf"(?s)\b{chart}:.*{wrong}"):
        render(chart_dir, values)


def _schema_node(schema: dict, node: dict, key: str) -> dict | None:
    """The schema of ``key`` under ``node`` (its properties, else additionalProperties), local
    ``$ref``s resolved; None where the schema admits no such key."""
    props = node.get("properties", {})
    if key in props:
        sub = props[key]
    elif isinstance(node.get("additionalProperties"), dict):
        sub = node["additionalProperties"]
    elif node.get("additionalProperties") is False:
        return None
    else:
        sub = {}
    while "$ref" in sub:  # "#/definitions/..." within the same file
        target = schema
        for part in sub["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        sub = target
    return sub


def test_hubkit_keys_are_closed_paths_of_the_real_subchart_schemas(chart_dir):
    """Every key hubkit sets under jupyterhub:/dask-gateway: is declared by the real chart's
    schema; and along most of them the schema is closed (additionalProperties: false), so a
    misspelling there is an error, not a silently ignored value."""
    closed, opened = [], []

    def walk(schema, node, values, path):
        for key, value in values.items():
            sub = _schema_node(schema, node, key)
            assert sub is not None, f"{path}.{key}: not a key of the real chart"
            if isinstance(value, dict) and sub.get("properties"):
                (closed if sub.get("additionalProperties") is False else opened).append(
                    f"{path}.{key}")
                walk(schema, sub, value, f"{path}.{key}")

    for name in DEPENDENCIES:
        schema = json.loads((chart_dir / "charts" / name / "values.schema.json").read_text())
        assert schema.get("additionalProperties") is False, name
        for values in (yaml.safe_load((CHART / "values.yaml").read_text()),
                       _values_file("values-all.yaml"), _values_file("values-dev.yaml")):
            walk(schema, schema, values.get(name, {}), name)
    for path in ("jupyterhub.singleuser.networkPolicy.egressAllowRules", "jupyterhub.cull",
                 "jupyterhub.proxy.chp.networkPolicy", "jupyterhub.singleuser.storage",
                 "dask-gateway.gateway.auth.jupyterhub", "dask-gateway.gateway.backend.worker",
                 "dask-gateway.traefik.service.ports.web"):
        assert path in closed, (path, opened)


def _walk_schema(node, path=""):
    for key, sub in node.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from _walk_schema(sub, f"{path}.{key}")


def test_schema_describes_every_key():
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = [path for path, sub in _walk_schema(schema) if not sub.get("description")]
    assert not missing, missing
    strict = [path for path, sub in _walk_schema(schema)
              if sub.get("type") == "object" and sub.get("additionalProperties") is False]
    assert len(strict) >= 8

    def covered(values, node, path=""):
        for key, value in values.items():
            props = node.get("properties", {})
            assert key in props, f"{path}.{key} is not in values.schema.json"
            if isinstance(value, dict) and "properties" in props[key]:
                covered(value, props[key], f"{path}.{key}")

    for values in (yaml.safe_load((CHART / "values.yaml").read_text()),
                   _values_file("values-all.yaml")):
        covered(values, schema)


def test_values_all_sets_every_option():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = _values_file("values-all.yaml")

    def check(node, vals, path):
        for key, sub in node.get("properties", {}).items():
            if path == "" and key in {"global", "jupyterhub", "dask-gateway"}:
                continue
            assert key in vals, f"ci/values-all.yaml does not set {path}.{key}"
            if sub.get("additionalProperties") is False and "properties" in sub:
                check(sub, vals[key], f"{path}.{key}")

    check(schema, values, "")


# --- Pod Security Standard "restricted" ---------------------------------------------------------

POST_RENDERER = CHART / "post-renderer" / "hubkit-restricted"
GATEWAY_PODS = {f"api-{GW}", f"controller-{GW}", f"traefik-{GW}"}


def post_render(files: dict[str, str]) -> tuple[list[dict], str]:
    """The rendered manifests through the chart's post-renderer, as Helm hands them over (one
    stream, each document headed by its source); the documents out and its standard error."""
    import subprocess
    import sys

    stream = "".join(f"---\n# Source: {path}\n{text}\n" for path, text in sorted(files.items())
                     if not path.endswith("NOTES.txt"))
    done = subprocess.run([sys.executable, str(POST_RENDERER)], input=stream,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d], done.stderr


def restricted_report(docs: list[dict]) -> dict[str, list[str]]:
    report = {}
    for doc in docs:
        for where, meta, spec in pod_templates(doc):
            found = restricted_violations(spec, meta.get("annotations"))
            if found:
                report[where] = found
    return report


def test_pod_security_checker_accepts_a_restricted_pod_and_rejects_each_rule():
    good_container = {
        "name": "c", "image": "x",
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
    }
    good = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [good_container],
            "volumes": [{"name": "v", "emptyDir": {}},
                        {"name": "s", "secret": {"secretName": "s"}}]}
    assert restricted_violations(good) == []

    def bad(change, rule):
        spec = copy.deepcopy(good)
        change(spec)
        found = restricted_violations(spec)
        assert any(f.startswith(rule) for f in found), (rule, found)

    ctx = lambda s: s["containers"][0]["securityContext"]  # noqa: E731
    bad(lambda s: s.update(hostNetwork=True), "Host Namespaces")
    bad(lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "HostPath")
    bad(lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "Volume Types")
    bad(lambda s: ctx(s).update(privileged=True), "Privileged")
    bad(lambda s: ctx(s)["capabilities"].update(add=["SYS_ADMIN"]), "Capabilities")
    bad(lambda s: ctx(s)["capabilities"].update(add=["CHOWN"]), "Capabilities")
    bad(lambda s: ctx(s)["capabilities"].update(drop=["NET_RAW"]), "Capabilities")
    bad(lambda s: s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
        "Host Ports")
    bad(lambda s: ctx(s).pop("allowPrivilegeEscalation"), "Privilege Escalation")
    bad(lambda s: s["securityContext"].pop("runAsNonRoot"), "Running as Non-root")
    bad(lambda s: ctx(s).update(runAsNonRoot=False), "Running as Non-root")
    bad(lambda s: ctx(s).update(runAsUser=0), "Running as Non-root user")
    bad(lambda s: s["securityContext"].pop("seccompProfile"), "Seccomp")
    bad(lambda s: ctx(s).update(seccompProfile={"type": "Unconfined"}), "Seccomp")
    bad(lambda s: ctx(s).update(procMount="Unmasked"), "/proc Mount")
    bad(lambda s: ctx(s).update(seLinuxOptions={"type": "spc_t"}), "SELinux")
    bad(lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "Sysctls")
    bad(lambda s: ctx(s).update(appArmorProfile={"type": "Unconfined"}), "AppArmor")
    bad(lambda s: s.setdefault("initContainers", []).append({"name": "i", "image": "x"}),
        "Privilege Escalation")
    # the container-level settings stand in for missing pod-level ones
    spec = copy.deepcopy(good)
    del spec["securityContext"]
    ctx(spec).update(runAsNonRoot=True, seccompProfile={"type": "Localhost",
                                                        "localhostProfile": "p.json"})
    assert restricted_violations(spec) == []


def test_without_the_post_renderer_only_the_gateway_pods_fail_restricted(rendered):
    _, _, docs = rendered
    assert set(restricted_report(docs)) == {f"Deployment {n}" for n in GATEWAY_PODS}


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_pod_meets_restricted_after_the_post_renderer(value_set, chart_dir, crd_schemas):
    files = render_files(chart_dir, VALUE_SETS[value_set]())
    docs = [d for path, text in files.items() if not path.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]
    out, log = post_render(files)
    assert "3 Dask Gateway pod template(s) restricted" in log
    pods = [where for d in out for where, _, _ in pod_templates(d)]
    assert len(pods) >= 10 and {f"Deployment {n}" for n in GATEWAY_PODS} <= set(pods)
    assert restricted_report(out) == {}
    # the post-renderer changes the gateway's pod templates and nothing else
    strip = lambda d: {k: v for k, v in d.items() if k != "_source"}  # noqa: E731
    before = {(d["kind"], d["metadata"]["name"]): strip(d) for d in docs}
    after = {(d["kind"], d["metadata"]["name"]): d for d in out}
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("Deployment", n) for n in GATEWAY_PODS}
    for key in changed:
        validate_manifest(after[key] | {"_source": "post-rendered"}, kube_versions()[0],
                          crd_schemas)
        spec = after[key]["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsUser"] == 1000
        assert before[key]["spec"]["template"]["spec"]["containers"][0]["image"] == (
            spec["containers"][0]["image"])


def test_post_renderer_refuses_what_it_must_not_override(chart_dir):
    import subprocess
    import sys

    files = render_files(chart_dir)
    path = "hubkit/charts/dask-gateway/templates/traefik/deployment.yaml"
    (doc,) = [d for d in yaml.safe_load_all(files[path]) if d]
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    done = subprocess.run([sys.executable, str(POST_RENDERER)], input=yaml.safe_dump(doc),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "privileged" in done.stderr
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"runAsUser": 0}
    done = subprocess.run([sys.executable, str(POST_RENDERER)], input=yaml.safe_dump(doc),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "runAsUser" in done.stderr


def test_post_renderer_is_a_helm4_plugin_and_a_helm3_executable():
    import os

    plugin = yaml.safe_load((POST_RENDERER.parent / "plugin.yaml").read_text())
    assert plugin["apiVersion"] == "v1" and plugin["type"] == "postrenderer/v1"
    assert plugin["runtime"] == "subprocess"
    (command,) = plugin["runtimeConfig"]["platformCommand"]
    assert command["command"] == "${HELM_PLUGIN_DIR}/" + POST_RENDERER.name
    assert os.access(POST_RENDERER, os.X_OK)
    assert POST_RENDERER.read_text().startswith("#!/usr/bin/env python3\n")
    guide = (REPO / "docs" / "admin-guide.md").read_text()
    assert f"--post-renderer {plugin['name']}" in guide  # Helm 4: the plugin's name
    assert "--post-renderer helm/hubkit/post-renderer/hubkit-restricted" in guide  # Helm 3


def test_pods_made_at_run_time_meet_restricted(rendered):
    """User servers (KubeSpawner) and Dask pods (the gateway's backend) are not Helm manifests:
    their pods are assembled from the values the subcharts pass on, as those spawners do."""
    _, _, docs = rendered
    hub = hub_values(docs)
    singleuser = hub["singleuser"]
    user_container = {"name": "notebook", "image": "x", "securityContext": {
        "runAsUser": singleuser["uid"], "runAsGroup": singleuser["fsGid"],
        "allowPrivilegeEscalation": singleuser["allowPrivilegeEscalation"],
        **hub["hub"]["config"]["KubeSpawner"]["container_security_context"]}}
    user_pod = {"securityContext": {"fsGroup": singleuser["fsGid"]},
                "containers": [user_container],
                "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim"}}]}
    assert singleuser["cloudMetadata"]["blockWithIptables"] is False  # no privileged init
    assert restricted_violations(user_pod) == []
    gateway = gateway_values(docs)
    for role in ("scheduler", "worker"):
        backend = gateway["gateway"]["backend"][role]
        spec = {**backend["extraPodConfig"],
                "containers": [{"name": role, "image": "x",
                                **backend["extraContainerConfig"]}]}
        assert restricted_violations(spec) == [], role
        assert spec["automountServiceAccountToken"] is False


# --- Dask Gateway reachable from notebooks and Dask pods in every mode --------------------------

HOST = "hub.example.org"
MODES = {
    "http": {},
    "https-autohttps": {"jupyterhub": {"proxy": {"https": {
        "enabled": True, "hosts": [HOST], "letsencrypt": {"contactEmail": "admin@example.org"}}}}},
    "https-ingress": {"jupyterhub": {
        "ingress": {"enabled": True, "hosts": [HOST],
                    "tls": [{"hosts": [HOST], "secretName": "hub-tls"}]},
        "proxy": {"service": {"type": "ClusterIP"}}}},
}


def _user_pod_labels(docs: list[dict]) -> dict:
    """Labels KubeSpawner gives a user server under the hub chart (its common labels, the
    component label, and singleuser.extraLabels)."""
    hub = hub_values(docs)
    return {"app": "jupyterhub", "app.kubernetes.io/name": "jupyterhub",
            "release": RELEASE, "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/managed-by": "kubespawner", "component": "singleuser-server",
            "hub.jupyter.org/username": "alice", **hub["singleuser"]["extraLabels"]}


def _dask_pod_labels(docs: list[dict], component: str) -> dict:
    """Labels dask-gateway-server's Kubernetes backend gives a cluster's pods."""
    (controller,) = [d for d in by_source(docs, "dask-gateway/templates/controller/configmap")]
    instance = re.search(r"gateway_instance = '([^']+)'",
                         controller["data"]["dask_gateway_config.py"])[1]
    return {"app.kubernetes.io/name": "dask-gateway", "gateway.dask.org/instance": instance,
            "gateway.dask.org/cluster": "hub.0123abcd", "app.kubernetes.io/component": component}


def _labels_of(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"]["labels"]


def _port_names(container: dict) -> set[str]:
    return {p["name"] for p in container.get("ports") or [] if "name" in p}


def _route_to_api(docs: list[dict], entry: str, path: str) -> str:
    """The in-cluster URL traefik forwards ``path`` on entry point ``entry`` to."""
    routes = [r for r in docs if r["kind"] == "IngressRoute" and entry in r["spec"]["entryPoints"]]
    for route in routes:
        for rule in route["spec"]["routes"]:
            prefix = re.fullmatch(r"PathPrefix\(`([^`]+)`\)", rule["match"])
            if prefix and path.startswith(prefix[1]):
                (service,) = rule["services"]
                return f"http://{service['name']}.{NAMESPACE}.svc:{service['port']}"
    raise AssertionError(f"no IngressRoute on {entry} matches {path}")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_gateway_reachable_from_notebooks_and_dask_pods(chart_dir, mode):
    from urllib.parse import urlsplit

    from k8smodel import allowed, resolve, traefik_entrypoints

    docs = render(chart_dir, MODES[mode])
    config = find(docs, "ConfigMap", "hubkit-dask-gateway")["data"]
    address = config["DASK_GATEWAY__ADDRESS"]
    assert urlsplit(address).hostname.split(".")[0] not in {"proxy-public", "proxy-http"}
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    clients = {"notebook": _user_pod_labels(docs),
               "dask scheduler": _dask_pod_labels(docs, "dask-scheduler"),
               "dask worker": _dask_pod_labels(docs, "dask-worker")}

    # the API: Service -> traefik's web entry point -> IngressRoute -> the gateway API
    _, traefik, container, port = resolve(address, docs, NAMESPACE)
    assert _labels_of(traefik)["app.kubernetes.io/component"] == "traefik"
    entry = traefik_entrypoints(container)[port]
    assert entry == "web"
    _, api, api_container, api_port = resolve(
        _route_to_api(docs, entry, urlsplit(address).path + "/api/v1/clusters/"), docs, NAMESPACE)
    assert _labels_of(api)["app.kubernetes.io/component"] == "gateway"
    verdict = allowed(policies, _labels_of(traefik), _labels_of(api), api_port,
                      _port_names(api_container))
    assert verdict[0], f"traefik -> gateway API: {verdict[1]}"
    for who, labels in clients.items():
        verdict = allowed(policies, labels, _labels_of(traefik), port, _port_names(container))
        assert verdict[0], f"{mode}: {who} -> {address}: {verdict[1]}"

    # scheduler connections: traefik's tcp entry point
    proxy = urlsplit(config["DASK_GATEWAY__PROXY_ADDRESS"])
    assert proxy.scheme == "gateway"
    _, workload, container, port = resolve(f"http://{proxy.netloc}", docs, NAMESPACE)
    assert workload is traefik and traefik_entrypoints(container)[port] == "tcp"
    verdict = allowed(policies, clients["notebook"], _labels_of(traefik), port,
                      _port_names(container))
    assert verdict[0], f"{mode}: notebook -> {proxy.netloc}: {verdict[1]}"

    # browsers: the hub proxy routes the public path to the URL the hub service has
    hub = hub_values(docs)
    # (JupyterHub proxies /services/<name>/ to a service's url)
    public = f"{hub['hub']['baseUrl']}services/dask-gateway/"
    assert config["DASK_GATEWAY__PUBLIC_ADDRESS"] == public
    (service,) = [s for s in hub_runtime(docs).JupyterHub.services if s["name"] == "dask-gateway"]
    _, workload, container, port = resolve(service["url"], docs, NAMESPACE)
    assert workload is traefik and traefik_entrypoints(container)[port] == "web"
    chp = find(docs, "Deployment", "proxy")
    verdict = allowed(policies, _labels_of(chp), _labels_of(traefik), port, _port_names(container))
    assert verdict[0], f"{mode}: hub proxy -> gateway: {verdict[1]}"

    # every client gets the variables: user servers by reference, Dask pods by envFrom
    env = hub_runtime(docs).KubeSpawner.environment
    for key in config:
        assert env[key]["valueFrom"]["configMapKeyRef"] == {"name": "hubkit-dask-gateway",
                                                            "key": key}
    kube = gateway_runtime(docs).KubeClusterConfig
    for role in ("scheduler", "worker"):
        env_from = kube[f"{role}_extra_container_config"]["envFrom"]
        assert {"configMapRef": {"name": "hubkit-dask-gateway"}} in env_from

    # why not proxy-public: with autohttps it is the TLS terminator that redirects http to https
    _, public, _, _ = resolve(f"http://proxy-public.{NAMESPACE}.svc:80", docs, NAMESPACE)
    component = _labels_of(public)["component"]
    assert component == ("autohttps" if mode == "https-autohttps" else "proxy")
    if mode == "https-ingress":
        (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
        assert ingress["spec"]["tls"][0]["hosts"] == [HOST]


def test_gateway_reachability_check_can_fail(chart_dir):
    """Without hubkit's egress rule to traefik, a notebook cannot open the gateway's address."""
    from k8smodel import allowed, resolve

    values = {"jupyterhub": {"singleuser": {"networkPolicy": {"egress": []}}}}
    docs = render(chart_dir, values)
    address = find(docs, "ConfigMap", "hubkit-dask-gateway")["data"]["DASK_GATEWAY__ADDRESS"]
    _, traefik, container, port = resolve(address, docs, NAMESPACE)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    verdict = allowed(policies, _user_pod_labels(docs), _labels_of(traefik), port,
                      _port_names(container))
    assert verdict == (False, "Egress denied by ['singleuser']")
    with pytest.raises(AssertionError, match="no port 81"):
        resolve(address.replace(":80/", ":81/"), docs, NAMESPACE)


# --- Names derived from the release: two releases in one namespace ------------------------------

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass",
                  "CustomResourceDefinition", "Namespace", "PersistentVolume"}


def second_release(name: str) -> dict:
    """What a second release in a namespace that has one sets: the hub chart's names (its
    objects are not named after the release unless told), and where the gateway finds that hub."""
    return {"jupyterhub": {"fullnameOverride": name},
            "dask-gateway": {"gateway": {"auth": {"jupyterhub": {
                "apiTokenFromSecretName": f"{name}-hub",
                "apiUrl": f"http://{name}-hub:8081/hub/api"}}}}}


def _names(docs: list[dict]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def _check_release_wiring(docs: list[dict], prefix: str, gateway: str):
    """The names the hub and the gateway derive at run time are the objects this release
    rendered (so the Python in values.yaml and the chart's helper agree)."""
    from k8smodel import resolve

    names = _names(own(docs))
    assert {("ConfigMap", f"{prefix}-env"), ("ConfigMap", f"{prefix}-dask-gateway"),
            ("ServiceAccount", f"{prefix}-storage")} <= names, names
    hub = hub_runtime(docs)
    assert hub.KubeSpawner.service_account == f"{prefix}-storage"
    refs = {next(iter(v["valueFrom"].values()))["name"]
            for v in hub.KubeSpawner.environment.values() if isinstance(v, dict)}
    assert refs == {f"{prefix}-env", f"{prefix}-dask-gateway", f"{prefix}-storage-credentials"}
    (service,) = [s for s in hub.JupyterHub.services if s["name"] == "dask-gateway"]
    resolved, _, _, _ = resolve(service["url"], docs, NAMESPACE)
    assert resolved["metadata"]["name"] == f"traefik-{gateway}"
    kube = gateway_runtime(docs).KubeClusterConfig
    for role in ("scheduler", "worker"):
        assert kube[f"{role}_extra_pod_config"]["serviceAccountName"] == f"{prefix}-storage"
        sources = {next(iter(e.values()))["name"]
                   for e in kube[f"{role}_extra_container_config"]["envFrom"]}
        assert sources == refs
    address = find(docs, "ConfigMap", f"{prefix}-dask-gateway")["data"]["DASK_GATEWAY__ADDRESS"]
    assert resolve(address, docs, NAMESPACE)[0]["metadata"]["name"] == f"traefik-{gateway}"


def test_two_releases_share_a_namespace_with_disjoint_names(chart_dir):
    first = render(chart_dir, _values_file("values-all.yaml"), release="hubkit")
    second = render(chart_dir, _deep_merge(_values_file("values-all.yaml"),
                                           second_release("lab")), release="lab")
    assert _names(first) & _names(second) == set()
    # cluster-wide objects differ too (the gateway's ClusterRoles were fixed names before)
    assert {n for n in _names(second) if n[0] in CLUSTER_SCOPED}
    _check_release_wiring(first, "hubkit", "hubkit-dask-gateway")
    _check_release_wiring(second, "lab-hubkit", "lab-dask-gateway")
    # each release's policies select its own pods only
    lab_dask = {"app.kubernetes.io/name": "dask-gateway", "gateway.dask.org/cluster": "x",
                "gateway.dask.org/instance": "lab-dask-gateway"}
    from k8smodel import selector_matches
    policy = find(first, "NetworkPolicy", "hubkit-dask-clusters")
    assert not selector_matches(policy["spec"]["podSelector"], lab_dask)
    assert selector_matches(find(second, "NetworkPolicy", "lab-hubkit-dask-clusters")["spec"][
        "podSelector"], lab_dask)
    # the gateway of the second release asks its own hub with its own token
    api = find(second, "Deployment", "api-lab-dask-gateway")["spec"]["template"]["spec"]
    (token,) = [e for e in api["containers"][0]["env"] if e["name"] == "JUPYTERHUB_API_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "lab-hub"
    assert find(second, "Secret", "lab-hub")
    assert gateway_runtime(second).JupyterHubAuthenticator.jupyterhub_api_url == (
        "http://lab-hub:8081/hub/api")


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.mark.parametrize("release, prefix", [("hubkit-prod", "hubkit-prod"),
                                             ("team-a", "team-a-hubkit")])
def test_object_names_follow_the_release(chart_dir, release, prefix):
    docs = render(chart_dir, {"watch": {"enabled": True}, "storage": {"type": "inCluster"}},
                  release=release)
    for doc in own(docs):
        assert doc["metadata"]["name"].startswith(prefix + "-"), doc["metadata"]["name"]
    _check_release_wiring(docs, prefix, f"{release}-dask-gateway")
    notes = render_files(chart_dir, {"watch": {"enabled": True}},
                         release=release)["hubkit/templates/NOTES.txt"]
    assert f"Deployment {prefix}-watch" in notes
    assert f"http://traefik-{release}-dask-gateway.{NAMESPACE}.svc:80/services/dask-gateway" in (
        notes)
    assert "get service proxy-public" in notes and "HTTPS is off" in notes
    notes = render_files(chart_dir, _deep_merge(second_release("lab"), MODES["https-ingress"]),
                         release="lab")["hubkit/templates/NOTES.txt"]
    assert "get service lab-proxy-public" in notes and "HTTPS is off" not in notes


@pytest.mark.parametrize("release, values, message", [
    ("lab", {"jupyterhub": {"fullnameOverride": "lab"}}, "apiTokenFromSecretName"),
    ("lab", _deep_merge(second_release("lab"), {"dask-gateway": {"gateway": {"auth": {
        "jupyterhub": {"apiUrl": None}}}}}), "apiUrl"),
    ("lab", {"dask-gateway": {"fullnameOverride": "dask-gateway"}}, "fullnameOverride"),
    ("my-dask-gateway", {}, "dask-gateway"),
    ("a" * 40, {}, "too long"),
])
def test_inconsistent_names_are_refused(chart_dir, release, values, message):
    with pytest.raises(helm_python.HelmError, match=message):
        render(chart_dir, values, release=release)


def test_in_cluster_store_can_keep_an_existing_volume(chart_dir):
    values = {"storage": {"type": "inCluster",
                          "inCluster": {"persistence": {"existingClaim": "hubkit-s3-data"}}}}
    docs = render(chart_dir, values, release="hub")
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"
                and "s3" in d["metadata"]["name"]]
    server = find(docs, "Deployment", "hub-hubkit-s3")["spec"]["template"]["spec"]
    (data,) = [v for v in server["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == "hubkit-s3-data"
    default = find(render(chart_dir, {"storage": {"type": "inCluster"}}, release="hub"),
                   "PersistentVolumeClaim", "hub-hubkit-s3-data")
    assert default["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
