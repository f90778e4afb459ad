"""Is a converged SCF solution a minimum? The orbital-Hessian stability analysis.

PySCF's ``mf.stability()`` builds the right Hessian-vector products, but its Davidson
start vector is the orbital gradient's pattern, which at a converged solution of a
symmetric molecule spans only the totally symmetric rotations: on ethanol (PBE/def2-SVP)
it converges to 3.21 Ha (nroots=1) or 2.66 Ha (its default nroots=3, 145 products, 54 s)
while the lowest eigenvalue is 0.998 Ha, and a symmetry-breaking instability would be
missed. So the products come from PySCF (``newton_ah.gen_g_hop_*`` and the RHF->UHF
triplet product) and the eigenvalue search is ours: unit start vectors on the rotations
with the lowest diagonal (they break every symmetry) and one root, 4-6 products there.

Everything is in Hartree; the threshold is PySCF's (an eigenvalue below -1e-5 Ha is an
instability).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

#: Lowest eigenvalue (Ha) below which a solution is unstable: PySCF's own threshold.
UNSTABLE_BELOW = -1e-5
#: Davidson convergence on the eigenvalue (Ha): PySCF's default ``stab_tol``.
DAVIDSON_TOL = 1e-4
#: Unit start vectors on the rotations with the lowest diagonal Hessian elements.
START_VECTORS = 3


@dataclass
class Check:
    """The lowest eigenvalue of one orbital Hessian, and where it leads when negative."""

    lowest: float
    #: Orbitals displaced along the lowest mode (only when unstable); for the RHF->UHF
    #: check an (alpha, beta) pair, for UHF one per spin.
    mo: Any = None
    #: The occupations that go with ``mo``.
    occ: Any = None

    @property
    def stable(self) -> bool:
        return self.lowest >= UNSTABLE_BELOW


def unavailable(mf: Any) -> str | None:
    """Why this mean field cannot be analysed here, or None when it can."""
    if getattr(mf, "sigma", None):
        return (
            "not analysed: a smeared SCF has fractional occupations, and PySCF's orbital "
            "Hessian assumes integer ones"
        )
    if _is_multigrid(mf):
        return (
            "not analysed: PySCF 2.14's multigrid XC has no response kernel for Gamma-point "
            "objects (MultiGridNumInt2.cache_xc_kernel expects k-point arrays); set "
            "dft.periodic.multigrid false for the analysed FFTDF code"
        )
    if _periodic(mf) and not _kpoint(mf):
        return "not analysed: PySCF has no stability analysis for this Gamma-point object"
    if mf.istype("ROHF") or mf.istype("GHF"):
        return f"not analysed: no analysis wired for {type(mf).__name__}"
    return None


def is_unrestricted(mf: Any) -> bool:
    """One set of orbitals per spin (UHF/UKS, KUHF/KUKS)."""
    return bool(mf.istype("KUHF") if _kpoint(mf) else mf.istype("UHF"))


def internal(mf: Any, fock_ao: Any, guard: Callable[[], None] | None = None) -> Check:
    """The lowest eigenvalue of the Hessian within the mean field's own orbital space."""
    mo, occ = mf.mo_coeff, mf.mo_occ
    if _kpoint(mf):
        from pyscf.pbc.scf import newton_ah as pbc_newton
        from pyscf.pbc.scf import stability as pbc_stab

        gen = pbc_newton.gen_g_hop_uhf if is_unrestricted(mf) else pbc_newton.gen_g_hop_rhf
        _, hop, hdiag = gen(mf, mo, occ, fock_ao=fock_ao)
        rotate = pbc_stab._rotate_mo
        if is_unrestricted(mf):
            n_alpha = sum(int((o > 0).sum() * (o == 0).sum()) for o in occ[0])
        else:
            n_alpha = 0
    else:
        from pyscf.scf import stability as mol_stab
        from pyscf.soscf import newton_ah

        gen = newton_ah.gen_g_hop_uhf if is_unrestricted(mf) else newton_ah.gen_g_hop_rhf
        # with_symmetry=False: no rotation is excluded by point-group labels
        _, hop, hdiag = gen(mf, mo, occ, fock_ao=fock_ao, with_symmetry=False)
        rotate = mol_stab._rotate_mo
        n_alpha = int((occ[0] > 0).sum() * (occ[0] == 0).sum()) if is_unrestricted(mf) else 0
    # hop gives the vir-occ block of H x; the full real Hessian is twice its real part
    # (PySCF's rhf_internal/uhf_internal do the same)
    lowest, v = _lowest(lambda x: hop(x).real * 2, np.asarray(hdiag) * 2, guard)
    check = Check(lowest)
    if not check.stable:
        if is_unrestricted(mf):
            check.mo = (rotate(mo[0], occ[0], v[:n_alpha]), rotate(mo[1], occ[1], v[n_alpha:]))
        else:
            check.mo = rotate(mo, occ, v)
        check.occ = occ
    return check


