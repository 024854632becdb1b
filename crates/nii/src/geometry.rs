//! Axis-aligned boxes in pixel coordinates and their overlap (IoU).

use serde::{Deserialize, Serialize};

/// An axis-aligned box in pixel coordinates, `x0 <= x1`, `y0 <= y1`; it covers the pixels whose
/// centres lie in `[x0, x1) × [y0, y1)`, so a box of one pixel at column 3 is `x0 = 3, x1 = 4`.
/// Serialised as `[x0, y0, x1, y1]`, the order COCO's `xyxy` and most tools use.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "[f64; 4]", into = "[f64; 4]")]
pub struct BoxPx {
    /// left edge
    pub x0: f64,
    /// top edge
    pub y0: f64,
    /// right edge (exclusive)
    pub x1: f64,
    /// bottom edge (exclusive)
    pub y1: f64,
}

impl TryFrom<[f64; 4]> for BoxPx {
    type Error = String;

    fn try_from([x0, y0, x1, y1]: [f64; 4]) -> Result<Self, Self::Error> {
        BoxPx::new(x0, y0, x1, y1)
    }
}

impl From<BoxPx> for [f64; 4] {
    fn from(b: BoxPx) -> Self {
        [b.x0, b.y0, b.x1, b.y1]
    }
}

impl BoxPx {
    /// A box from its edges; refuses non-finite coordinates and inverted edges.
    pub fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Result<BoxPx, String> {
        if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
            return Err(format!(
                "box [{x0}, {y0}, {x1}, {y1}] has a coordinate that is not a finite number"
            ));
        }
        if x1 < x0 || y1 < y0 {
            return Err(format!(
                "box [{x0}, {y0}, {x1}, {y1}] has its right or bottom edge before its left or top edge"
            ));
        }
        Ok(BoxPx { x0, y0, x1, y1 })
    }

    /// Width × height.
    pub fn area(&self) -> f64 {
        (self.x1 - self.x0) * (self.y1 - self.y0)
    }

    /// Intersection over union; 0 when both are empty.
    pub fn iou(&self, other: &BoxPx) -> f64 {
        let w = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let h = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// Whether the box lies inside a `width × height` image.
    pub fn inside(&self, width: u32, height: u32) -> bool {
        self.x0 >= 0.0
            && self.y0 >= 0.0
            && self.x1 <= f64::from(width)
            && self.y1 <= f64::from(height)
    }

    /// Whether the centre of pixel `(x, y)` lies in the box.
    pub fn covers_pixel(&self, x: usize, y: usize) -> bool {
        let (cx, cy) = (x as f64 + 0.5, y as f64 + 0.5);
        cx >= self.x0 && cx < self.x1 && cy >= self.y0 && cy < self.y1
    }

    /// The smallest box covering the pixels `(x, y)` for which `hit(x, y)` holds in a
    /// `width × height` grid; `None` when there is none.
    pub fn of_pixels(
        width: usize,
        height: usize,
        hit: impl Fn(usize, usize) -> bool,
    ) -> Option<BoxPx> {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..height {
            for x in 0..width {
                if hit(x, y) {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
            }
        }
        (x0 != usize::MAX).then_some(BoxPx {
            x0: x0 as f64,
            y0: y0 as f64,
            x1: x1 as f64,
            y1: y1 as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::BoxPx;

    #[test]
    fn iou_of_hand_computed_boxes() {
        let a = BoxPx::new(0.0, 0.0, 10.0, 10.0).unwrap();
        let b = BoxPx::new(5.0, 0.0, 15.0, 10.0).unwrap();
        // intersection 50, union 150
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.iou(&a), 1.0);
        let far = BoxPx::new(20.0, 20.0, 30.0, 30.0).unwrap();
        assert_eq!(a.iou(&far), 0.0);
        assert!(BoxPx::new(3.0, 0.0, 2.0, 1.0).is_err());
        assert!(BoxPx::new(f64::NAN, 0.0, 2.0, 1.0).is_err());
        let parsed: Result<BoxPx, _> = serde_json::from_str("[5, 5, 1, 1]");
        assert!(parsed.is_err());
    }

    #[test]
    fn box_of_pixels_is_tight() {
        let b = BoxPx::of_pixels(8, 8, |x, y| (2..5).contains(&x) && y == 6).unwrap();
        assert_eq!(b, BoxPx::new(2.0, 6.0, 5.0, 7.0).unwrap());
        assert!(b.covers_pixel(4, 6) && !b.covers_pixel(5, 6));
        assert!(BoxPx::of_pixels(4, 4, |_, _| false).is_none());
    }
}
