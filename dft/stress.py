"""Stress of Γ-point periodic DFT labels, in eV/Å³ with ASE's sign convention.

PySCF 2.14 has an analytic strain derivative for the single-k-point FFTDF Kohn-Sham
objects (``pbc.grad.krks_stress`` / ``kuks_stress``): ``Gradients(mf).get_stress()``
returns ``(1/V) dE/dε`` in Hartree/Bohr³, the same sign as ASE (a compressed cell that
wants to expand has negative diagonal stress). Where a method has no such derivative,
:func:`stress_unavailable` says why in a sentence that goes on the label (``stress_note``);
a zero or partial tensor would be a wrong label, not a missing one.

Labels store the Voigt-6 form (:func:`to_voigt`): ASE's ``atoms.get_stress()`` order
(xx, yy, zz, yz, xz, xy), which is what MACE's own ``REF_stress`` conversion writes
(mace/data/utils.py puts ``atoms.get_stress()`` there) and what its ``voigt_to_matrix``
reads back into the symmetric 3x3 without any choice of row or column order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from ase.calculators.calculator import CalculationFailed

from dft.units import STRESS_AU_EV_ANG3

if TYPE_CHECKING:
    from dft.settings import LabelSettings

#: Why each kind of method has no stress in PySCF 2.14 (read on the label as stress_note).
NO_STRESS_MOLECULE = "no stress: a molecule has no cell to strain"
NO_STRESS_HF = (
    "no stress: PySCF has no periodic Hartree-Fock stress (no strain derivative of "
    "exact exchange; its KRHF/KUHF gradients have no get_stress)"
)
NO_STRESS_HYBRID = (
    "no stress: PySCF's periodic stress has no exact-exchange term, so hybrid "
    "functionals ({xc}) get none"
)
NO_STRESS_NLC = (
    "no stress: PySCF's periodic stress has no term for the VV10 non-local correlation of {xc}"
)
NO_STRESS_MULTIGRID = (
    "no stress: PySCF's stress fails for the multigrid Gamma-point objects (rks_stress "
    "asserts a plain FFTDF NumInt); set dft.periodic.multigrid false for stress"
)
NO_STRESS_DISPERSION = (
    "no stress: PySCF's periodic stress has no dispersion term, and its D3/D4 interface "
    "treats the cell as a molecule (no lattice passed), so {disp} gets none"
)


def stress_unavailable(settings: LabelSettings) -> str | None:
    """Why labels computed with ``settings`` have no stress, or None when they have one.

    Parameters
    ----------
    settings
        The label settings.

    Returns
    -------
    str or None
        A sentence for the label's ``stress_note``; None for Γ-point FFTDF (multigrid
        off) KS with a semi-local functional (LDA, GGA, meta-GGA), restricted or
        unrestricted, smeared or not.

    Notes
    -----
    Meta-GGA stress exists (and matches finite differences), but PySCF 2.14 has no
    meta-GGA k-point forces, so such a label fails before its stress is asked for.
    Smeared SCFs have a stress: it is the strain derivative of the free energy
    (``mf.e_free``), as the forces are its position derivative.
    """
    if not settings.periodic:
        return NO_STRESS_MOLECULE
    if settings.method == "HF":
        return NO_STRESS_HF
    from pyscf.dft import libxc

    if libxc.is_hybrid_xc(settings.xc):
        return NO_STRESS_HYBRID.format(xc=settings.xc)
    if libxc.is_nlc(settings.xc):
        return NO_STRESS_NLC.format(xc=settings.xc)
    if settings.multigrid:
        return NO_STRESS_MULTIGRID
    disp = settings.dispersion or _dispersion_in_xc(settings.xc)
    if disp:
        return NO_STRESS_DISPERSION.format(disp=disp)
    return None


def _dispersion_in_xc(xc: str) -> str | None:
    """The D3/D4 correction PySCF reads from a name like ``PBE-D3BJ``, or None."""
    from pyscf.scf.dispersion import parse_dft

    try:
        return parse_dft(xc)[2] or None
    except NotImplementedError:  # PySCF refuses the name itself: the SCF fails first
        return None


def periodic_stress(mf: Any, settings: LabelSettings) -> np.ndarray:
    """Stress of a converged Γ-point KRKS/KUKS mean field, eV/Å³, ASE's sign.

    Parameters
    ----------
    mf
        The converged mean field built by :func:`dft.scf.make_mean_field` for
        ``settings`` (``pbc.dft.KRKS``/``KUKS`` at the single k-point 0, FFTDF,
        possibly smeared).
    settings
        The settings it was built with.

    Returns
    -------
    numpy.ndarray
        Shape (3, 3), float64, symmetric: ``(1/V) dE/dε`` for a symmetric strain ε of
        cell and positions together, in eV/Å³ (ASE's ``get_stress(voigt=False)``).

    Raises
    ------
    CalculationFailed
        The method has no stress (:func:`stress_unavailable` gives the reason), or
        PySCF's stress code rejected the object.
    """
    reason = stress_unavailable(settings)
    if reason is not None:
        raise CalculationFailed(f"{settings.description}: {reason}")
    import pyscf.pbc.grad  # noqa: F401 (attaches .Gradients() to the periodic SCF classes)

    try:
        sigma = mf.Gradients().get_stress()
    except (NotImplementedError, AssertionError, AttributeError) as exc:
        # PySCF signals an unsupported object with bare asserts; name it for the label.
        raise CalculationFailed(
            f"PySCF has no stress for {settings.description} here: {type(exc).__name__}: {exc}"
        ) from None
    sigma = np.asarray(sigma, dtype=np.float64).reshape(3, 3)
    # PySCF returns dE/de_ij for a general (non-symmetric) deformation. Its antisymmetric
    # part is the response to rotating cell and atoms together, zero up to numerical
    # noise; the symmetric part is the stress, as PySCF's own Voigt formulas average it.
    return 0.5 * (sigma + sigma.T) * STRESS_AU_EV_ANG3


def to_voigt(stress: np.ndarray) -> np.ndarray:
    """Voigt-6 form of a 3x3 stress in ASE's order: xx, yy, zz, yz, xz, xy.

    Parameters
    ----------
    stress
        Shape (3, 3) (or 9 values row-major).

    Returns
    -------
    numpy.ndarray
        Shape (6,), float64; off-diagonals are the mean of the two mirrored entries,
        as in :func:`ase.stress.full_3x3_to_voigt_6_stress`.
    """
    s = np.asarray(stress, dtype=np.float64).reshape(3, 3)
    return np.array(
        [
            s[0, 0],
            s[1, 1],
            s[2, 2],
            0.5 * (s[1, 2] + s[2, 1]),
            0.5 * (s[0, 2] + s[2, 0]),
            0.5 * (s[0, 1] + s[1, 0]),
        ]
    )
