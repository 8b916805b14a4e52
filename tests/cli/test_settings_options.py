"""Encoder settings are options generated from EncoderConfig: one name and one help on every command."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap
from typing import Annotated

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from grace_rag.cli.app import app
from grace_rag.cli.settings import config_options, flag_of
from grace_rag.config import EncoderConfig

COMMANDS = ["index", "query", "eval", "explain", "serve", "train"]
runner = CliRunner()


def options_of(command: str) -> dict[str, typer.core.click.Option]:
    """Every spelling of every option of ``command`` -> its click parameter."""
    params = get_command(app).commands[command].params
    return {name: p for p in params for name in [*p.opts, *p.secondary_opts]}


def setting_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(EncoderConfig) if not f.metadata["runtime"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_encoder_setting_has_one_name_and_its_field_help(command):
    options = options_of(command)
    for f in setting_fields():
        assert options[flag_of(f)].help == f.metadata["help"], (command, f.name)
    # the parameters generated from EncoderConfig (nested under encoder on train): its runtime knobs are no options
    prefix = "cfg__encoder__" if command == "train" else "cfg__"
    generated = {p.name.removeprefix(prefix) for p in get_command(app).commands[command].params
                 if p.name.startswith(prefix) and not p.hidden}
    assert {f.name for f in setting_fields()} <= generated
    assert not generated & {f.name for f in dataclasses.fields(EncoderConfig) if f.metadata["runtime"]}


ADD_A_FIELD = textwrap.dedent('''
    import dataclasses, json, sys
    import grace_rag.config as config

    # one edit: a copy of EncoderConfig with one more field (a subclass adds it after the others)
    New = config.track_explicit(dataclasses.make_dataclass("EncoderConfig", [(
        "rerank_depth", int, dataclasses.field(default=7, metadata={"help": "How deep a new reranker looks.",
                                                                     "runtime": False}))],
        bases=(config.EncoderConfig,)))
    config.EncoderConfig = New

    from typer.testing import CliRunner
    from grace_rag.cli.app import app
    import grace_rag.indexes.service as service
    import grace_rag.trainer.run as run

    seen = {}
    service.index_folder = lambda request, progress=None: seen.setdefault("index", request.settings) and sys.exit(0)
    run.train = lambda cfg, *a, **k: seen.setdefault("train", cfg.encoder) and sys.exit(0)
    out = {}
    for command in sys.argv[1:]:
        out[command] = " ".join(CliRunner().invoke(app, [command, "--help"]).output.split())
    CliRunner().invoke(app, ["index", ".", "--rerank-depth", "9", "--quiet"])
    CliRunner().invoke(app, ["train", ".", "--rerank-depth", "9", "--pooling", "max"])
    out["given"] = {k: [v.rerank_depth, sorted(v.explicit)] for k, v in seen.items()}
    print(json.dumps(out))
''')


def test_a_field_added_to_encoder_config_is_an_option_of_every_command(tmp_path):
    """Adding an encoder setting is one edit to EncoderConfig: every command shows it, typed, explicit."""
    done = subprocess.run([sys.executable, "-c", ADD_A_FIELD, *COMMANDS], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for command in COMMANDS:
        assert "--rerank-depth <int> How deep a new reranker looks." in out[command], command
    assert out["given"]["index"] == [9, ["rerank_depth"]]
    train_explicit = ["max_input_tokens", "max_rationale_tokens", "pooling", "query_rationale_tokens", "rerank_depth"]
    assert out["given"]["train"] == [9, train_explicit]


def test_settings_arrive_typed_with_what_was_given_as_explicit(monkeypatch):
    import grace_rag.encoder as encoder_module

    seen = {}

    class Stop(Exception):
        pass

    def fake_encoder(model, config, device):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr(encoder_module, "GraceEncoder", fake_encoder)
    runner.invoke(app, ["explain", "x", "--pooling", "max", "--max-rationale-tokens", "8"])
    config = seen["config"]
    assert isinstance(config, EncoderConfig) and config.explicit == {"pooling", "max_rationale_tokens"}
    assert config.pooling.value == "max" and config.max_rationale_tokens == 8


def test_the_old_rationale_tokens_spelling_warns_once_and_still_works(monkeypatch):
    import grace_rag.encoder as encoder_module

    seen = {}
    monkeypatch.setattr(encoder_module, "GraceEncoder", lambda model, config, device: seen.setdefault("c", config) and 1 / 0)
    result = runner.invoke(app, ["explain", "x", "--rationale-tokens", "5"])
    assert seen["c"].max_rationale_tokens == 5 and seen["c"].explicit == {"max_rationale_tokens"}
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: --rationale-tokens is deprecated and goes in the next release; "
                        "use --max-rationale-tokens"]
    both = runner.invoke(app, ["explain", "x", "--rationale-tokens", "5", "--max-rationale-tokens", "6"])
    assert both.exit_code == 2 and "given twice with different values" in both.stderr


def test_two_options_with_one_spelling_are_refused_when_the_command_is_built():
    def command(settings, seed: Annotated[int, typer.Option("--sampling-seed")] = 0) -> None: ...

    with pytest.raises(TypeError, match="option --sampling-seed is declared by both"):
        config_options(settings=EncoderConfig)(command)


def test_a_field_marked_cli_false_is_no_option_but_stays_in_config_files():
    from dataclasses import dataclass, field

    @dataclass
    class Config:
        steps: int = field(default=1, metadata={"help": "Steps."})
        mix: dict = field(default_factory=dict, metadata={"help": "Data mix.", "cli": False})

    def command(overrides) -> None: ...

    names = [p.name for p in inspect.signature(config_options(overrides=Config)(command)).parameters.values()]
    assert names == ["cfg__steps"]
