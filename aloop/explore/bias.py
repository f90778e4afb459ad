"""Uncertainty-driven dynamics: a bias on the committee's energy variance that pushes the
walkers toward configurations the committee disagrees on.

Kulichenko et al. (Nat. Comput. Sci. 3, 230, 2023) add to the committee-mean energy a
bias that is lowest where the committee's energy variance is highest, bounded so that it
cannot run away:

    E_bias = A [exp(-sigma^2 / (N B^2)) - 1],    sigma^2 = (1/M) sum_m (E_m - E_mean)^2

for M members and N atoms; A (eV) is how deep the bias can go, B (eV) the energy
deviation per square-root atom at which it is felt. Its forces need no extra model call:
d sigma^2 / dR = -(2/M) sum_m (E_m - E_mean) F_m, from the members' own forces.

The bias changes where the walkers go, never what is stored about a frame: the
uncertainties are the committee's and the labels are DFT's. Frames sampled under a bias
are not Boltzmann-distributed at the walker's temperature, which is the point; the
hold-out drawn from them measures the error where the biased walkers went.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UncertaintyBias:
    """The bias's depth ``strength_ev`` (A) and its width ``width_ev`` (B)."""

    strength_ev: float
    width_ev: float

    def __post_init__(self) -> None:
        if self.strength_ev <= 0 or self.width_ev <= 0:
            raise ValueError("the uncertainty bias needs a positive strength and width")

    def energy_forces(
        self, energy_members: np.ndarray, forces_members: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """The bias energy (eV) and forces (eV/Å) of one structure from its members'
        energies ``(M,)`` and forces ``(M, N, 3)``."""
        e = np.asarray(energy_members, dtype=float)
        f = np.asarray(forces_members, dtype=float)
        m, n = f.shape[0], f.shape[1]
        de = e - e.mean()
        variance = float(np.mean(de**2))
        scale = n * self.width_ev**2
        decay = np.exp(-variance / scale)
        energy = self.strength_ev * (decay - 1.0)
        # F = -dE/dR = (A exp(-x) / (N B^2)) d sigma^2/dR
        grad_variance = -(2.0 / m) * np.tensordot(de, f, axes=1)
        forces = (self.strength_ev * decay / scale) * grad_variance
        return energy, forces
