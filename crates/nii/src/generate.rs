//! The seedable synthetic generator of dual-energy scans.
//!
//! A scan is drawn in four steps, all from one seeded stream per scan (`seed`, `index`), so a scan
//! can be made again from its provenance alone and scans can be drawn in parallel:
//! 1. **Objects as parts.** The cargo (a cardboard parcel, a bag with its frame, or an aluminium
//!    air-cargo container), clutter of organic, inorganic and metal materials, and threat objects
//!    ([`ThreatClass`]) are lists of [`Part`]s: a rectangle, ellipse or triangle with a material,
//!    a thickness in mm and a thickness profile (flat slab, or round: cylinder or ellipsoid).
//! 2. **Beer–Lambert.** Every part adds `μ_E · t(x, y)` to the line integral of each energy `E`
//!    ([`crate::materials`]); transmission is `T_E = exp(−Σ μ_E t)`.
//! 3. **Detector blur**: a separable Gaussian of `blur_sigma_px` on the transmission.
//! 4. **Poisson noise**: counts ~ Poisson(`I0_E · T_E`), stored as `counts / I0_E` in 16 bits.
//!
//! The true box of each threat is the box of the pixels its parts cover; its mask is the scan's
//! 8-bit mask (value = object number). [`GeneratorParams`] makes every choice explicit (cargo mix,
//! clutter density and materials, threat mix, orientation, overlap, noise, blur, resolution), so a
//! test split can be drawn with parameters unseen in training.
//!
//! Physics kept out on purpose (a training generator, not a simulator): one effective energy per
//! channel (no beam hardening, no scatter), parallel-beam geometry, no detector afterglow.

use borderlens_domain::rng::Rng;
use borderlens_domain::{iso6346_check_digit, s10_check_digit};
use serde::{Deserialize, Serialize};

use crate::geometry::BoxPx;
use crate::image::{Image16, Mask8};
use crate::materials::{material, of_family, Family, Material};
use crate::scan::{
    CargoType, ClutterSummary, GeneratorRecord, Metadata, Provenance, Source, TruthObject,
    TruthSource,
};

/// The generator's name in provenance records.
pub const GENERATOR_NAME: &str = "borderlens-nii";
/// The licence of generated scans.
pub const SYNTHETIC_LICENCE: &str = "CC0-1.0";

/// Threat object classes the generator can draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreatClass {
    /// kitchen knife: polymer handle, steel blade
    Knife,
    /// pistol: steel slide and barrel, polymer grip, loaded magazine
    Gun,
    /// utility or razor blade: a thin steel trapezoid
    Blade,
    /// bottle of liquid (glass or PET) — liquids restrictions
    Bottle,
    /// pressed drug bricks in plastic wrap
    DrugBricks,
    /// cigarette cartons (excise goods)
    CigaretteCartons,
    /// loose cartridges: brass cases with lead bullets
    Ammunition,
    /// improvised explosive device: explosive block, battery, wires, detonator
    Ied,
    /// scissors: two steel blades, plastic handles
    Scissors,
}

/// Every threat class, in a fixed order.
pub const THREAT_CLASSES: [ThreatClass; 9] = [
    ThreatClass::Knife,
    ThreatClass::Gun,
    ThreatClass::Blade,
    ThreatClass::Bottle,
    ThreatClass::DrugBricks,
    ThreatClass::CigaretteCartons,
    ThreatClass::Ammunition,
    ThreatClass::Ied,
    ThreatClass::Scissors,
];

impl ThreatClass {
    /// The class name in files (`knife`, `drug_bricks`, ...).
    pub fn word(self) -> &'static str {
        match self {
            ThreatClass::Knife => "knife",
            ThreatClass::Gun => "gun",
            ThreatClass::Blade => "blade",
            ThreatClass::Bottle => "bottle",
            ThreatClass::DrugBricks => "drug_bricks",
            ThreatClass::CigaretteCartons => "cigarette_cartons",
            ThreatClass::Ammunition => "ammunition",
            ThreatClass::Ied => "ied",
            ThreatClass::Scissors => "scissors",
        }
    }

    /// The class called `word`.
    pub fn parse(word: &str) -> Result<ThreatClass, String> {
        THREAT_CLASSES
            .iter()
            .copied()
            .find(|c| c.word() == word)
            .ok_or_else(|| {
                let known: Vec<&str> = THREAT_CLASSES.iter().map(|c| c.word()).collect();
                format!("unknown threat class '{word}'; known: {}", known.join(", "))
            })
    }
}

/// Every parameter of a generator run. Ranges are `[low, high]`, drawn uniformly per scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorParams {
    /// image width, pixels
    pub width: u32,
    /// image height, pixels
    pub height: u32,
    /// resolution of parcels and bags, mm per pixel
    pub mm_per_pixel: f64,
    /// resolution of containers, mm per pixel
    pub container_mm_per_pixel: f64,
    /// relative weights of parcel, bag and container
    pub cargo_mix: [f64; 3],
    /// clutter objects per 10,000 px² of the cargo's inner area
    pub clutter_density: [f64; 2],
    /// relative weights of organic, inorganic and metal clutter
    pub clutter_families: [f64; 3],
    /// probability that a scan holds at least one threat
    pub threat_rate: f64,
    /// most threats in one scan
    pub max_threats: u32,
    /// relative weight of each threat class (classes left out are never drawn)
    pub threat_mix: Vec<(ThreatClass, f64)>,
    /// threats are rotated in-plane by a uniform angle in `[-max_rotation_deg, max_rotation_deg]`
    pub max_rotation_deg: f64,
    /// largest IoU allowed between the boxes of two threats of one scan (0: never overlap)
    pub max_overlap: f64,
    /// threat size factor range
    pub threat_scale: [f64; 2],
    /// photons per pixel without object, low and high energy (Poisson noise level)
    pub i0: [f64; 2],
    /// detector blur, Gaussian sigma in pixels (0: none)
    pub blur_sigma_px: f64,
}

