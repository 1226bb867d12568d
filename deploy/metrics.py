#!/usr/bin/env python3
"""Check the PromQL of the Grafana dashboard (and the PrometheusRule) against the metrics the Rust
code registers, for scripts/check-deploy.

  metrics.py DASHBOARD.json [--rendered RENDERED.yaml] [--rules PROMETHEUSRULE.json ...]

The metrics are read from the sources below (prometheus-client `registry.register("name", "help",
<field>.clone())` calls): the prefix is the file's `Registry::with_prefix(...)`, or that of the file
whose registry the metrics are registered on; the type and labels come from the field's declaration
(`field: Counter`, `field: Family<XLabels, Histogram>`, `struct XLabels { ... }`). Exposed series:
a counter is <name>_total, a gauge <name>, a histogram <name>_bucket (with le), _sum and _count.

Every portal_* name in an expression must be an exposed series; every label in its selector, in
`by (...)`/`without (...)` and in label_values() must be one of the metric's labels or a target
label Prometheus adds; rate()/irate()/increase() must not be applied to a gauge.
--rendered: the chart's dashboard ConfigMap (rendered with grafanaDashboard.enabled) must carry
exactly DASHBOARD.json. --rules: the same expression checks for the rendered PrometheusRule.
Needs PyYAML only with --rendered (the tools venv has it).
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# file -> the file whose registry (and prefix) its metrics are registered on (None: its own), or a
# tuple of such files when the same metrics are registered on several processes' registries.
SOURCES = {
    "bins/api/src/http/metrics.rs": None,
    # DeliveryMetrics::register(&mut registry) is called on the api's registry.
    "shared/src/messages/dispatcher.rs": "bins/api/src/http/metrics.rs",
    # PropagationMetrics::register: the api's registry (the propagation dispatcher runs there).
    "shared/src/integrations/propagation/dispatcher.rs": "bins/api/src/http/metrics.rs",
    # ClientMetrics::register: the api's and the queue consumer's registries.
    "shared/src/integrations/client.rs": ("bins/api/src/http/metrics.rs",
                                          "bins/queue-consumer/src/metrics.rs"),
    "bins/realtime/src/metrics.rs": None,
    "bins/queue-consumer/src/metrics.rs": None,
}


def hosts(rel):
    """The files whose registries `rel`'s metrics are registered on."""
    host = SOURCES[rel]
    return host if isinstance(host, tuple) else (host or rel,)
# Labels the scrape adds (prometheus-operator ServiceMonitor and the default relabelling).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}

REGISTER = re.compile(
    r'\.register\(\s*"([a-z][a-z0-9_]*)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*(?:self\.)?([a-z_][a-z0-9_]*)\.clone\(\)\s*,?\s*\)',
    re.S)
PREFIX = re.compile(r'Registry::with_prefix\(\s*"([a-z][a-z0-9_]*)"\s*\)')
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
NAME = re.compile(r'(?<![A-Za-z0-9_:$])(portal_[A-Za-z0-9_:]*)')
SELECTOR = re.compile(r'(portal_[A-Za-z0-9_:]*)\s*\{([^}]*)\}')
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)')
GROUPING = re.compile(r'\b(?:by|without)\s*\(([^)]*)\)')
RATE = re.compile(r'\b(rate|irate|increase)\s*\(\s*(portal_[A-Za-z0-9_:]*)')
LABEL_VALUES = re.compile(r'label_values\(\s*(portal_[A-Za-z0-9_:]*)\s*(?:\{[^}]*\})?\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)')


def fail(problems):
    print("\n".join(problems))
    sys.exit(1)


def registered():
    """{series name: (type, labels)} of everything the sources expose."""
    texts, prefixes, series, problems = {}, {}, {}, []
    for rel in SOURCES:
        path = ROOT / rel
        if not path.is_file():
            problems.append(f"{rel}: missing (update deploy/metrics.py SOURCES)")
            continue
        texts[rel] = path.read_text()
    if problems:
        fail(problems)
    for rel in SOURCES:
        prefixes[rel] = []
        for host in hosts(rel):
            m = PREFIX.search(texts[host])
            if not m:
                problems.append(f"{host}: no Registry::with_prefix(\"...\")")
                continue
            prefixes[rel].append(m.group(1))
    if problems:
        fail(problems)
    for rel, text in texts.items():
        structs = {m.group(1): set(re.findall(r'(?:pub\s+)?([a-z_][a-z0-9_]*)\s*:', m.group(2)))
                   for m in re.finditer(r'struct\s+(\w+)\s*\{([^}]*)\}', text)}
        found = REGISTER.findall(text)
        if not found:
            problems.append(f"{rel}: no registry.register(\"name\", \"help\", field.clone()) found")
        for name, field in found:
            decl = re.search(rf'\b{field}\s*:\s*(?:Family<\s*(\w+)\s*,\s*)?(Counter|Gauge|Histogram)\b', text)
            if not decl:
                problems.append(f"{rel}: metric {name}: cannot find the type of field {field}")
                continue
            label_struct, kind = decl.groups()
            labels = set()
            if label_struct:
                if label_struct not in structs:
                    problems.append(f"{rel}: metric {name}: no struct {label_struct}")
                    continue
                labels = structs[label_struct]
            for prefix in prefixes[rel]:
                full = f"{prefix}_{name}"
                if kind == "Counter":
                    series[f"{full}_total"] = ("counter", labels)
                elif kind == "Gauge":
                    series[full] = ("gauge", labels)
                else:
                    series[f"{full}_bucket"] = ("histogram", labels | {"le"})
                    series[f"{full}_sum"] = ("histogram", labels)
                    series[f"{full}_count"] = ("histogram", labels)
    if problems:
        fail(problems)
    return series


