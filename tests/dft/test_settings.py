"""Label settings: the hash stored campaigns were labelled under stays what it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aloop.config import load_config
from dft.settings import LabelSettings

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

#: settings_hash() of each shipped config's label settings (molecular, then periodic),
#: computed with the code as it was before issue 16's refactor, at PySCF 2.14.0.
PINNED = {
    "demo-water.yaml": (
        "650812b6ce54bf41083caa161626ad34722545c5d6e142e4301c4e897f4b521b",
        "2f9a87f16c42ad07acd1b971b7a3d1b5fc9ccf5af82ff163877c7ab7a391d5d2",
    ),
    "ethanol.yaml": (
        "9e730d0033005697971dfa0edc0718774d5d4efe083a4468c9d68e54aaeeb18b",
        "e56cfadf9e801b537915565d689ca8c3307b4c9376349969bf17d28e2c012a9f",
    ),
    "mgcl2-molten.yaml": (
        "a85eedd2dd73b442f52a1699c4b73d849d470dc00eaf6b5b75f9e5f8316560ff",
        "6060aa9879287a5460af38e632a1c6146c157ec11cfd4093b84ad218978b77d3",
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_settings_hash_of_shipped_configs_is_pinned(name):
    dft = load_config(CONFIGS / name).dft
    for periodic, expected in zip((False, True), PINNED[name], strict=True):
        settings = LabelSettings.from_config(dft, periodic=periodic)
        pinned = dataclasses.replace(settings, pyscf_version="2.14.0")
        assert pinned.settings_hash() == expected


def test_demo_water_result_fields_are_pinned():
    settings = LabelSettings.from_config(load_config(CONFIGS / "demo-water.yaml").dft)
    assert dataclasses.replace(settings, pyscf_version="2.14.0").result_fields() == {
        "auxbasis": None,
        "basis": "6-31g",
        "conv_tol": 1e-09,
        "density_fit": False,
        "dispersion": None,
        "method": "HF",
        "periodic": False,
        "pyscf_version": "2.14.0",
    }
    assert settings.timeout_s == 120.0


def test_default_settings_hash_is_pinned():
    default = dataclasses.replace(LabelSettings(), pyscf_version="2.0.0")
    assert default.settings_hash() == (
        "095f1ee159794c8c7b3cd62f6d7bfa47cc0e6c4266ceca2dd131d6a8643e01b8"
    )


def test_defaults_are_the_configs_defaults():
    from aloop.config import DFTConfig

    assert LabelSettings() == LabelSettings.from_config(DFTConfig())
    assert dataclasses.asdict(dataclasses.replace(LabelSettings(), pyscf_version="x")) == {
        "method": "DFT",
        "xc": "PBE",
        "basis": "def2-SVP",
        "density_fit": False,
        "auxbasis": None,
        "grid_level": 3,
        "dispersion": None,
        "conv_tol": 1e-09,
        "periodic": False,
        "pbc_basis": "gth-szv",
        "pbc_pseudo": "gth-pade",
        "ke_cutoff_hartree": None,
        "multigrid": True,
        "smearing_hartree": 0.0,
        "max_cycle": 100,
        "recovery": ("diis", "damping_levelshift", "newton", "initial_guess"),
        "damping": 0.5,
        "level_shift_hartree": 0.25,
        "timeout_s": 3600.0,
        "min_distance_factor": 0.5,
        "pyscf_version": "x",
    }
