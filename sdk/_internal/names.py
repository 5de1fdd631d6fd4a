"""Container names and IDs the way the docker daemon makes and checks them.

``generate_name`` follows the daemon's ``generateNewName``: up to six random
``adjective_surname`` picks, a random digit appended from the second try on, then the
short ID as a last resort.  The word lists are our own (notable scientists and
engineers); like docker we never hand out ``boring_wozniak``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sdk.errors import InvalidArgument

ADJECTIVES: tuple[str, ...] = tuple("""
able adaptive agile alert amused ardent artful astute audacious bashful blithe bold boring
bouncy breezy bright brisk buoyant calm candid careful cheerful chipper civil clever cosmic
courteous cozy crisp curious daring dapper deft devoted diligent dreamy dynamic earnest
easygoing eager elated energetic exuberant fearless fervent fluent frank gentle genial gleeful
glowing graceful gutsy hearty honest humble inventive jaunty jolly joyful jubilant keen kindly
lively loyal lucky mellow merry mindful modest nimble noble patient peppy perky placid playful
plucky polite precise proud quick quiet radiant rational resolute rustic savvy sincere snappy
spirited sprightly steady sturdy sunny swift tidy tranquil valiant vivid wise witty zany zesty
""".split())

SURNAMES: tuple[str, ...] = tuple("""
abel adleman aiken alferov alhazen alvarez ampere anning arago archimedes arrhenius avogadro
babbage backus baird banneker bardeen bateson becquerel bell benz bernoulli bessel bohr
boltzmann boole borlaug bose boyle bragg brahe brattain braun brunel bunsen cajal cantor
cardano carnot carson carver cauchy cavendish celsius cerf chadwick chargaff clausius
cockcroft codd compton conway copernicus corbato cori coulomb crick curie cuvier dalton darwin
dedekind descartes diesel dijkstra dirac doppler dyson edison ehrlich einstein elion engelbart
eratosthenes erdos euclid euler fahrenheit faraday fermat fermi feynman fibonacci fleming
foucault fourier franklin fraunhofer frisch galileo galois galvani gauss geiger gibbs godel
goodall gosling haber hadamard hahn halley hamilton hamming harvey hawking heaviside heisenberg
helmholtz herschel hertz higgs hilbert hoare hodgkin hollerith hooke hopper hubble humboldt
huygens hypatia jacobi jemison jenner joule kahn kay kelvin kepler kernighan kettering kilby
kirchhoff knuth koch kolmogorov kovalevskaya kuiper lagrange lamarr lamport landau laplace
lavoisier leakey leavitt lederberg leibniz lemaitre liebig linnaeus liskov lister lorentz
lovelace lyell mach mandelbrot marconi margulis maxwell mcclintock meitner mendel mendeleev
michelson millikan minsky mirzakhani mobius montalcini morse napier nash newton nobel noether
noyce ohm pascal pasteur pauli pauling payne perlman planck poincare ptolemy pythagoras raman
ramanujan rayleigh ride riemann ritchie rontgen rubin rutherford sabin sagan salk sanger
schrodinger shannon sinoussi snell somerville stephenson stokes sutherland szilard tesla
thompson thomson torricelli torvalds turing tyndall vesalius volta wallace watt wegener
weierstrass wiener wiles wilkins wirth wozniak wright wu yalow yonath yukawa zuse zwicky
""".split())

_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")
_HEX = frozenset("0123456789abcdef")


def _randbelow(n: int) -> int:
    """Uniform enough for picking names (not a security boundary); avoids importing random."""
    return int.from_bytes(os.urandom(4), "little") % n


def random_name(retry: int = 0) -> str:
    """namesgenerator ``GetRandomName``: ``adjective_surname``, plus a digit when retrying."""
    while True:
        name = f"{ADJECTIVES[_randbelow(len(ADJECTIVES))]}_{SURNAMES[_randbelow(len(SURNAMES))]}"
        if name != "boring_wozniak":    # Steve Wozniak is not boring
            break
    if retry > 0:
        name += str(_randbelow(10))
    return name


def generate_name(taken: Callable[[str], bool], fallback_id: str | None = None) -> str:
    """A free container name: six random tries, then the 12-character short ID."""
    for attempt in range(6):
        name = random_name(attempt)
        if not taken(name):
            return name
    return short_id(fallback_id or new_id())


def validate_name(name: str) -> None:
    """docker's ``^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`` (so at least two characters)."""
    body = name[1:] if name.startswith("/") else name
    if len(body) < 2 or body[0] not in _NAME_FIRST or not all(c in _NAME_REST for c in body):
        raise InvalidArgument(f"Invalid container name ({name}), only "
                              "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def new_id() -> str:
    """64 random hex digits whose 12-character prefix is never all digits (stringid)."""
    while True:
        full = os.urandom(32).hex()
        if not full[:12].isdigit():
            return full


def short_id(full: str) -> str:
    """stringid ``TruncateID``: drop an ``algo:`` prefix, keep 12 characters."""
    if ":" in full:
        full = full.partition(":")[2]
    return full[:12]


def is_hex_id(text: str) -> bool:
    """A full 64-hex-digit ID (lowercase), as docker's ``stringid.ValidateID``."""
    return len(text) == 64 and all(c in _HEX for c in text)


__all__ = ["ADJECTIVES", "SURNAMES", "random_name", "generate_name", "validate_name", "new_id",
           "short_id", "is_hex_id"]
