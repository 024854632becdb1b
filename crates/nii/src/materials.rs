//! Materials and their X-ray attenuation at the two energies of the generator.
//!
//! Source of the numbers: mass attenuation coefficients μ/ρ (total, with coherent scattering)
//! from the NIST tables — J. H. Hubbell and S. M. Seltzer, *X-Ray Mass Attenuation Coefficients*,
//! NIST Standard Reference Database 126, and NIST XCOM (SRD 8) for mixtures — read at 50 keV
//! (the generator's low-energy channel) and 100 keV (its high-energy channel), rounded to three
//! or four significant digits. Mixtures without a table entry (cellulose, drug powder, tobacco,
//! explosive, brass, glass, ceramic) are the mass-weighted sums of their elements' tabulated
//! values (the mixture rule XCOM uses), rounded: they are **approximations** good enough for a
//! training generator, not reference data. A real scanner's spectrum is polychromatic; one
//! effective energy per channel (no beam hardening) is a modelling choice of this generator.
//!
//! Linear attenuation is μ = (μ/ρ) · ρ; the generator works in mm, so [`Material::mu_per_mm`]
//! divides the cm⁻¹ value by 10.

use serde::{Deserialize, Serialize};

/// Material family, as dual-energy pseudo-colour shows it (orange, green, blue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// low effective atomic number (Z ≲ 10): paper, plastics, food, drugs, explosives
    Organic,
    /// intermediate (Z ≈ 10–18): glass, aluminium, ceramics
    Inorganic,
    /// high (Z ≳ 20): steel, copper, brass, lead
    Metal,
}

impl Family {
    /// `organic`, `inorganic` or `metal`.
    pub fn word(self) -> &'static str {
        match self {
            Family::Organic => "organic",
            Family::Inorganic => "inorganic",
            Family::Metal => "metal",
        }
    }
}

/// A material with its density and mass attenuation at the two energies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Material {
    /// name used in files (`steel`, `water`, ...)
    pub name: &'static str,
    /// organic, inorganic or metal
    pub family: Family,
    /// density, g/cm³
    pub density: f64,
    /// μ/ρ at 50 keV, cm²/g
    pub mass_att_low: f64,
    /// μ/ρ at 100 keV, cm²/g
    pub mass_att_high: f64,
}

impl Material {
    /// Linear attenuation per mm at the low and high energy.
    pub fn mu_per_mm(&self) -> [f32; 2] {
        [
            (self.mass_att_low * self.density / 10.0) as f32,
            (self.mass_att_high * self.density / 10.0) as f32,
        ]
    }
}

/// The materials the generator draws (NIST values at 50 / 100 keV; see the module comment).
pub const MATERIALS: &[Material] = &[
    // Cellulose C6H10O5 (paper, cardboard, cotton, wood): mixture rule over C, H, O.
    Material {
        name: "cellulose",
        family: Family::Organic,
        density: 0.8,
        mass_att_low: 0.209,
        mass_att_high: 0.162,
    },
    // Polyethylene (CH2)n: NIST SRD 126 "Polyethylene".
    Material {
        name: "polyethylene",
        family: Family::Organic,
        density: 0.94,
        mass_att_low: 0.204,
        mass_att_high: 0.170,
    },
    // Water, liquid: NIST SRD 126 "Water, Liquid" (0.2269 / 0.1707).
    Material {
        name: "water",
        family: Family::Organic,
        density: 1.0,
        mass_att_low: 0.2269,
        mass_att_high: 0.1707,
    },
    // Pressed drug powder (cocaine hydrochloride C17H22ClNO4): mixture rule; chlorine raises the
    // low-energy value.
    Material {
        name: "drug_powder",
        family: Family::Organic,
        density: 1.2,
        mass_att_low: 0.243,
        mass_att_high: 0.163,
    },
    // Tobacco in cartons (dried leaf with mineral ash, packed): mixture rule, low packing density.
    Material {
        name: "tobacco",
        family: Family::Organic,
        density: 0.35,
        mass_att_low: 0.236,
        mass_att_high: 0.165,
    },
    // RDX-like plastic explosive C3H6N6O6: mixture rule over C, H, N, O.
    Material {
        name: "explosive",
        family: Family::Organic,
        density: 1.65,
        mass_att_low: 0.205,
        mass_att_high: 0.158,
    },
    // Glass (SiO2 approximation): mixture rule over Si (0.4385 / 0.1835) and O (0.2134 / 0.1551).
    Material {
        name: "glass",
        family: Family::Inorganic,
        density: 2.5,
        mass_att_low: 0.3185,
        mass_att_high: 0.168,
    },
    // Aluminium: NIST SRD 126 (0.3681 / 0.1704).
    Material {
        name: "aluminium",
        family: Family::Inorganic,
        density: 2.699,
        mass_att_low: 0.3681,
        mass_att_high: 0.1704,
    },
    // Ceramic (alumina Al2O3): mixture rule over Al and O.
    Material {
        name: "ceramic",
        family: Family::Inorganic,
        density: 3.9,
        mass_att_low: 0.295,
        mass_att_high: 0.163,
    },
    // Iron (steel): NIST SRD 126 (1.958 / 0.3717).
    Material {
        name: "steel",
        family: Family::Metal,
        density: 7.874,
        mass_att_low: 1.958,
        mass_att_high: 0.3717,
    },
    // Copper: NIST SRD 126 (2.613 / 0.4584).
    Material {
        name: "copper",
        family: Family::Metal,
        density: 8.96,
        mass_att_low: 2.613,
        mass_att_high: 0.4584,
    },
    // Brass (65% Cu, 35% Zn): mixture rule over Cu and Zn.
    Material {
        name: "brass",
        family: Family::Metal,
        density: 8.5,
        mass_att_low: 2.74,
        mass_att_high: 0.472,
    },
    // Lead: NIST SRD 126 (8.041 / 5.549; above the K edge at 88 keV at the high energy).
    Material {
        name: "lead",
        family: Family::Metal,
        density: 11.35,
        mass_att_low: 8.041,
        mass_att_high: 5.549,
    },
];

/// The material called `name`.
pub fn material(name: &str) -> Option<&'static Material> {
    MATERIALS.iter().find(|m| m.name == name)
}

/// The materials of a family.
pub fn of_family(family: Family) -> Vec<&'static Material> {
    MATERIALS.iter().filter(|m| m.family == family).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent_with_physics() {
        for m in MATERIALS {
            let [lo, hi] = m.mu_per_mm();
            assert!(lo > 0.0 && hi > 0.0, "{}", m.name);
            // Attenuation falls with energy for every material here.
            assert!(lo > hi, "{}", m.name);
        }
        // The low/high ratio grows with atomic number: that is what dual energy reads.
        let ratio = |n: &str| {
            let m = material(n).unwrap();
            m.mass_att_low / m.mass_att_high
        };
        assert!(ratio("water") < ratio("aluminium"));
        assert!(ratio("aluminium") < ratio("steel"));
        // 1 cm of water at 50 keV transmits exp(-0.2269) ≈ 0.797.
        let water = material("water").unwrap().mu_per_mm()[0];
        assert!(((-water * 10.0).exp() - 0.797).abs() < 0.001);
    }
}