impl Default for GeneratorParams {
    fn default() -> Self {
        GeneratorParams {
            width: 512,
            height: 512,
            mm_per_pixel: 1.2,
            container_mm_per_pixel: 5.0,
            cargo_mix: [0.45, 0.45, 0.10],
            clutter_density: [0.5, 2.0],
            clutter_families: [0.6, 0.25, 0.15],
            threat_rate: 0.6,
            max_threats: 3,
            threat_mix: THREAT_CLASSES.iter().map(|c| (*c, 1.0)).collect(),
            max_rotation_deg: 180.0,
            max_overlap: 0.2,
            threat_scale: [0.85, 1.15],
            i0: [15_000.0, 30_000.0],
            blur_sigma_px: 0.8,
        }
    }
}

impl GeneratorParams {
    /// Checks the parameters; the message names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=4096).contains(&self.width) || !(16..=4096).contains(&self.height) {
            return Err(format!(
                "width and height must be 16 to 4096 pixels, not {} × {}",
                self.width, self.height
            ));
        }
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number, not {v}"))
            }
        };
        positive("mm_per_pixel", self.mm_per_pixel)?;
        positive("container_mm_per_pixel", self.container_mm_per_pixel)?;
        positive("i0 (low)", self.i0[0])?;
        positive("i0 (high)", self.i0[1])?;
        let weights = |name: &str, w: &[f64]| {
            if w.iter().all(|v| v.is_finite() && *v >= 0.0) && w.iter().sum::<f64>() > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be non-negative weights with a positive sum"
                ))
            }
        };
        weights("cargo_mix", &self.cargo_mix)?;
        weights("clutter_families", &self.clutter_families)?;
        if self.max_threats > 0 && self.threat_rate > 0.0 {
            let mix: Vec<f64> = self.threat_mix.iter().map(|(_, w)| *w).collect();
            weights("threat_mix", &mix)?;
        }
        let range = |name: &str, r: [f64; 2], lo: f64| {
            if r[0].is_finite() && r[1].is_finite() && r[0] >= lo && r[0] <= r[1] {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be a range [low, high] with {lo} <= low <= high"
                ))
            }
        };
        range("clutter_density", self.clutter_density, 0.0)?;
        range("threat_scale", self.threat_scale, 0.05)?;
        if !(0.0..=1.0).contains(&self.threat_rate) {
            return Err("threat_rate must be a probability in [0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.max_overlap) {
            return Err("max_overlap must be an IoU in [0, 1]".into());
        }
        if !(self.max_rotation_deg.is_finite() && (0.0..=180.0).contains(&self.max_rotation_deg)) {
            return Err("max_rotation_deg must be in [0, 180]".into());
        }
        if !(self.blur_sigma_px.is_finite() && (0.0..=10.0).contains(&self.blur_sigma_px)) {
            return Err("blur_sigma_px must be in [0, 10]".into());
        }
        if self.max_threats > 32 {
            return Err("max_threats must be at most 32".into());
        }
        Ok(())
    }
}

/// The outline of a part, in its own mm coordinates centred on `(0, 0)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// a `w × h` rectangle
    Rect {
        /// width, mm
        w: f32,
        /// height, mm
        h: f32,
    },
    /// an ellipse with half-axes `rx`, `ry`
    Ellipse {
        /// half-axis along x, mm
        rx: f32,
        /// half-axis along y, mm
        ry: f32,
    },
    /// a triangle
    Triangle([(f32, f32); 3]),
}

/// How thickness varies across a part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// the same thickness everywhere
    Slab,
    /// round: an ellipsoid for an ellipse, a cylinder lying along x for a rectangle
    Round,
}

/// One part of an object: a shape of one material with a thickness (along the beam).
#[derive(Clone, Copy, Debug)]
pub struct Part {
    /// outline
    pub shape: Shape,
    /// centre in the object's mm coordinates
    pub at: (f32, f32),
    /// rotation in the object's coordinates, radians
    pub angle: f32,
    /// material
    pub material: &'static Material,
    /// largest thickness along the beam, mm
    pub thickness: f32,
    /// thickness profile
    pub profile: Profile,
}

fn mat(name: &str) -> &'static Material {
    // The names below are the table's own; a missing one is a programming error caught by the
    // tests that draw every class.
    material(name).unwrap_or(&crate::materials::MATERIALS[0])
}

fn part(shape: Shape, at: (f32, f32), material: &str, thickness: f32, profile: Profile) -> Part {
    Part {
        shape,
        at,
        angle: 0.0,
        material: mat(material),
        thickness,
        profile,
    }
}

fn rect(w: f32, h: f32) -> Shape {
    Shape::Rect { w, h }
}