def external(mf: Any, fock_ao: Any, guard: Callable[[], None] | None = None) -> Check:
    """The lowest eigenvalue of the RHF->UHF (RKS->UKS) Hessian of a closed-shell solution.

    Negative: an unrestricted (broken-symmetry) solution lies lower; ``mo`` is then the
    (alpha, beta) pair that starts it, with ``occ`` its occupations: alpha rotated by
    half the lowest mode and beta by minus half, a pure spin-symmetry-breaking step.
    PySCF's own (alpha rotated by the whole mode, beta not) adds an uphill same-spin part;
    on H2O with one O-H at 2.2 Å (PBE/STO-3G) UKS with DIIS did not converge in 50 cycles
    from it and converged in 0.9-1.6 s from this one (same solution, <S^2> 0.845).
    """
    mo, occ = mf.mo_coeff, mf.mo_occ
    if _kpoint(mf):
        from pyscf.pbc.scf import stability as pbc_stab

        hop, hdiag = pbc_stab._gen_hop_rhf_external(mf)
        lowest, v = _lowest(hop, np.asarray(hdiag), guard)
        check = Check(lowest)
        if not check.stable:
            check.mo = (pbc_stab._rotate_mo(mo, occ, v / 2), pbc_stab._rotate_mo(mo, occ, -v / 2))
            check.occ = ([o / 2 for o in occ], [o / 2 for o in occ])
        return check
    from pyscf.scf import stability as mol_stab

    hop, hdiag = _triplet_hop(mf, fock_ao)
    lowest, v = _lowest(hop, hdiag, guard)
    check = Check(lowest)
    if not check.stable:
        check.mo = (mol_stab._rotate_mo(mo, occ, v / 2), mol_stab._rotate_mo(mo, occ, -v / 2))
        check.occ = (occ / 2, occ / 2)
    return check


def fock(mf: Any) -> Any:
    """The Fock matrix of the converged density, without level shift or damping."""
    dm = mf.make_rdm1(mf.mo_coeff, mf.mo_occ)
    return mf.get_fock(dm=dm)


def _triplet_hop(mf: Any, fock_ao: Any) -> tuple[Callable, np.ndarray]:
    """The RHF->UHF Hessian product, as in PySCF's ``_gen_hop_rhf_external`` but without
    its real->complex half (a second response kernel and a second eigenvalue search that
    real labels have no use for), and from the Fock matrix already built."""
    mo, occ = mf.mo_coeff, mf.mo_occ
    occidx, viridx = np.where(occ == 2)[0], np.where(occ == 0)[0]
    orbo, orbv = mo[:, occidx], mo[:, viridx]
    nocc, nvir = len(occidx), len(viridx)
    f_mo = reduce(np.dot, (mo.T, fock_ao, mo))
    foo, fvv = f_mo[occidx[:, None], occidx], f_mo[viridx[:, None], viridx]
    hdiag = (fvv.diagonal()[:, None] - foo.diagonal()).ravel()
    vresp = mf.gen_response(singlet=False, hermi=1)

    def hop(x: np.ndarray) -> np.ndarray:
        x = x.reshape(nvir, nocc)
        x2 = fvv @ x - x @ foo
        d1 = reduce(np.dot, (orbv, x * 2, orbo.T))
        x2 += reduce(np.dot, (orbv.T, vresp(d1 + d1.T), orbo))
        return x2.real.ravel()

    return hop, hdiag


def _lowest(
    hx: Callable[[np.ndarray], np.ndarray],
    hdiag: np.ndarray,
    guard: Callable[[], None] | None,
) -> tuple[float, np.ndarray]:
    """Lowest eigenpair of the symmetric operator ``hx`` by Davidson (PySCF's lib)."""
    from pyscf import lib

    hdiag = np.asarray(hdiag, dtype=float).ravel()
    if hdiag.size == 0:
        # No occupied-virtual pair (an H atom in STO-3G): nothing can rotate, so nothing
        # is lower; Davidson would index an empty space.
        return float("inf"), hdiag
    starts = np.argsort(hdiag)[: min(START_VECTORS, hdiag.size)]
    x0 = [np.eye(1, hdiag.size, int(i)).ravel() for i in starts]

    def product(x: np.ndarray) -> np.ndarray:
        if guard is not None:
            guard()  # the wall-clock limit holds inside the analysis too
        return hx(x)

    def precond(dx: np.ndarray, e: float, _x0: Any) -> np.ndarray:
        d = hdiag - e
        d[abs(d) < 1e-8] = 1e-8
        return dx / d

    e, v = lib.davidson(product, x0, precond, tol=DAVIDSON_TOL, nroots=1, verbose=0)
    return float(e), np.asarray(v)


def _periodic(mf: Any) -> bool:
    return hasattr(mf, "cell")


def _kpoint(mf: Any) -> bool:
    from pyscf.pbc.scf import khf

    return isinstance(mf, khf.KSCF)


def _is_multigrid(mf: Any) -> bool:
    ni = getattr(mf, "_numint", None)
    return ni is not None and "multigrid" in type(ni).__module__
