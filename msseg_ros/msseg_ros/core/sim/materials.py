"""Materials of the sorting line: X-ray attenuation and VNIR reflectance.

Channel order (CONTRACT.md, seed 000 Table 5.1)::

    height_mm, xray_low, xray_high, vnir_433, vnir_497, vnir_561, vnir_626, vnir_691,
    vnir_778, vnir_866, vnir_955

X-ray: dual-energy transmission, Beer–Lambert, T = 65535 · exp(-(μ/ρ)·ρ·t) per energy
(65535 = full transmission, seed 000 Fig. 5.1). Mass attenuation coefficients μ/ρ (cm²/g)
at 60 keV (the 40–80 keV "low" window) and 100 keV (the 80–110 keV "high" window) are
rounded from the NIST XCOM / Hubbell & Seltzer X-ray attenuation tables; alloys and
composites are mass-weighted mixes of their elements. The log-ratio ln T_low / ln T_high
= μ_low/μ_high does not depend on thickness: it is the density signature the seed relies on
(light Al, rubber and FR4 near 1.2–1.7; Cu, Zn, Ni, Fe near 3–3.6).

VNIR: reflectance counts, uint16 scale (65535 = 100 %, seed 000 §2.1). The belt is dark
(≈ 3 %) so that a typical frame's means stay near seed 000 Table 6.1. Object spectra are
shaped after the metals' colours (copper red, brass between copper and zinc, aluminium's
dip near 866 nm, green FR4 solder mask, black rubber, red paint that mimics copper), at
the low levels a line-scan camera sees on scrap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msseg_ros.core import cells

CHANNELS = cells.SORTING_LINE_CHANNELS
VNIR_NM = (433, 497, 561, 626, 691, 778, 866, 955)

#: The 9 classes of seed 000, in the order of its contingency tables; class id = index + 1.
CLASSES = cells.SORTING_LINE_CLASSES

#: seed 000 Table 6.1: mean and std of each channel over the original learning set.
TABLE_6_1_MEAN = np.array(cells.TABLE_6_1_MEAN)
TABLE_6_1_STD = np.array(cells.TABLE_6_1_STD)

FULL_SCALE = 65535.0


@dataclass(frozen=True)
class Bulk:
    """X-ray properties of a bulk material: density (g/cm³) and μ/ρ (cm²/g) at 60/100 keV."""

    density: float
    mu_low: float
    mu_high: float

    def attenuation_per_mm(self) -> tuple[float, float]:
        """Linear attenuation at the low and high energies, 1/mm."""
        return self.density * self.mu_low / 10.0, self.density * self.mu_high / 10.0


def mix(parts: dict[str, float], density: float) -> Bulk:
    """A mass-weighted alloy or composite of ELEMENTS."""
    total = sum(parts.values())
    lo = sum(ELEMENTS[k].mu_low * w for k, w in parts.items()) / total
    hi = sum(ELEMENTS[k].mu_high * w for k, w in parts.items()) / total
    return Bulk(density, lo, hi)


ELEMENTS = {
    "Al": Bulk(2.699, 0.2778, 0.1704),
    "Fe": Bulk(7.874, 1.205, 0.3717),
    "Ni": Bulk(8.902, 1.436, 0.4443),
    "Cu": Bulk(8.960, 1.593, 0.4584),
    "Zn": Bulk(7.133, 1.770, 0.4972),
    "Mg": Bulk(1.738, 0.2627, 0.1693),
    "rubber": Bulk(1.150, 0.1930, 0.1650),  # carbon-black filled SBR
    "fr4": Bulk(1.850, 0.2400, 0.1700),  # glass-epoxy laminate
}

BULK = {
    "copper": ELEMENTS["Cu"],
    "laminated_zinc": ELEMENTS["Zn"],
    "brass": mix({"Cu": 63, "Zn": 37}, 8.50),
    "aluminium": ELEMENTS["Al"],
    "pcb": mix({"fr4": 90, "Cu": 10}, 2.10),  # copper layers and components averaged in
    "nickel": ELEMENTS["Ni"],
    "rubber": ELEMENTS["rubber"],
    "zamak": mix({"Zn": 95.5, "Al": 4.0, "Mg": 0.5}, 6.60),
    "steel": ELEMENTS["Fe"],
}
#: paint is a coating: its X-ray signature is its substrate's, drawn per object.
PAINT_SUBSTRATES = ("aluminium", "steel", "laminated_zinc")

#: Empty-belt reflectance, counts.
BELT_SPECTRUM = np.array([1850, 1760, 2330, 2330, 2170, 2130, 2040, 1990.0])
#: Belt X-ray transmission (the detector is normalised on the belt), fraction.
BELT_TRANSMISSION = 0.993

#: Base reflectance per class, counts (uint16 scale), bands 433..955 nm.
SPECTRA = {
    "copper":         np.array([1500, 1850, 3100, 5600, 6700, 7200, 7400, 7500.0]),
    "laminated_zinc": np.array([4300, 4550, 4700, 4800, 4800, 4850, 4900, 4900.0]),
    "paint":          np.array([1450, 1550, 2000, 6000, 6800, 7000, 7100, 7100.0]),
    "aluminium":      np.array([5600, 5900, 6000, 6050, 6000, 5800, 5200, 5700.0]),
    "pcb":            np.array([1300, 2000, 3100, 1600, 1500, 4300, 5200, 5400.0]),
    "nickel":         np.array([3700, 3950, 4250, 4450, 4650, 4850, 5000, 5100.0]),
    "rubber":         np.array([900, 880, 870, 860, 860, 870, 880, 900.0]),
    "zamak":          np.array([4000, 4350, 4600, 4700, 4750, 4800, 4850, 4900.0]),
}
# brass lies between copper and zinc; its mix fraction is drawn per object
SPECTRA["brass"] = 0.55 * SPECTRA["copper"] + 0.45 * SPECTRA["laminated_zinc"]
#: Oxide / dirt that scrap surfaces drift towards (brownish grey), counts.
DIRT_SPECTRUM = np.array([1600, 1800, 2200, 2600, 2800, 3000, 3100, 3200.0])
#: PCB features: copper traces and black components.
PCB_TRACE = SPECTRA["copper"] * 0.8
PCB_COMPONENT = np.array([700, 680, 690, 700, 720, 760, 800, 850.0])


def object_spectrum(cls: str, rng: np.random.Generator) -> np.ndarray:
    """One object's reflectance (8,) with within-class variation: brightness (specular
    metal scatters), per-band jitter, and a random share of oxide/dirt."""
    if cls == "brass":
        a = rng.uniform(0.35, 0.75)
        base = a * SPECTRA["copper"] + (1 - a) * SPECTRA["laminated_zinc"]
    else:
        base = SPECTRA[cls]
    dirt = rng.uniform(0.0, 0.6)
    spec = (1 - dirt) * base + dirt * DIRT_SPECTRUM
    spec = spec * rng.lognormal(0.0, 0.3) * rng.normal(1.0, 0.07, size=8)
    return np.clip(spec, 50.0, FULL_SCALE)