/// The parts of a threat object, in mm, centred near the origin, lying along x.
pub fn threat_parts(class: ThreatClass, rng: &mut Rng) -> Vec<Part> {
    use Profile::{Round, Slab};
    let u = |rng: &mut Rng, lo: f64, hi: f64| (lo + (hi - lo) * rng.next_f64()) as f32;
    match class {
        ThreatClass::Knife => {
            let blade = u(rng, 90.0, 170.0);
            let width = u(rng, 18.0, 32.0);
            vec![
                part(rect(105.0, 24.0), (-52.0, 0.0), "polyethylene", 18.0, Round),
                part(rect(8.0, 26.0), (4.0, 0.0), "steel", 10.0, Slab),
                part(
                    rect(blade, width),
                    (8.0 + blade / 2.0, 0.0),
                    "steel",
                    2.0,
                    Slab,
                ),
                part(
                    Shape::Triangle([(0.0, -width / 2.0), (0.0, width / 2.0), (40.0, width / 2.0)]),
                    (8.0 + blade, 0.0),
                    "steel",
                    2.0,
                    Slab,
                ),
            ]
        }
        ThreatClass::Gun => {
            let mut parts = vec![
                part(rect(185.0, 32.0), (0.0, -40.0), "steel", 26.0, Slab),
                part(rect(110.0, 12.0), (30.0, -40.0), "steel", 12.0, Round),
                part(rect(34.0, 110.0), (-60.0, 25.0), "polyethylene", 30.0, Slab),
                part(rect(22.0, 95.0), (-60.0, 28.0), "steel", 4.0, Slab),
                part(rect(40.0, 6.0), (-20.0, 5.0), "steel", 8.0, Slab),
            ];
            parts[2].angle = 0.26;
            parts[3].angle = 0.26;
            for k in 0..5 {
                let mut c = part(
                    rect(9.0, 16.0),
                    (-62.0 + 2.0 * k as f32, 0.0 + 14.0 * k as f32),
                    "brass",
                    9.0,
                    Round,
                );
                c.angle = 0.26;
                parts.push(c);
            }
            parts
        }
        ThreatClass::Blade => {
            let len = u(rng, 45.0, 65.0);
            vec![
                part(rect(len, 19.0), (0.0, 0.0), "steel", 0.6, Slab),
                part(
                    Shape::Triangle([(0.0, -9.5), (0.0, 9.5), (12.0, -9.5)]),
                    (len / 2.0, 0.0),
                    "steel",
                    0.6,
                    Slab,
                ),
                part(
                    Shape::Triangle([(0.0, -9.5), (0.0, 9.5), (-12.0, -9.5)]),
                    (-len / 2.0, 0.0),
                    "steel",
                    0.6,
                    Slab,
                ),
            ]
        }
        ThreatClass::Bottle => {
            let len = u(rng, 160.0, 260.0);
            let dia = u(rng, 60.0, 90.0);
            let wall = if rng.next_f64() < 0.5 {
                "glass"
            } else {
                "polyethylene"
            };
            let liquid = if rng.next_f64() < 0.8 {
                "water"
            } else {
                "explosive"
            };
            vec![
                part(rect(len, dia), (0.0, 0.0), liquid, dia - 6.0, Round),
                part(rect(len, dia), (0.0, 0.0), wall, 6.0, Slab),
                part(
                    rect(dia * 0.7, dia * 0.35),
                    (len / 2.0 + dia * 0.35, 0.0),
                    wall,
                    dia * 0.35,
                    Round,
                ),
            ]
        }
        ThreatClass::DrugBricks => {
            let n = 1 + rng.below(4);
            let mut parts = Vec::new();
            for k in 0..n {
                let at = ((k % 2) as f32 * 170.0 - 85.0, (k / 2) as f32 * 120.0 - 60.0);
                parts.push(part(rect(160.0, 110.0), at, "drug_powder", 45.0, Slab));
                parts.push(part(rect(164.0, 114.0), at, "polyethylene", 2.0, Slab));
            }
            parts
        }
        ThreatClass::CigaretteCartons => {
            let n = 2 + rng.below(4);
            let mut parts = Vec::new();
            for k in 0..n {
                let at = (0.0, k as f32 * 92.0 - (n - 1) as f32 * 46.0);
                parts.push(part(rect(270.0, 88.0), at, "tobacco", 48.0, Slab));
                parts.push(part(rect(272.0, 90.0), at, "cellulose", 3.0, Slab));
            }
            parts
        }
        ThreatClass::Ammunition => {
            let n = 5 + rng.below(11);
            let mut parts = Vec::new();
            for k in 0..n {
                let (col, row) = ((k % 5) as f32, (k / 5) as f32);
                let at = (row * 42.0 - 40.0, col * 11.0 - 22.0);
                parts.push(part(rect(22.0, 9.5), at, "brass", 9.5, Round));
                parts.push(part(
                    rect(12.0, 9.0),
                    (at.0 + 16.0, at.1),
                    "lead",
                    9.0,
                    Round,
                ));
            }
            parts
        }
        ThreatClass::Ied => vec![
            part(rect(150.0, 80.0), (0.0, 0.0), "explosive", 40.0, Slab),
            part(rect(48.0, 26.0), (110.0, -20.0), "steel", 26.0, Round),
            part(rect(45.0, 7.0), (-95.0, 10.0), "aluminium", 7.0, Round),
            part(rect(120.0, 1.5), (50.0, 5.0), "copper", 1.5, Round),
            part(rect(90.0, 1.5), (-30.0, 30.0), "copper", 1.5, Round),
        ],
        ThreatClass::Scissors => {
            let mut a = part(rect(110.0, 9.0), (30.0, -4.0), "steel", 2.5, Slab);
            let mut b = part(rect(110.0, 9.0), (30.0, 4.0), "steel", 2.5, Slab);
            a.angle = 0.12;
            b.angle = -0.12;
            vec![
                a,
                b,
                part(
                    Shape::Ellipse { rx: 20.0, ry: 13.0 },
                    (-40.0, -16.0),
                    "polyethylene",
                    8.0,
                    Round,
                ),
                part(
                    Shape::Ellipse { rx: 20.0, ry: 13.0 },
                    (-40.0, 16.0),
                    "polyethylene",
                    8.0,
                    Round,
                ),
                part(
                    Shape::Ellipse { rx: 3.0, ry: 3.0 },
                    (-12.0, 0.0),
                    "steel",
                    6.0,
                    Slab,
                ),
            ]
        }
    }
}

/// Where an object goes: pixel position of its origin, rotation, flip and scale (mm → px).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// image x of the object's origin, px
    pub x: f32,
    /// image y of the object's origin, px
    pub y: f32,
    /// in-plane rotation, radians
    pub angle: f32,
    /// mirror the object across its x axis before rotating
    pub flip: bool,
    /// pixels per mm (scale factor / resolution)
    pub px_per_mm: f32,
}

/// A 2×3 affine map `p ↦ (a·x + b·y + c, d·x + e·y + f)`.
#[derive(Clone, Copy, Debug)]
struct Affine([f32; 6]);

