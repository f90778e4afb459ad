"""Campaign configuration: defaults, every validation rule, and error messages."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from aloop.config import ConfigError, load_config, parse_config
from aloop.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MINIMAL = {"campaign": "t", "systems": [{"name": "water", "molecule": "H2O"}]}


def with_change(path: str, value, base=MINIMAL) -> dict:
    """A copy of ``base`` with the dotted ``path`` set to ``value`` (creating mappings)."""
    data = copy.deepcopy(base)
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    last = keys[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.systems


def test_minimal_config_gets_sensible_defaults():
    cfg = parse_config(MINIMAL)
    assert cfg.select.trust.lo < cfg.select.trust.hi
    assert cfg.model.member_seeds == [0, 1, 2, 3]
    assert cfg.explore.ensemble == "nvt"
    assert cfg.dft.scf.recovery[0] == "diis"
    assert cfg.temperatures("water") == [300.0]


def test_per_system_overrides_win():
    data = with_change("systems.0.trust", {"lo": 0.1, "hi": 0.2})
    data["systems"][0]["temperatures"] = [500]
    cfg = parse_config(data)
    assert cfg.trust_window("water").hi == 0.2
    assert cfg.temperatures("water") == [500.0]


def test_method_is_case_insensitive():
    assert parse_config(with_change("dft.method", "hf")).dft.method == "HF"


def test_result_hash_ignores_execution_but_not_science():
    base = parse_config(MINIMAL).result_hash()
    assert parse_config(with_change("execution.label_workers", 8)).result_hash() == base
    assert parse_config(with_change("database.uri", "memory://x")).result_hash() == base
    assert parse_config(with_change("stop.max_iterations", 30)).result_hash() == base
    assert parse_config(with_change("dft.basis", "sto-3g")).result_hash() != base


def _hash_before_later_settings(cfg) -> str:
    """The result hash as computed before the settings added later existed."""
    import hashlib
    import json

    data = cfg.model_dump(mode="json", exclude={"execution", "database", "description", "stop"})
    model_keys = ("min_updates", "ema_decay", "stress_weight", "e0s")
    for key in (*model_keys, "finetune", "replay_file", "replay_samples", "finetune_optimizer"):
        del data["model"][key]
    del data["dft"]["ecp"], data["dft"]["spin"], data["dft"]["scf"]["stability_rounds"]
    del data["select"]["trust"]["calibrated"], data["select"]["holdout_per_system"]
    del data["select"]["trust"]["stress_lo_gpa"], data["select"]["trust"]["stress_hi_gpa"]
    del data["explore"]["barostat_time_fs"], data["explore"]["uncertainty_bias"]
    del data["dft"]["engine"], data["dft"]["cp2k"], data["explore"]["stop"]["max_volume_ratio"]
    for key in ("strained_per_structure", "max_volumetric_strain", "max_shear_strain"):
        del data["initial"][key]
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def test_settings_added_later_keep_stored_campaigns_hash_at_their_neutral_value():
    cfg = parse_config(MINIMAL)
    before = _hash_before_later_settings(cfg)
    assert cfg.result_hash() == before
    # set to anything else, it changes what is computed, so the hash
    assert parse_config(with_change("model.min_updates", 200)).result_hash() != before
    assert parse_config(with_change("model.ema_decay", 0.99)).result_hash() != before
    for key, value in [
        ("model.stress_weight", 10.0),
        ("model.e0s", "average"),
        ("dft.ecp", "none"),
        ("dft.spin", "broken_symmetry"),
        ("dft.scf.stability_rounds", 5),
        ("select.trust.calibrated", True),
        ("select.holdout_per_system", 0),
        ("dft.cp2k.cutoff_ry", 400.0),
        ("initial.strained_per_structure", 4),
        ("explore.stop.max_volume_ratio", 2.0),
        ("explore.uncertainty_bias", {"strength_ev": 0.5, "width_ev": 0.05}),
        ("initial.max_shear_strain", 0.02),
        ("explore.barostat_time_fs", 2000.0),
        ("select.trust", {"stress_lo_gpa": 0.2, "stress_hi_gpa": 2.0}),
        ("dft.cp2k.kinds", {"Mg": {"basis": "DZVP-MOLOPT-SR-GTH-q2", "potential": "GTH-PBE-q2"}}),
    ]:
        assert parse_config(with_change(key, value)).result_hash() != before, key


def test_structure_file_relative_to_config(tmp_path):
    from ase.build import molecule
    from ase.io import write

    (tmp_path / "geo").mkdir()
    write(tmp_path / "geo" / "nh3.xyz", molecule("NH3"))
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        yaml.safe_dump({"campaign": "f", "systems": [{"name": "nh3", "structure": "geo/nh3.xyz"}]})
    )
    assert load_config(cfg_file).systems[0].structure == "geo/nh3.xyz"


# (change, expected key path in the message, expected words)
MALFORMED = [
    (("systems", []), "systems", "at least 1"),
    (("campaign", "has space"), "campaign", "pattern"),
    (("surprise", 1), "surprise", "unknown key"),
    (("dft.basiss", "sto-3g"), "dft.basiss", "unknown key"),
    (("systems.0.molecule", "NotAMolecule"), "systems.0.molecule", "unknown ase.build.molecule"),
    (("systems.0.structure", "missing.xyz"), "systems.0", "exactly one"),
    (("systems.0.multiplicity", 2), "systems.0.multiplicity", "parity"),
    (("systems.0.multiplicity", 0), "systems.0.multiplicity", "greater than 0"),
    (("systems.0.charge", 11), "systems.0.charge", "leaves -1 electrons"),
    (("systems.0.charge", 10), "systems.0.charge", "leaves 0 electrons"),
    (("systems.0.temperatures", [300, -5]), "systems.0.temperatures.1", "greater than 0"),
    (("systems.0.trust", {"lo": 0.3, "hi": 0.1}), "systems.0.trust", "lo (0.3) must be smaller"),
    (("select.trust", {"lo": 0.2, "hi": 0.2}), "select.trust", "must be smaller"),
    (("select.trust.lo", -0.1), "select.trust.lo", "greater than or equal to 0"),
    (("explore.temperatures", []), "explore.temperatures", "at least one temperature"),
    (("explore.temperatures", [0]), "explore.temperatures.0", "greater than 0"),
    (("explore.timestep_fs", 0), "explore.timestep_fs", "greater than 0"),
    (("explore.steps", 5), "explore", "sample_interval (10) exceeds steps (5)"),
    (("explore.ensemble", "npt"), "explore", "needs pressures_gpa"),
    (("explore.ensemble", "nvx"), "explore.ensemble", "'nvt', 'nve' or 'npt'"),
    (("dft.method", "MP2"), "dft.method", "'HF' or 'DFT'"),
    (("dft.scf.recovery", ["diis", "prayer"]), "dft.scf.recovery.1", "newton"),
    (("dft.scf.recovery", []), "dft.scf.recovery", "at least one strategy"),
    (("dft.scf.recovery", ["diis", "diis"]), "dft.scf.recovery", "once"),
    (("dft.scf.recovery", ["diis", "smearing"]), "dft.scf.recovery", "another surface"),
    (("dft.scf.stability_rounds", 0), "dft.scf.stability_rounds", "greater than or equal to 1"),
    (("dft.spin", "unrestricted"), "dft.spin", "'restricted' or 'broken_symmetry'"),
    (("model.e0s", "zero"), "model.e0s", "'isolated_atoms' or 'average'"),
    (("dft.grid_level", 12), "dft.grid_level", "less than or equal to 9"),
    (("model.committee_size", 1), "model.committee_size", "greater than or equal to 2"),
    (("model.seeds", [1, 2]), "model", "seeds has 2 entries"),
    (("model.seeds", [1, 1, 2, 3]), "model", "distinct"),
    (("model.warm_start", "foundation"), "model", "needs foundation_model"),
    (("model.dtype", "float16"), "model.dtype", "float32"),
    (("stop.accurate_ratio", 1.5), "stop.accurate_ratio", "less than or equal to 1"),
    (("stop.patience", 0), "stop.patience", "greater than 0"),
    (("database.uri", "postgres://x"), "database.uri", "unknown database URI scheme"),
    (("execution.task_runner", "slurm"), "execution.task_runner", "'thread' or 'dask'"),
]


@pytest.mark.parametrize(
    ("change", "key", "words"), MALFORMED, ids=[m[1] + ":" + m[2][:20] for m in MALFORMED]
)
def test_malformed_config_names_the_key(change, key, words):
    with pytest.raises(ConfigError) as info:
        parse_config(with_change(*change))
    problems = info.value.problems
    assert any(p.startswith(f"{key}:") and words in p for p in problems), problems


def test_duplicate_system_names():
    data = copy.deepcopy(MINIMAL)
    data["systems"].append({"name": "water", "molecule": "H2O"})
    with pytest.raises(ConfigError, match="repeated: water"):
        parse_config(data)


def test_an_error_target_without_a_hold_out_is_refused():
    data = with_change("stop.force_error_target", 0.05)
    data["select"] = {"holdout_per_system": 0}
    with pytest.raises(ConfigError, match=r"stop.force_error_target: the hold-out error"):
        parse_config(data)
    data["stop"]["force_error_target"] = None
    assert parse_config(data).select.holdout_per_system == 0  # no target: no hold-out


def test_a_stress_target_needs_a_force_target_and_a_cell(tmp_path):
    (tmp_path / "cell.extxyz").write_text(
        '2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
        "Na 0 0 0\nCl 2 2 2\n"
    )
    data = with_change("stop.stress_error_target_gpa", 0.5)
    with pytest.raises(ConfigError, match=r"set stop.force_error_target too"):
        parse_config(data)
    data["stop"]["force_error_target"] = 0.1
    with pytest.raises(ConfigError, match=r"no system is a periodic cell"):
        parse_config(data)  # a water molecule has no stress
    data["systems"] = [{"name": "salt", "structure": "cell.extxyz"}]
    assert parse_config(data, tmp_path).stop.stress_error_target_gpa == 0.5


def test_a_stress_window_is_set_whole_and_in_order():
    with pytest.raises(ConfigError, match="set together, or neither"):
        parse_config(with_change("select.trust.stress_hi_gpa", 2.0))
    with pytest.raises(ConfigError, match=r"stress_lo_gpa \(3.0\) must be smaller"):
        parse_config(with_change("select.trust", {"stress_lo_gpa": 3.0, "stress_hi_gpa": 2.0}))
    window = parse_config(
        with_change("select.trust", {"stress_lo_gpa": 0.2, "stress_hi_gpa": 2.0})
    ).select.trust
    assert window.reads_stress and not parse_config(MINIMAL).select.trust.reads_stress


def test_foundation_model_file_must_exist():
    data = with_change("model.warm_start", "foundation")
    data["model"]["foundation_model"] = "nowhere.model"
    data["model"]["finetune"] = "naive"
    with pytest.raises(ConfigError, match=r"model.foundation_model: file not found"):
        parse_config(data)


def test_multihead_fine_tuning_needs_a_replay_file_that_exists(tmp_path):
    """MACE, given no replay file, fine-tunes naively with a warning: aloop refuses."""
    (tmp_path / "mp.model").write_bytes(b"weights")
    data = with_change("model.warm_start", "foundation")
    data["model"]["foundation_model"] = "mp.model"
    with pytest.raises(ConfigError, match=r"multihead needs model.replay_file"):
        parse_config(data, tmp_path)
    data["model"]["replay_file"] = "mp-replay.xyz"
    with pytest.raises(ConfigError, match=r"model.replay_file: file not found: .*mp-replay"):
        parse_config(data, tmp_path)
    (tmp_path / "mp-replay.xyz").write_text("")
    assert parse_config(data, tmp_path).model.multihead
    data["model"]["e0s"] = "average"
    with pytest.raises(ConfigError, match=r"needs model.e0s isolated_atoms"):
        parse_config(data, tmp_path)
    # naive fine-tuning reads no replay file
    data["model"] |= {"finetune": "naive", "replay_file": None, "e0s": "isolated_atoms"}
    naive = parse_config(data, tmp_path)
    assert not naive.model.multihead
    # MACE's multihead optimizer is what finetune_optimizer replaces: naive has none
    with pytest.raises(ConfigError, match=r"model.finetune_optimizer: it applies to multihead"):
        parse_config(
            {**data, "model": data["model"] | {"finetune_optimizer": "campaign"}}, tmp_path
        )
    # a foundation campaign stored before multihead existed trained naively: said so
    # explicitly, it resumes under the hash it was stored with; multihead is another run
    assert naive.result_hash() == _hash_before_later_settings(naive)
    data["model"] |= {"finetune": "multihead", "replay_file": "mp-replay.xyz"}
    assert parse_config(data, tmp_path).result_hash() != naive.result_hash()
    # without a foundation start the fine-tuning settings are not read: not hashed
    unread = parse_config(with_change("model.replay_samples", 50))
    assert unread.result_hash() == parse_config(MINIMAL).result_hash()


def test_every_error_is_reported_at_once():
    data = with_change("explore.timestep_fs", -1)
    data["stop"] = {"patience": 0}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert len(info.value.problems) == 2


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("campaign: [unclosed\n")
    with pytest.raises(ConfigError, match=r"\(yaml\) line 2"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listy)


def test_open_shell_radical_is_accepted():
    data = {"campaign": "oh", "systems": [{"name": "oh", "molecule": "OH", "multiplicity": 2}]}
    assert parse_config(data).systems[0].multiplicity == 2
    data["systems"][0]["charge"] = -1  # OH-: closed shell, so a doublet is impossible
    with pytest.raises(ConfigError, match="multiplicity: 2 is impossible with 10 electrons"):
        parse_config(data)


#: result_hash() of each shipped config, computed with the code as it was before issue
#: 16's refactor: a stored campaign must resume after any refactor of the schema. The
#: demo's changed once on purpose, in issue 19: it draws 4 hold-out frames per iteration
#: (not the default 2), a choice of what is labelled, so a science change.
PINNED_RESULT_HASHES = {
    "demo-water.yaml": "a9ad033807ae30fba5bc2b7b7c1dde9ab97eff407894993f4924f7fcdb0c9719",
    "ethanol.yaml": "8712dbc1a652891d3018abc4278f855565e2ca81308a2313cb42d5b79e301951",
    "mgcl2-molten.yaml": "cfbc0dbec8c74fe3173f15681136d9fe2de2ccf999038b363bd0a3f05216ea18",
}


@pytest.mark.parametrize("name", sorted(PINNED_RESULT_HASHES))
def test_result_hash_of_shipped_configs_is_pinned(name):
    assert load_config(CONFIGS / name).result_hash() == PINNED_RESULT_HASHES[name]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"charge": 11}, "systems.0.charge: 11 leaves -1 electrons; at least one is needed"),
        (
            {"multiplicity": 12},
            "systems.0.multiplicity: 12 is impossible with 10 electrons (charge 0); "
            "parity must match",
        ),
        ({"molecule": "Nope"}, "systems.0.molecule: unknown ase.build.molecule name 'Nope'"),
    ],
)
def test_structure_problems_are_reported_word_for_word(change, problem):
    data = {"campaign": "t", "systems": [{"name": "w", "molecule": "H2O", **change}]}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems == [problem]


def test_a_foundation_start_is_hashed_by_the_content_of_its_files(tmp_path):
    """A foundation replaced under the same file name is another campaign (its results
    differ); the same files moved elsewhere are the same campaign."""
    (tmp_path / "mp.model").write_bytes(b"weights v1")
    (tmp_path / "replay.xyz").write_text("frames v1")
    data = with_change("model.warm_start", "foundation")
    data["model"] |= {"foundation_model": "mp.model", "replay_file": "replay.xyz"}
    cfg = parse_config(data, tmp_path)
    first = cfg.result_hash(tmp_path)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "mp.model").write_bytes(b"weights v1")
    (moved / "replay.xyz").write_text("frames v1")
    elsewhere = {"foundation_model": "elsewhere/mp.model", "replay_file": "elsewhere/replay.xyz"}
    data_moved = {**data, "model": data["model"] | elsewhere}
    assert parse_config(data_moved, tmp_path).result_hash(tmp_path) == first
    (tmp_path / "mp.model").write_bytes(b"weights v2")
    assert cfg.result_hash(tmp_path) != first
    (tmp_path / "mp.model").write_bytes(b"weights v1")
    (tmp_path / "replay.xyz").write_text("frames v2")
    assert cfg.result_hash(tmp_path) != first
    # what a foundation campaign stored before the content rule was hashed with
    assert cfg.earlier_result_hashes() == [cfg.result_hash()] != [first]
    # campaigns without a foundation start read no file: the folder changes nothing
    plain = parse_config(MINIMAL)
    assert plain.result_hash(tmp_path) == plain.result_hash()
    assert plain.earlier_result_hashes() == []
    # naive fine-tuning reads no replay file: a missing one is not hashed, a missing
    # foundation is a clear error
    data["model"] |= {"finetune": "naive", "replay_file": "gone.xyz"}
    naive = parse_config(data, tmp_path)
    assert naive.result_hash(tmp_path) != first
    (tmp_path / "mp.model").unlink()
    with pytest.raises(UserError, match=r"model.foundation_model: cannot read .*mp.model"):
        naive.result_hash(tmp_path)
