"""The ways to run the campaign flow outside ``aloop run``: prefect.yaml, flows/serve.py and
the commands docs/scale-out.md tells people to type. No Prefect server is needed."""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
from pathlib import Path

import pytest
import yaml
from prefect import Flow

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "prefect.yaml"
SCALE_OUT = REPO / "docs" / "scale-out.md"


def _project() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


def _deployments() -> list[dict]:
    return _project().get("deployments") or []


def _resolve_entrypoint(entrypoint: str) -> object:
    """``path/to/file.py:name`` -> the object, importing the file as a module of the repo."""
    path, sep, name = entrypoint.rpartition(":")
    assert sep and path and name, f"entrypoint {entrypoint!r} is not 'path:function'"
    file = REPO / path
    assert file.is_file(), f"entrypoint file {path} does not exist under {REPO}"
    rel = file.resolve().relative_to(REPO)
    assert rel.suffix == ".py", f"entrypoint file {path} is not a Python file"
    module = importlib.import_module(".".join(rel.with_suffix("").parts))
    assert hasattr(module, name), f"{path} has no attribute {name!r}"
    return getattr(module, name)


def _step_function(dotted: str) -> object:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


# -- prefect.yaml --------------------------------------------------------------------------


def test_prefect_yaml_uses_only_keys_prefect_knows():
    """Prefect ignores unknown keys silently, so a typo (``entry_point``) would deploy a
    half-configured deployment; compare against the schema `prefect deploy` loads."""
    models = pytest.importorskip("prefect.cli.deploy._models")
    project = _project()
    assert isinstance(project, dict)
    top = {f.alias or n for n, f in models.PrefectYamlModel.model_fields.items()}
    assert set(project) <= top, set(project) - top
    models.PrefectYamlModel.model_validate(project)
    assert _deployments(), "prefect.yaml declares no deployment"
    known = set(models.DeploymentConfig.model_fields)
    pool_keys = set(models.WorkPoolConfig.model_fields)
    for dep in _deployments():
        assert set(dep) <= known, (dep.get("name"), set(dep) - known)
        assert set(dep.get("work_pool") or {}) <= pool_keys
        assert dep.get("name"), "a deployment without a name"


def test_pull_steps_name_real_functions_with_their_arguments():
    steps = _project().get("pull") or []
    assert steps, "no pull step: a worker would not know where the code is"
    for step in steps:
        assert len(step) == 1, step
        ((dotted, kwargs),) = step.items()
        fn = _step_function(dotted)
        inspect.signature(fn).bind(**(kwargs or {}))


@pytest.mark.parametrize("dep", _deployments(), ids=lambda d: str(d.get("name")))
def test_deployment_entrypoint_is_a_flow_accepting_its_parameters(dep):
    flow = _resolve_entrypoint(dep["entrypoint"])
    assert isinstance(flow, Flow), f"{dep['entrypoint']} is {type(flow).__name__}, not a Flow"
    if dep.get("flow_name"):
        assert dep["flow_name"] == flow.name
    params = dep.get("parameters") or {}
    # Raises for unknown names, missing required ones, or values of the wrong type.
    validated = flow.validate_parameters(params)
    assert set(params) <= set(validated)
    assert dep["work_pool"]["name"], "a work-pool deployment needs a pool"


def test_entrypoint_resolution_can_fail():
    with pytest.raises(AssertionError, match="no attribute"):
        _resolve_entrypoint("flows/campaign.py:no_such_flow")
    with pytest.raises(AssertionError, match="does not exist"):
        _resolve_entrypoint("flows/nowhere.py:campaign_flow")
    from flows.campaign import campaign_flow

    with pytest.raises(Exception, match="config_pth"):
        campaign_flow.validate_parameters({"config_pth": "x.yaml"})
    with pytest.raises(Exception, match="config_path"):
        campaign_flow.validate_parameters({})


# -- building deployments in Python --------------------------------------------------------


def test_to_deployment_names_the_campaign_entrypoint(monkeypatch):
    # Construction is local (no API call); the entrypoint is relative to the working
    # directory, which is the repo root for `prefect deploy` and `python -m flows.serve`.
    from prefect.deployments.runner import RunnerDeployment

    from flows.campaign import campaign_flow

    monkeypatch.chdir(REPO)
    dep = campaign_flow.to_deployment(
        name="test", parameters={"config_path": "configs/demo-water.yaml"}
    )
    assert isinstance(dep, RunnerDeployment)
    assert dep.entrypoint == "flows/campaign.py:campaign_flow"
    assert dep.flow_name == "aloop-campaign"
    assert dep.parameters == {"config_path": "configs/demo-water.yaml"}
    assert dep.entrypoint in {d["entrypoint"] for d in _deployments()}