impl Affine {
    fn apply(&self, (x, y): (f32, f32)) -> (f32, f32) {
        let m = self.0;
        (m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5])
    }

    /// `self ∘ other`.
    fn then_after(&self, other: &Affine) -> Affine {
        let (a, b) = (self.0, other.0);
        Affine([
            a[0] * b[0] + a[1] * b[3],
            a[0] * b[1] + a[1] * b[4],
            a[0] * b[2] + a[1] * b[5] + a[2],
            a[3] * b[0] + a[4] * b[3],
            a[3] * b[1] + a[4] * b[4],
            a[3] * b[2] + a[4] * b[5] + a[5],
        ])
    }

    fn invert(&self) -> Affine {
        let m = self.0;
        let det = m[0] * m[4] - m[1] * m[3];
        let (a, b, d, e) = (m[4] / det, -m[1] / det, -m[3] / det, m[0] / det);
        Affine([a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])])
    }
}

fn part_to_image(part: &Part, place: &Placement) -> Affine {
    let (s, c) = part.angle.sin_cos();
    let local = Affine([c, -s, part.at.0, s, c, part.at.1]);
    let flip = if place.flip { -1.0 } else { 1.0 };
    let (ps, pc) = place.angle.sin_cos();
    let k = place.px_per_mm;
    // image = T + k · R(angle) · diag(1, flip) · object
    let object = Affine([
        k * pc,
        -k * ps * flip,
        place.x,
        k * ps,
        k * pc * flip,
        place.y,
    ]);
    object.then_after(&local)
}

fn shape_corners(shape: &Shape) -> Vec<(f32, f32)> {
    match *shape {
        Shape::Rect { w, h } => vec![
            (-w / 2.0, -h / 2.0),
            (w / 2.0, -h / 2.0),
            (w / 2.0, h / 2.0),
            (-w / 2.0, h / 2.0),
        ],
        Shape::Ellipse { rx, ry } => vec![(-rx, -ry), (rx, -ry), (rx, ry), (-rx, ry)],
        Shape::Triangle(p) => p.to_vec(),
    }
}

/// The box (px) an object's parts can reach under `place` (conservative for ellipses).
pub fn object_bounds(parts: &[Part], place: &Placement) -> Option<BoxPx> {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in parts {
        let m = part_to_image(p, place);
        for corner in shape_corners(&p.shape) {
            let (x, y) = m.apply(corner);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 <= x1).then(|| BoxPx {
        x0: f64::from(x0),
        y0: f64::from(y0),
        x1: f64::from(x1),
        y1: f64::from(y1),
    })
}

/// Line integrals `Σ μ_E t` of both energies over a `width × height` grid, with an optional
/// object mask.
pub struct Canvas {
    /// width, px
    pub width: usize,
    /// height, px
    pub height: usize,
    /// `Σ μ t` at the low energy
    pub low: Vec<f32>,
    /// `Σ μ t` at the high energy
    pub high: Vec<f32>,
    /// object number per pixel (0: none)
    pub mask: Vec<u8>,
}

impl Canvas {
    /// An empty (air) canvas.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            low: vec![0.0; width * height],
            high: vec![0.0; width * height],
            mask: vec![0; width * height],
        }
    }

    /// Adds the parts of one object placed by `place`; pixels it covers get `mask_value` when it
    /// is not 0. Returns the box of the covered pixels.
    pub fn draw(&mut self, parts: &[Part], place: &Placement, mask_value: u8) -> Option<BoxPx> {
        let (mut bx0, mut by0, mut bx1, mut by1) = (usize::MAX, usize::MAX, 0usize, 0usize);
        for p in parts {
            let forward = part_to_image(p, place);
            let inverse = forward.invert();
            let [mu_low, mu_high] = p.material.mu_per_mm();
            let Some(bounds) = object_bounds(std::slice::from_ref(p), place) else {
                continue;
            };
            let xa = bounds.x0.floor().max(0.0) as usize;
            let ya = bounds.y0.floor().max(0.0) as usize;
            let xb = (bounds.x1.ceil().max(0.0) as usize).min(self.width);
            let yb = (bounds.y1.ceil().max(0.0) as usize).min(self.height);
            let m = inverse.0;
            for y in ya..yb {
                let cy = y as f32 + 0.5;
                let row = y * self.width;
                for x in xa..xb {
                    let cx = x as f32 + 0.5;
                    let qx = m[0] * cx + m[1] * cy + m[2];
                    let qy = m[3] * cx + m[4] * cy + m[5];
                    let t = thickness(p, qx, qy);
                    if t > 0.0 {
                        let i = row + x;
                        self.low[i] += mu_low * t;
                        self.high[i] += mu_high * t;
                        if mask_value != 0 {
                            self.mask[i] = mask_value;
                            bx0 = bx0.min(x);
                            by0 = by0.min(y);
                            bx1 = bx1.max(x + 1);
                            by1 = by1.max(y + 1);
                        }
                    }
                }
            }
        }
        (bx0 != usize::MAX).then_some(BoxPx {
            x0: bx0 as f64,
            y0: by0 as f64,
            x1: bx1 as f64,
            y1: by1 as f64,
        })
    }
}

/// Thickness (mm) of a part at its local point `(qx, qy)`, 0 outside.
fn thickness(p: &Part, qx: f32, qy: f32) -> f32 {
    match p.shape {
        Shape::Rect { w, h } => {
            let (u, v) = (2.0 * qx / w, 2.0 * qy / h);
            if u.abs() > 1.0 || v.abs() > 1.0 {
                return 0.0;
            }
            match p.profile {
                Profile::Slab => p.thickness,
                Profile::Round => p.thickness * (1.0 - v * v).max(0.0).sqrt(),
            }
        }
        Shape::Ellipse { rx, ry } => {
            let r2 = (qx / rx).powi(2) + (qy / ry).powi(2);
            if r2 > 1.0 {
                return 0.0;
            }
            match p.profile {
                Profile::Slab => p.thickness,
                Profile::Round => p.thickness * (1.0 - r2).sqrt(),
            }
        }
        Shape::Triangle([a, b, c]) => {
            let edge = |(ax, ay): (f32, f32), (bx, by): (f32, f32)| {
                (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)
            };
            let (e0, e1, e2) = (edge(a, b), edge(b, c), edge(c, a));
            let inside =
                (e0 >= 0.0 && e1 >= 0.0 && e2 >= 0.0) || (e0 <= 0.0 && e1 <= 0.0 && e2 <= 0.0);
            if inside {
                p.thickness
            } else {
                0.0
            }
        }
    }
}