def check_expr(where, expr, series):
    problems = []
    bare = STRING.sub('""', expr)
    names = set(NAME.findall(bare))
    for name in sorted(names):
        if name not in series:
            hint = [s for s in series if s.rsplit("_", 1)[0] == name or name.rsplit("_", 1)[0] == s]
            problems.append(f"{where}: {name} is not a registered series"
                            + (f" (did you mean {', '.join(sorted(hint))}?)" if hint else ""))
    known = {n for n in names if n in series}
    for m in SELECTOR.finditer(bare):
        if m.group(1) not in series:
            continue
        allowed = series[m.group(1)][1] | TARGET_LABELS
        for label in MATCHER.findall(m.group(2)):
            if label not in allowed:
                problems.append(f"{where}: {m.group(1)} has no label {label!r} "
                                f"(it has {', '.join(sorted(series[m.group(1)][1])) or 'none'})")
    grouping_allowed = set(TARGET_LABELS)
    for n in known:
        grouping_allowed |= series[n][1]
    # Grouping labels are checked only where every metric is ours (kube-state-metrics has its own).
    others = re.findall(r'(?<![A-Za-z0-9_:$])((?!portal_)[a-z][a-z0-9_]*_[a-z0-9_]+)\s*\{', bare)
    for m in (GROUPING.finditer(bare) if known and not others else ()):
        for label in filter(None, (s.strip() for s in m.group(1).split(","))):
            if label not in grouping_allowed:
                problems.append(f"{where}: groups by {label!r}, a label of none of {', '.join(sorted(known))}")
    for fn, name in RATE.findall(bare):
        if name in series and series[name][0] == "gauge":
            problems.append(f"{where}: {fn}() of the gauge {name}")
    for name, label in LABEL_VALUES.findall(bare):
        if name in series and label not in series[name][1] | TARGET_LABELS:
            problems.append(f"{where}: label_values of {name}: no label {label!r}")
    return problems, known


def walk_panels(panels, path=""):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def dashboard_exprs(dash, problems):
    """(where, expr) of every target and query variable, plus structural checks."""
    out = []
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("dashboard: no variable `datasource` of type datasource (query prometheus)")
    if "namespace" not in variables:
        problems.append("dashboard: no variable `namespace`")
    if not isinstance(dash.get("schemaVersion"), int) or not dash.get("uid"):
        problems.append("dashboard: schemaVersion and uid are required")
    for name, v in variables.items():
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            out.append((f"variable {name}", q or ""))
    ids = set()
    for p in walk_panels(dash.get("panels", [])):
        title = p.get("title", "?")
        if p.get("id") in ids:
            problems.append(f"panel {title!r}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {title!r}: datasource is not ${{datasource}}")
        targets = p.get("targets", [])
        if not targets:
            problems.append(f"panel {title!r}: no targets")
        for t in targets:
            if not t.get("expr", "").strip():
                problems.append(f"panel {title!r} {t.get('refId')}: empty expr")
            else:
                out.append((f"panel {title!r} {t.get('refId')}", t["expr"]))
    return out


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    dash_path, rendered, rules = Path(argv[0]), None, []
    args = argv[1:]
    while args:
        if args[0] == "--rendered" and len(args) > 1:
            rendered, args = args[1], args[2:]
        elif args[0] == "--rules" and len(args) > 1:
            args = args[1:]
            while args and not args[0].startswith("--"):
                rules.append(args.pop(0))
        else:
            sys.exit(__doc__)

    series = registered()
    problems = []
    try:
        dash = json.loads(dash_path.read_text())
    except (OSError, ValueError) as err:
        fail([f"{dash_path}: {err}"])
    exprs = dashboard_exprs(dash, problems)
    used = set()
    for where, expr in exprs:
        p, names = check_expr(where, expr, series)
        problems += p
        used |= names
        if not NAME.search(expr) and where.startswith("panel"):
            problems.append(f"{where}: uses no portal_* metric")
    n_rules = 0
    for path in rules:
        rule = json.loads(Path(path).read_text())
        for g in rule.get("spec", {}).get("groups", []):
            for r in g.get("rules", []):
                n_rules += 1
                problems += check_expr(f"{Path(path).name} {r.get('alert') or r.get('record')}",
                                       r.get("expr", ""), series)[0]
    if rendered:
        import yaml
        with open(rendered) as f:
            maps = [d for d in yaml.safe_load_all(f)
                    if d and d.get("kind") == "ConfigMap" and dash_path.name in (d.get("data") or {})]
        if len(maps) != 1:
            problems.append(f"{rendered}: {len(maps)} ConfigMaps carry {dash_path.name}, expected 1")
        elif json.loads(maps[0]["data"][dash_path.name]) != dash:
            problems.append(f"{rendered}: ConfigMap {maps[0]['metadata']['name']} differs from {dash_path}")
    if problems:
        fail(problems)
    families = {re.sub(r'_(total|bucket|sum|count)$', '', s) for s in series}
    shown = {re.sub(r'_(total|bucket|sum|count)$', '', s) for s in used}
    print(f"{len(exprs)} dashboard queries use {len(shown)} of {len(families)} metrics"
          + (f", {n_rules} rules" if rules else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