def test_serve_module_serves_the_campaign_flow_under_the_given_name(monkeypatch):
    from flows import serve
    from flows.campaign import campaign_flow

    calls: list[dict] = []
    monkeypatch.setattr(campaign_flow, "serve", lambda **kw: calls.append(kw))
    serve.main([])
    serve.main(["--name", "night-runs"])
    assert [c["name"] for c in calls] == ["aloop-campaign", "night-runs"]
    with pytest.raises(SystemExit):
        serve.main(["--nmae", "x"])


# -- docs/scale-out.md ---------------------------------------------------------------------


def _commands(markdown: str) -> list[list[str]]:
    """Every shell command in fenced code blocks and inline code spans, as token lists
    (comments dropped, continuation lines joined, split at ``&&``, ``;`` and ``|``)."""
    texts: list[str] = []
    fenced = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)
    for m in fenced.finditer(markdown):
        if m.group(1).strip() in ("", "bash", "sh", "shell", "console"):
            texts.extend(m.group(2).replace("\\\n", " ").splitlines())
    texts.extend(re.findall(r"`([^`\n]+)`", fenced.sub("", markdown)))
    commands = []
    for text in texts:
        text = re.sub(r"^\s*\$\s+", "", text)
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError:
            continue
        current: list[str] = []
        for tok in [*tokens, "&&"]:
            if tok in ("&&", ";", "|", "||"):
                while current and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", current[0]):
                    current.pop(0)  # VAR=value prefixes
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(tok)
    return commands


def _aloop_problems(markdown: str) -> tuple[set[str], list[str]]:
    """(subcommands used, problems) for every ``aloop ...`` command in the markdown."""
    import typer.main

    from aloop.cli import app

    group = typer.main.get_command(app)
    root_opts = {o for p in group.params for o in (*p.opts, *p.secondary_opts)}
    used, problems = set(), []
    for cmd in _commands(markdown):
        if Path(cmd[0]).name != "aloop":
            continue
        args = cmd[1:]
        while args and args[0] in root_opts:
            args = args[1:]
        if not args:
            continue
        # Walk into command groups (``aloop db copy``) down to the command itself.
        node, path = group, []
        while hasattr(node, "commands") and args and not args[0].startswith("-"):
            if args[0] not in node.commands:
                problems.append(f"{shlex.join(cmd)}: no aloop subcommand {args[0]!r}")
                node = None
                break
            node = node.commands[args[0]]
            path.append(args.pop(0))
        if node is None or not path:
            continue
        sub = " ".join(path)
        used.add(sub)
        opts = {o for p in node.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        for tok in args:
            if tok.startswith("-") and tok.split("=")[0] not in opts:
                problems.append(f"{shlex.join(cmd)}: aloop {sub} has no option {tok!r}")
    return used, problems


def test_scale_out_doc_names_only_existing_aloop_commands():
    used, problems = _aloop_problems(SCALE_OUT.read_text())
    assert not problems, "\n".join(problems)
    assert "run" in used, "the doc should show `aloop run`"


def test_operations_guide_names_only_existing_aloop_commands():
    used, problems = _aloop_problems((REPO / "docs" / "operations.md").read_text())
    assert not problems, "\n".join(problems)
    assert {"db copy", "status", "export"} <= used


def test_aloop_command_check_can_fail():
    doc = "Run\n\n```bash\nALOOP_DB_URI=x aloop launch c.yaml  # no such command\n```\n"
    doc += "or `aloop run c.yaml --fast`, or `.venv/bin/aloop status --db x`.\n"
    used, problems = _aloop_problems(doc)
    assert used == {"run", "status"}
    assert len(problems) == 2
    assert "'launch'" in problems[0]
    assert "'--fast'" in problems[1]


def test_scale_out_doc_matches_prefect_yaml():
    """Pool and deployment names in the doc's prefect commands are the ones declared."""
    from flows.campaign import campaign_flow

    pools = {d["work_pool"]["name"] for d in _deployments()}
    names = {d["name"] for d in _deployments()}
    served = {"aloop-campaign"}
    cmds = _commands(SCALE_OUT.read_text())
    for cmd in cmds:
        if cmd[:3] == ["python", "-m", "flows.serve"] and "--name" in cmd:
            served.add(cmd[cmd.index("--name") + 1])
    seen = set()
    for cmd in cmds:
        if cmd[0] != "prefect":
            continue
        if cmd[1:3] == ["deployment", "run"]:
            flow_name, _, dep_name = cmd[3].partition("/")
            assert flow_name == campaign_flow.name, cmd
            assert dep_name in names | served, cmd
            seen.add("run")
        if cmd[1:3] == ["work-pool", "create"]:
            assert cmd[3] in pools, cmd
            seen.add("pool")
        if cmd[1:3] == ["worker", "start"]:
            assert cmd[cmd.index("--pool") + 1] in pools, cmd
            seen.add("worker")
        if cmd[1] == "deploy":
            seen.add("deploy")
    assert seen == {"run", "pool", "worker", "deploy"}, seen