/// Separable Gaussian blur of a `width × height` image (edges clamped).
pub fn blur(values: &mut [f32], width: usize, height: usize, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);
    let mut tmp = vec![0.0f32; values.len()];
    let (w, h) = (width as isize, height as isize);
    for y in 0..height {
        let row = &values[y * width..(y + 1) * width];
        let out = &mut tmp[y * width..(y + 1) * width];
        for x in 0..w {
            let mut acc = 0.0;
            for (k, weight) in kernel.iter().enumerate() {
                let xx = (x + k as isize - radius).clamp(0, w - 1) as usize;
                acc += weight * row[xx];
            }
            out[x as usize] = acc;
        }
    }
    for y in 0..h {
        for (k, weight) in kernel.iter().enumerate() {
            let yy = (y + k as isize - radius).clamp(0, h - 1) as usize;
            let src = &tmp[yy * width..(yy + 1) * width];
            let dst = &mut values[y as usize * width..(y as usize + 1) * width];
            if k == 0 {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d = weight * s);
            } else {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += weight * s);
            }
        }
    }
}

/// A standard normal draw (Box–Muller; one of the pair is used, for simplicity of the stream).
pub fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64(); // (0, 1]
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Two standard normal draws (both of Box–Muller's pair) from one 64-bit draw, in f32: the
/// noise is the generator's largest cost. `u1` has 24 bits, so draws stop at ±5.8 σ (a tail
/// probability below 1e-8, far under what a 16-bit image shows).
fn normal_pair(rng: &mut Rng) -> (f32, f32) {
    let bits = rng.next_u64();
    let u1 = ((bits >> 40) as f32 + 1.0) * (1.0 / 16_777_216.0); // (0, 1]
    let u2 = ((bits >> 8) & 0xFF_FFFF) as f32 * (1.0 / 16_777_216.0); // [0, 1)
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Poisson noise on transmission: counts ~ Poisson(`i0 · t`), returned as `counts / i0`.
/// Exact (Knuth's product of uniforms) below a mean of 30 counts; above it the normal
/// approximation `λ + √λ · z`, whose error is far below the 16-bit quantisation step there.
pub fn poisson_noise(t: &mut [f32], i0: f32, rng: &mut Rng) {
    let mut spare: Option<f32> = None;
    for v in t.iter_mut() {
        let lambda = (*v).max(0.0) * i0;
        let counts = if lambda < 30.0 {
            let limit = (-f64::from(lambda)).exp();
            let mut k = 0u32;
            let mut prod = rng.next_f64();
            while prod > limit {
                k += 1;
                prod *= rng.next_f64();
            }
            k as f32
        } else {
            let z = match spare.take() {
                Some(z) => z,
                None => {
                    let (a, b) = normal_pair(rng);
                    spare = Some(b);
                    a
                }
            };
            (lambda + lambda.sqrt() * z).round().max(0.0)
        };
        *v = counts / i0;
    }
}

/// A scan drawn by the generator, before it is stored: metadata, provenance, images, truth.
pub struct GeneratedScan {
    /// metadata (scan id `syn-<seed>-<index>`)
    pub metadata: Metadata,
    /// provenance: synthetic, with the run's parameters, seed and index
    pub provenance: Provenance,
    /// low-energy transmission
    pub low: Image16,
    /// high-energy transmission
    pub high: Image16,
    /// object mask (value = number of the object in `truth`, from 1)
    pub mask: Mask8,
    /// true threat objects
    pub truth: Vec<TruthObject>,
    /// what clutter was drawn
    pub clutter: ClutterSummary,
}

/// The stream of scan `index` of the run `seed` (independent of the order scans are drawn in).
pub fn scan_rng(seed: u64, index: u64) -> Rng {
    let mut mix = Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    Rng::new(mix.next_u64() ^ index)
}

fn pick_weighted(rng: &mut Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut r = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        if r < *w {
            return i;
        }
        r -= w;
    }
    weights.len() - 1
}

fn uniform(rng: &mut Rng, [lo, hi]: [f64; 2]) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

const COUNTRIES: [&str; 12] = [
    "CN", "DE", "FR", "GB", "IN", "MA", "NG", "NL", "TR", "US", "VN", "BR",
];
const CONTENTS: [&str; 10] = [
    "clothing",
    "books",
    "electronics",
    "toys",
    "shoes",
    "cosmetics",
    "kitchenware",
    "food",
    "spare parts",
    "documents",
];
const CARRIERS: [&str; 5] = [
    "Postal operator A",
    "Express carrier B",
    "Airline C",
    "Shipping line D",
    "Courier E",
];
const LOCATIONS: [&str; 4] = [
    "Synthetic airport",
    "Synthetic mail centre",
    "Synthetic seaport",
    "Synthetic land border",
];

/// The cargo's parts and its inner area (px box) for a `width × height` image.
fn cargo_parts(
    cargo: CargoType,
    rng: &mut Rng,
    w: f32,
    h: f32,
    px_per_mm: f32,
) -> (Vec<Part>, BoxPx) {
    use Profile::{Round, Slab};
    let fw = (0.70 + 0.25 * rng.next_f64() as f32) * w;
    let fh = (0.55 + 0.35 * rng.next_f64() as f32) * h;
    let (wm, hm) = (fw / px_per_mm, fh / px_per_mm);
    let depth = (150.0 + 250.0 * rng.next_f64()) as f32;
    let mut parts = Vec::new();
    let wall = |t_mm: f32| (t_mm).max(1.2 / px_per_mm);
    let (base_mat, base_t, wall_mat, wall_t) = match cargo {
        CargoType::Parcel => ("cellulose", 8.0, "cellulose", 4.0),
        CargoType::Bag => ("polyethylene", 4.0, "polyethylene", 5.0),
        CargoType::Container => ("aluminium", 4.0, "aluminium", 3.0),
    };
    parts.push(part(rect(wm, hm), (0.0, 0.0), base_mat, base_t, Slab));
    let ww = wall(wall_t);
    for (at, size) in [
        ((0.0, -hm / 2.0 + ww / 2.0), (wm, ww)),
        ((0.0, hm / 2.0 - ww / 2.0), (wm, ww)),
        ((-wm / 2.0 + ww / 2.0, 0.0), (ww, hm)),
        ((wm / 2.0 - ww / 2.0, 0.0), (ww, hm)),
    ] {
        parts.push(part(rect(size.0, size.1), at, wall_mat, depth, Slab));
    }
    match cargo {
        CargoType::Bag => {
            // Telescopic handle tubes and a zip.
            for side in [-1.0f32, 1.0] {
                parts.push(part(
                    rect(wm * 0.9, 18.0),
                    (0.0, side * hm * 0.3),
                    "aluminium",
                    18.0,
                    Round,
                ));
            }
            parts.push(part(
                rect(wm * 0.95, 3.0),
                (0.0, -hm / 2.0 + 3.0 * ww),
                "steel",
                1.5,
                Slab,
            ));
        }
        CargoType::Container => {
            // Corrugation: ribs every 100 mm.
            let ribs = (wm / 100.0) as usize;
            for k in 0..ribs {
                let x = -wm / 2.0 + 50.0 + 100.0 * k as f32;
                parts.push(part(rect(25.0, hm), (x, 0.0), "aluminium", 3.0, Slab));
            }
        }
        CargoType::Parcel => {
            parts.push(part(rect(wm, 50.0), (0.0, 0.0), "polyethylene", 0.3, Slab));
        }
    }
    let inner = BoxPx {
        x0: f64::from((w - fw) / 2.0 + 2.0 * ww * px_per_mm),
        y0: f64::from((h - fh) / 2.0 + 2.0 * ww * px_per_mm),
        x1: f64::from((w + fw) / 2.0 - 2.0 * ww * px_per_mm),
        y1: f64::from((h + fh) / 2.0 - 2.0 * ww * px_per_mm),
    };
    (parts, inner)
}

fn clutter_part(family: Family, rng: &mut Rng) -> Part {
    let materials = of_family(family);
    let m = materials[rng.below(materials.len())];
    let (size, thick): ([f64; 2], [f64; 2]) = match family {
        Family::Organic => ([30.0, 160.0], [10.0, 80.0]),
        Family::Inorganic => ([20.0, 90.0], [2.0, 15.0]),
        Family::Metal => ([5.0, 60.0], [0.5, 4.0]),
    };
    let a = uniform(rng, size) as f32;
    let b = uniform(rng, size) as f32;
    let shape = if rng.next_f64() < 0.5 {
        Shape::Rect { w: a, h: b }
    } else {
        Shape::Ellipse {
            rx: a / 2.0,
            ry: b / 2.0,
        }
    };
    Part {
        shape,
        at: (0.0, 0.0),
        angle: 0.0,
        material: m,
        thickness: uniform(rng, thick) as f32,
        profile: if rng.next_f64() < 0.5 {
            Profile::Slab
        } else {
            Profile::Round
        },
    }
}

fn container_number(rng: &mut Rng) -> String {
    let owner: String = (0..3)
        .map(|_| char::from(b'A' + rng.below(26) as u8))
        .collect();
    let first = format!("{owner}U{:06}", rng.below(1_000_000));
    let check = iso6346_check_digit(&first).unwrap_or(0);
    format!("{first}{check}")
}

fn postal_id(rng: &mut Rng) -> String {
    let serial = format!("{:08}", rng.below(100_000_000));
    let check = s10_check_digit(&serial).unwrap_or(0);
    let country = COUNTRIES[rng.below(COUNTRIES.len())];
    format!("RR{serial}{check}{country}")
}

/// Draws scan `index` of the run (`params`, `seed`). Deterministic: the same arguments give the
/// same scan, bit for bit, whatever order or thread it is drawn on.
pub fn generate_scan(params: &GeneratorParams, seed: u64, index: u64) -> GeneratedScan {
    let mut rng = scan_rng(seed, index);
    let (w, h) = (params.width as usize, params.height as usize);
    let cargo = [CargoType::Parcel, CargoType::Bag, CargoType::Container]
        [pick_weighted(&mut rng, &params.cargo_mix)];
    let mm_per_pixel = if cargo == CargoType::Container {
        params.container_mm_per_pixel
    } else {
        params.mm_per_pixel
    };
    let px_per_mm = (1.0 / mm_per_pixel) as f32;
    let mut canvas = Canvas::new(w, h);
    let centre = Placement {
        x: w as f32 / 2.0,
        y: h as f32 / 2.0,
        angle: 0.0,
        flip: false,
        px_per_mm,
    };
    let (cargo_parts, inner) = cargo_parts(cargo, &mut rng, w as f32, h as f32, px_per_mm);
    canvas.draw(&cargo_parts, &centre, 0);

    // Clutter.
    let density = uniform(&mut rng, params.clutter_density);
    let expected = density * inner.area().max(0.0) / 10_000.0;
    let objects = (expected + normal(&mut rng) * expected.sqrt())
        .round()
        .max(0.0) as usize;
    let mut by_family = [0usize; 3];
    for _ in 0..objects {
        let fam = pick_weighted(&mut rng, &params.clutter_families);
        by_family[fam] += 1;
        let family = [Family::Organic, Family::Inorganic, Family::Metal][fam];
        let p = clutter_part(family, &mut rng);
        let angle = (rng.next_f64() * std::f64::consts::TAU) as f32;
        // Inside the cargo: a few positions are tried, then the object is left out.
        for _ in 0..5 {
            let place = Placement {
                x: uniform(&mut rng, [inner.x0, inner.x1]) as f32,
                y: uniform(&mut rng, [inner.y0, inner.y1]) as f32,
                angle,
                flip: false,
                px_per_mm,
            };
            let fits = object_bounds(std::slice::from_ref(&p), &place).is_some_and(|b| {
                b.x0 >= inner.x0 && b.y0 >= inner.y0 && b.x1 <= inner.x1 && b.y1 <= inner.y1
            });
            if fits {
                canvas.draw(&[p], &place, 0);
                break;
            }
        }
    }

    // Threats.
    let mut truth: Vec<TruthObject> = Vec::new();
    let has_threat = params.max_threats > 0
        && !params.threat_mix.is_empty()
        && rng.next_f64() < params.threat_rate;
    if has_threat {
        let n = 1 + rng.below(params.max_threats as usize);
        let weights: Vec<f64> = params.threat_mix.iter().map(|(_, w)| *w).collect();
        for _ in 0..n {
            let class = params.threat_mix[pick_weighted(&mut rng, &weights)].0;
            let parts = threat_parts(class, &mut rng);
            let mut scale = uniform(&mut rng, params.threat_scale) as f32;
            let angle_deg = (rng.next_f64() * 2.0 - 1.0) * params.max_rotation_deg;
            let flip = rng.next_f64() < 0.5;
            // Rejection sampling of the position: inside the cargo, overlapping earlier threats
            // at most `max_overlap`; a threat too large for the cargo shrinks by 10% every 10
            // tries rather than being left out (large classes would otherwise be rarer).
            let mut chosen = None;
            for attempt in 0..40 {
                if attempt > 0 && attempt % 10 == 0 {
                    scale *= 0.9;
                }
                let place = Placement {
                    x: uniform(&mut rng, [inner.x0, inner.x1]) as f32,
                    y: uniform(&mut rng, [inner.y0, inner.y1]) as f32,
                    angle: angle_deg.to_radians() as f32,
                    flip,
                    px_per_mm: px_per_mm * scale,
                };
                let Some(b) = object_bounds(&parts, &place) else {
                    break;
                };
                let inside =
                    b.x0 >= inner.x0 && b.y0 >= inner.y0 && b.x1 <= inner.x1 && b.y1 <= inner.y1;
                if inside && truth.iter().all(|t| t.bbox.iou(&b) <= params.max_overlap) {
                    chosen = Some(place);
                    break;
                }
            }
            let Some(place) = chosen else { continue };
            let value = truth.len() as u8 + 1;
            if let Some(bbox) = canvas.draw(&parts, &place, value) {
                truth.push(TruthObject {
                    class: class.word().to_string(),
                    bbox,
                    material: main_material(&parts).to_string(),
                    rotation_deg: angle_deg,
                    view: 0,
                    mask_value: value,
                    source: TruthSource::Generator,
                });
            }
        }
    }

    // Beer–Lambert, blur, noise.
    let sigma = params.blur_sigma_px as f32;
    let mut channels = [canvas.low, canvas.high];
    for (e, values) in channels.iter_mut().enumerate() {
        values.iter_mut().for_each(|a| *a = (-*a).exp());
        blur(values, w, h, sigma);
        poisson_noise(values, params.i0[e] as f32, &mut rng);
    }
    let [low, high] = channels;

    let scan_id = format!("syn-{seed}-{index:06}");
    let minute = rng.below(60 * 24 * 365) as i64;
    let scanned_at = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d + chrono::Duration::minutes(minute))
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|| "2026-01-01T00:00:00".to_string());
    let area_m2 = inner.area() * mm_per_pixel * mm_per_pixel / 1e6;
    let metadata = Metadata {
        scan_id,
        scanned_at,
        scanner_model: format!("{GENERATOR_NAME} synthetic dual-energy (50/100 keV effective)"),
        mm_per_pixel,
        cargo_type: cargo,
        container_id: (cargo == CargoType::Container).then(|| container_number(&mut rng)),
        package_id: (cargo == CargoType::Parcel).then(|| postal_id(&mut rng)),
        declared_contents: Some(CONTENTS[rng.below(CONTENTS.len())].to_string()),
        weight_kg: Some((area_m2 * 0.3 * 150.0 * (0.5 + rng.next_f64()) * 100.0).round() / 100.0),
        volume_m3: Some((area_m2 * 0.3 * 1000.0).round() / 1000.0),
        origin: Some(COUNTRIES[rng.below(COUNTRIES.len())].to_string()),
        destination: Some(COUNTRIES[rng.below(COUNTRIES.len())].to_string()),
        carrier: Some(CARRIERS[rng.below(CARRIERS.len())].to_string()),
        location: Some(LOCATIONS[rng.below(LOCATIONS.len())].to_string()),
        purpose: "synthetic".to_string(),
        risk_flags: Vec::new(),
        outcome: Some(
            if truth.is_empty() {
                "no threat (synthetic truth)"
            } else {
                "threat present (synthetic truth)"
            }
            .to_string(),
        ),
        actions: Vec::new(),
        consignor_name: None,
        consignor_address: None,
        consignee_name: None,
        consignee_address: None,
        contact_phone: None,
        driver_name: None,
        notes: None,
    };
    let provenance = Provenance {
        source: Source::Synthetic,
        generator: Some(GeneratorRecord {
            name: GENERATOR_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            seed,
            index,
            params: params.clone(),
        }),
        projections: Vec::new(),
        licence: SYNTHETIC_LICENCE.to_string(),
        redistributable: true,
        rendering: None,
    };
    GeneratedScan {
        metadata,
        provenance,
        low: Image16::from_transmission(params.width, params.height, &low),
        high: Image16::from_transmission(params.width, params.height, &high),
        mask: Mask8 {
            width: params.width,
            height: params.height,
            data: canvas.mask,
        },
        truth,
        clutter: ClutterSummary {
            density,
            objects,
            by_family: vec![
                ("organic".to_string(), by_family[0]),
                ("inorganic".to_string(), by_family[1]),
                ("metal".to_string(), by_family[2]),
            ],
        },
    }
}

