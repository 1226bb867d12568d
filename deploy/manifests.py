#!/usr/bin/env python3
"""Helpers for scripts/check-deploy (run with the tools venv's python: it has PyYAML).

  manifests.py split RENDERED.yaml OUTDIR   core objects to OUTDIR/core.yaml, each
                                            monitoring.coreos.com object to OUTDIR/<kind>-<n>.json
  manifests.py compare HELM.yaml KUSTOMIZE.yaml
                                            the (kind, name) sets must be equal, and so must every
                                            object's spec once the tools' own differences are removed
"""

import json
import re
import sys
from pathlib import Path

import yaml

CRD_GROUP = "monitoring.coreos.com/"
# kustomize's configMapGenerator suffix: "-" and 10 characters of its hash alphabet.
HASH_SUFFIX = re.compile(r"-[bcdfghkmt2456789]{10}$")


def load(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            sys.exit(f"{path}: a document without kind/metadata: {str(d)[:200]}")
    return docs


def split(rendered, outdir):
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    core, crds = [], 0
    for d in load(rendered):
        if str(d.get("apiVersion", "")).startswith(CRD_GROUP):
            crds += 1
            (out / f"{d['kind'].lower()}-{crds}.json").write_text(json.dumps(d))
        else:
            core.append(d)
    (out / "core.yaml").write_text(yaml.safe_dump_all(core, sort_keys=False))
    print(f"{len(core)} core objects, {crds} monitoring.coreos.com objects")


def strip_meta(meta):
    """Labels and annotations differ by design (helm.sh/chart, managed-by, checksums, hooks,
    Argo CD waves); names and selectors do not."""
    if isinstance(meta, dict):
        meta.pop("labels", None)
        meta.pop("annotations", None)


def normalise(d):
    d = json.loads(json.dumps(d))
    kind, name = d["kind"], d["metadata"]["name"]
    if kind == "ConfigMap":
        name = HASH_SUFFIX.sub("", name)
    spec = d.get("spec", {})
    pod = None
    if kind in ("Deployment", "Job"):
        strip_meta(spec["template"].get("metadata"))
        pod = spec["template"]["spec"]
    elif kind == "CronJob":
        strip_meta(spec["jobTemplate"].get("metadata"))
        strip_meta(spec["jobTemplate"]["spec"]["template"].get("metadata"))
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    if pod:
        for c in pod.get("containers", []):
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    ref["configMapRef"]["name"] = HASH_SUFFIX.sub("", ref["configMapRef"]["name"])
            if kind == "Job":
                # The chart's hook Job carries the config inline (it runs before the ConfigMap
                # exists); the base's Job reads the ConfigMap, applied just before it.
                c["env"] = [e for e in c.get("env", [])
                            if not (e["name"].startswith("PORTAL__") and "value" in e)]
                c.pop("envFrom", None)
    body = {k: v for k, v in d.items() if k not in ("metadata", "apiVersion", "kind")}
    return (kind, name), d["apiVersion"], body


def diff(a, b, path=""):
    if type(a) is not type(b):
        return [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}.{k}: only in kustomize")
            elif k not in b:
                out.append(f"{path}.{k}: only in helm")
            else:
                out += diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items in helm, {len(b)} in kustomize"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: helm {a!r} != kustomize {b!r}"]


def compare(helm_path, kust_path):
    helm = {}
    for d in load(helm_path):
        key, api, body = normalise(d)
        helm[key] = (api, body)
    kust = {}
    for d in load(kust_path):
        key, api, body = normalise(d)
        kust[key] = (api, body)
    problems = []
    for key in sorted(set(helm) - set(kust)):
        problems.append(f"{key[0]}/{key[1]}: only in helm template")
    for key in sorted(set(kust) - set(helm)):
        problems.append(f"{key[0]}/{key[1]}: only in kustomize")
    for key in sorted(set(helm) & set(kust)):
        (ha, hb), (ka, kb) = helm[key], kust[key]
        if ha != ka:
            problems.append(f"{key[0]}/{key[1]}: apiVersion {ha} != {ka}")
        problems += [f"{key[0]}/{key[1]}{p}" for p in diff(hb, kb)]
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"{len(helm)} objects, same (kind, name) and spec")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "split":
        split(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
