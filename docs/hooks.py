"""MkDocs hooks: the reference sections generated from the code at build time, never copied.

A page asks for a section with a marker on a line of its own, ``<!-- generated: KIND ARG -->``:

* ``cli MODULE``: the flags of a command, from its ``build_parser()``;
* ``cohort``: the cohort schema (:data:`data.schema.COLUMNS`);
* ``columns NAME``: a column list of the results contract (:mod:`study.results.layout`);
* ``settings``: the settings a search space may fix or search (:data:`study.spec.settings.SETTING_KEYS`);
* ``docstring MODULE``: a module's docstring as Markdown;
* ``refused``: every refused input of ``tests/test_inputs.py`` with the message it gets, obtained
  by building the plan of each case (nothing runs; a case takes a fraction of a second).

The notebook page is ``docs/notebook.ipynb``, a symbolic link to ``notebooks/pareto_fronts.ipynb``
(rendered by mkdocs-jupyter, not executed at build time).
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- generated: (\w+)(?: (\S+))? -->$", re.M)


def on_page_markdown(markdown, page, config, files):
    if str(ROOT) not in sys.path:  # MkDocs restores sys.path after loading a hook: set it here
        sys.path.insert(0, str(ROOT))
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](m.group(2)), markdown)


# ---- generators ---------------------------------------------------------------------------------
def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def cli(module: str) -> str:
    """A command's usage line and one row per flag: names, default, what it does."""
    parser = importlib.import_module(module).build_parser()
    out = [f"```\n{parser.format_usage().strip()}\n```\n"]
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    groups = [(None, parser)] + [(name, sub) for a in subparsers for name, sub in a.choices.items()]
    for name, p in groups:
        rows = [a for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
        if not rows:
            continue
        if name:
            out.append(f"\n**`{p.prog}`**: {_cell(p.description or '')}\n")
        out += ["| flag | default | meaning |", "|---|---|---|"]
        for a in rows:
            names = ", ".join(f"`{s}`" for s in a.option_strings) or f"`{a.dest.upper()}`"
            if a.metavar and a.option_strings:
                names += f" `{a.metavar}`"
            elif a.choices and a.option_strings:
                names += " `" + "|".join(map(str, a.choices)) + "`"
            default = "" if a.default in (None, argparse.SUPPRESS, False) or a.default == [] else f"`{a.default}`"
            out.append(f"| {names} | {default} | {_cell(a.help or '')} |")
    return "\n".join(out) + "\n"


def cohort(_=None) -> str:
    from data.schema import markdown_table

    return markdown_table() + "\n"


def columns(name: str) -> str:
    from study.results import layout

    return ", ".join(f"`{c}`" for c in getattr(layout, name)) + "\n"


def settings(_=None) -> str:
    from study.spec.settings import EVAL_KEYS, MODEL_KEYS, STRATEGY_KEYS, TRAIN_KEYS

    groups = {"model": MODEL_KEYS, "training": TRAIN_KEYS - STRATEGY_KEYS, "weighting strategies' options": STRATEGY_KEYS,
              "evaluation": EVAL_KEYS}
    return "\n".join(f"* *{g}*: " + ", ".join(f"`{k}`" for k in sorted(keys)) for g, keys in groups.items()) + "\n"


def docstring(module: str) -> str:
    """A module docstring as Markdown: ``x`` -> `x`, :role:`x` -> `x`, a ``::`` block -> a fenced block."""
    text = importlib.import_module(module).__doc__ or ""
    lines, out, block = text.strip("\n").split("\n"), [], None
    for line in lines:
        if block is not None:
            if line.strip() and not line.startswith("    "):
                out += ["```", ""]
                block = None
            else:
                out.append(line[4:])
                continue
        line = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", line).replace("``", "`")
        if line.rstrip().endswith("::"):
            out += [line.rstrip()[:-1].rstrip(":") + ":", "", "```yaml"]
            block = []
            continue
        out.append(line)
    if block is not None:
        out.append("```")
    return "\n".join(out) + "\n"


def refused(_=None) -> str:
    """Each case of the test table, its plan built, its message as the user sees it (paths shown as DIR)."""
    import pandas as pd

    from data.schema import CohortError
    from data.synthetic import generate
    from study.spec.flags import parse_args
    from study.spec.plan import build_plan
    from study.spec.space import SearchSpaceError
    from tests.test_inputs import CASES, _prepare

    rows = ["| bad input | message (one line, exit status 1) |", "|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "cohort-source", n=40, seed=0, image_size=32)
        table = pd.read_parquet(Path(tmp) / "cohort-source" / "cohort.parquet")
        for i, case in enumerate(CASES):
            where = Path(tmp) / f"case-{i}"
            where.mkdir()
            try:
                build_plan(parse_args(_prepare(case, where, table)))
                message = "(accepted: the case's test would fail)"
            except SystemExit as exc:
                message = str(exc.code)
            except (SearchSpaceError, CohortError) as exc:
                message = str(exc)
            message = message.replace(str(where), "DIR").replace(str(ROOT), ".")
            rows.append(f"| {_cell(case.id)} | `{_cell(message)}` |")
    return "\n".join(rows) + "\n"


def refused_bundle(_=None) -> str:
    """Each refused input of ``python -m study.export`` and ``python -m study.predict`` (the cases
    of ``tests/test_bundle.py``), run, with the line it stops with."""
    from tests.test_bundle import REFUSALS, refusal_message

    rows = ["| bad input | message (one line, exit status 1) |", "|---|---|"]
    for case in REFUSALS:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(f"| {_cell(case.id)} | `` {_cell(refusal_message(case, Path(tmp)))} `` |")  # may hold a `
    return "\n".join(rows) + "\n"


def refused_agreement(_=None) -> str:
    """Each refused input of ``python -m study.agreement`` (the cases of ``tests/test_iu_xray.py``)."""
    from tests.test_iu_xray import REFUSALS, refusal_message

    rows = ["| bad input | message (one line, exit status 1) |", "|---|---|"]
    for name, argv, _ in REFUSALS:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(f"| {_cell(name)} | `` {_cell(refusal_message(argv, Path(tmp)))} `` |")
    return "\n".join(rows) + "\n"


def refused_builders(_=None) -> str:
    """Each refused input of the three cohort builders (the cases of ``tests/test_data.py``)."""
    from tests.test_data import BUILDER_REFUSALS, builder_refusal

    rows = ["| command | bad input | message (one line, exit status 1) |", "|---|---|---|"]
    for command, argv, _ in BUILDER_REFUSALS:
        with tempfile.TemporaryDirectory() as tmp:
            shown = " ".join(a.replace("{tmp}", "DIR") for a in argv)
            rows.append(f"| `{command}` | `{_cell(shown)}` | `` {_cell(builder_refusal(command, argv, Path(tmp)))} `` |")
    return "\n".join(rows) + "\n"


GENERATORS = {"cli": cli, "cohort": cohort, "columns": columns, "settings": settings, "docstring": docstring,
              "refused": refused, "refused_bundle": refused_bundle, "refused_agreement": refused_agreement,
              "refused_builders": refused_builders}