/// The material of the part with the largest `μ_high · thickness · area` (what dominates the image).
pub fn main_material(parts: &[Part]) -> &'static str {
    let weight = |p: &Part| {
        let area = match p.shape {
            Shape::Rect { w, h } => w * h,
            Shape::Ellipse { rx, ry } => std::f32::consts::PI * rx * ry,
            Shape::Triangle([a, b, c]) => {
                ((b.0 - a.0) * (c.1 - a.1) - (c.0 - a.0) * (b.1 - a.1)).abs() / 2.0
            }
        };
        p.material.mu_per_mm()[1] * p.thickness * area
    };
    parts
        .iter()
        .max_by(|a, b| weight(a).total_cmp(&weight(b)))
        .map(|p| p.material.name)
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> GeneratorParams {
        GeneratorParams {
            width: 256,
            height: 256,
            threat_rate: 1.0,
            threat_scale: [0.5, 0.6],
            ..GeneratorParams::default()
        }
    }

    #[test]
    fn same_seed_same_scan_other_seed_other_scan() {
        let p = small();
        let a = generate_scan(&p, 7, 3);
        let b = generate_scan(&p, 7, 3);
        assert_eq!(a.low, b.low);
        assert_eq!(a.high, b.high);
        assert_eq!(a.truth, b.truth);
        assert_eq!(a.metadata, b.metadata);
        let c = generate_scan(&p, 8, 3);
        assert_ne!(a.low, c.low);
    }

    #[test]
    fn every_class_draws_inside_its_box_and_mask() {
        for class in THREAT_CLASSES {
            let p = GeneratorParams {
                threat_mix: vec![(class, 1.0)],
                max_threats: 1,
                ..small()
            };
            let mut found = false;
            for index in 0..6 {
                let scan = generate_scan(&p, 1, index);
                for t in &scan.truth {
                    found = true;
                    assert_eq!(t.class, class.word());
                    assert!(t.bbox.inside(256, 256));
                    // every mask pixel of the object lies in its box, and the box is tight
                    let mut tight = BoxPx::of_pixels(256, 256, |x, y| {
                        scan.mask.data[y * 256 + x] == t.mask_value
                    })
                    .unwrap();
                    tight = BoxPx::new(tight.x0, tight.y0, tight.x1, tight.y1).unwrap();
                    assert_eq!(tight, t.bbox, "{class:?}");
                }
            }
            assert!(found, "{class:?} never placed");
        }
    }

    #[test]
    fn metadata_of_generated_scans_validates() {
        let p = small();
        for index in 0..20 {
            let scan = generate_scan(&p, 3, index);
            if let Some(id) = &scan.metadata.container_id {
                borderlens_domain::ContainerNumber::parse(id).unwrap();
            }
            if let Some(id) = &scan.metadata.package_id {
                borderlens_domain::S10ItemId::parse(id).unwrap();
            }
        }
    }

    #[test]
    fn beer_lambert_and_noise_level() {
        // A flat slab of 10 mm water over the whole image, no blur: mean transmission is
        // exp(-μ·10) per energy, and the noise variance is T / I0 (Poisson).
        let mut canvas = Canvas::new(200, 200);
        let slab = part(
            rect(1000.0, 1000.0),
            (0.0, 0.0),
            "water",
            10.0,
            Profile::Slab,
        );
        let place = Placement {
            x: 100.0,
            y: 100.0,
            angle: 0.0,
            flip: false,
            px_per_mm: 1.0,
        };
        canvas.draw(&[slab], &place, 0);
        let mut rng = Rng::new(5);
        for (e, i0) in [(0usize, 15_000.0f32), (1, 30_000.0)] {
            let mu = material("water").unwrap().mu_per_mm()[e];
            let expect = (-mu * 10.0).exp();
            let mut t: Vec<f32> = if e == 0 {
                canvas.low.clone()
            } else {
                canvas.high.clone()
            };
            t.iter_mut().for_each(|a| *a = (-*a).exp());
            poisson_noise(&mut t, i0, &mut rng);
            let n = t.len() as f64;
            let mean = t.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
            let var = t
                .iter()
                .map(|v| (f64::from(*v) - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0);
            assert!(
                (mean - f64::from(expect)).abs() < 1e-4,
                "energy {e}: {mean} vs {expect}"
            );
            let want_var = f64::from(expect) / f64::from(i0);
            assert!(
                (var / want_var - 1.0).abs() < 0.05,
                "energy {e}: var {var} vs {want_var}"
            );
        }
    }

    #[test]
    fn blur_keeps_the_mean_and_spreads_an_edge() {
        let mut v = vec![0.0f32; 100];
        v[50..].iter_mut().for_each(|x| *x = 1.0);
        let mut img: Vec<f32> = (0..10).flat_map(|_| v.iter().copied()).collect();
        blur(&mut img, 100, 10, 1.0);
        let row = &img[500..600];
        assert!(row[49] > 0.2 && row[49] < 0.5 && row[50] > 0.5 && row[50] < 0.8);
        assert!((row[10] - 0.0).abs() < 1e-6 && (row[90] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn small_means_are_exact_poisson() {
        let mut rng = Rng::new(11);
        let mut t = vec![2.0f32 / 1000.0; 100_000];
        poisson_noise(&mut t, 1000.0, &mut rng);
        let counts: Vec<f64> = t.iter().map(|v| f64::from(*v) * 1000.0).collect();
        let mean = counts.iter().sum::<f64>() / counts.len() as f64;
        let zeros = counts.iter().filter(|c| c.round() == 0.0).count() as f64 / counts.len() as f64;
        assert!((mean - 2.0).abs() < 0.02, "{mean}");
        // P(0) = e^-2
        assert!((zeros - (-2.0f64).exp()).abs() < 0.005, "{zeros}");
    }

    #[test]
    fn params_are_checked() {
        let mut p = GeneratorParams::default();
        assert!(p.validate().is_ok());
        p.clutter_density = [2.0, 1.0];
        assert!(p.validate().unwrap_err().contains("clutter_density"));
        let p = GeneratorParams {
            max_overlap: 2.0,
            ..GeneratorParams::default()
        };
        assert!(p.validate().unwrap_err().contains("max_overlap"));
        assert!(ThreatClass::parse("grenade").unwrap_err().contains("knife"));
        assert_eq!(
            ThreatClass::parse("drug_bricks"),
            Ok(ThreatClass::DrugBricks)
        );
    }
}
