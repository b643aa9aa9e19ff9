//! Pictures of segmentations: instance fills and outlines drawn onto an RGB image, and
//! side-by-side panels.
//!
//! Label maps are row-major `width x height` with 0 = background. Colours are looked up per
//! instance label by a caller's function (`None` leaves the instance undrawn), so the same
//! helpers draw ground truth (instance id -> class from a table) and predictions.

use crate::infer::Segmentation;
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_hollow_polygon_mut;
use imageproc::point::Point;

/// Opacity of instance fills in [`segmentation_overlay`].
pub const FILL_ALPHA: f32 = 0.35;

fn check_size(img: &RgbImage, labels: &[u32]) {
    assert_eq!(
        labels.len(),
        img.width() as usize * img.height() as usize,
        "label map size must match the image"
    );
}

fn blend(p: &mut Rgb<u8>, c: [u8; 3], alpha: f32) {
    for (v, &c) in p.0.iter_mut().zip(&c) {
        *v = (*v as f32 * (1.0 - alpha) + c as f32 * alpha)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
}

/// Blends `colour(label)` over every labelled pixel with opacity `alpha` (0..=1).
pub fn fill_labels(
    img: &mut RgbImage,
    labels: &[u32],
    colour: impl Fn(u32) -> Option<[u8; 3]>,
    alpha: f32,
) {
    check_size(img, labels);
    let alpha = alpha.clamp(0.0, 1.0);
    for (p, &l) in img.pixels_mut().zip(labels) {
        if l != 0 {
            if let Some(c) = colour(l) {
                blend(p, c, alpha);
            }
        }
    }
}

/// Paints the inner boundary of every instance (its pixels with a 4-neighbour of another label
/// or outside the image) in `colour(label)`. Exact: follows the label map pixel by pixel.
pub fn outline_labels(img: &mut RgbImage, labels: &[u32], colour: impl Fn(u32) -> Option<[u8; 3]>) {
    check_size(img, labels);
    let (w, h) = (img.width() as usize, img.height() as usize);
    for y in 0..h {
        for x in 0..w {
            let l = labels[y * w + x];
            if l == 0 {
                continue;
            }
            let edge = x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || labels[y * w + x - 1] != l
                || labels[y * w + x + 1] != l
                || labels[(y - 1) * w + x] != l
                || labels[(y + 1) * w + x] != l;
            if edge {
                if let Some(c) = colour(l) {
                    img.put_pixel(x as u32, y as u32, Rgb(c));
                }
            }
        }
    }
}

/// The pixel-centre path of a closed outline given in pixel-corner coordinates, clockwise on
/// screen (the convention of [`crate::infer::polygons`]): every edge is moved half a pixel to its
/// right-hand side (into the region), the corners are joined by miters (at most 1 px long), and
/// the result is shifted by -0.5 so that integer values are pixel indices. For an axis-aligned
/// outline the path runs exactly through the region's boundary pixels.
pub fn inset_pixel_path(polygon: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let mut pts: Vec<[f32; 2]> = polygon.to_vec();
    pts.dedup();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    let n = pts.len();
    if n < 3 {
        return pts.iter().map(|p| [p[0] - 0.5, p[1] - 0.5]).collect();
    }
    // Right-hand unit normal of edge i (pts[i] -> pts[i + 1]); screen coordinates, y down.
    let normal = |i: usize| {
        let (a, b) = (pts[i], pts[(i + 1) % n]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt().max(f32::EPSILON);
        [-dy / len, dx / len]
    };
    (0..n)
        .map(|i| {
            let n_in = normal((i + n - 1) % n);
            let n_out = normal(i);
            let (sx, sy) = (n_in[0] + n_out[0], n_in[1] + n_out[1]);
            let dot = n_in[0] * n_out[0] + n_in[1] * n_out[1];
            // Miter offset 0.5 * (n1 + n2) / (1 + n1.n2), capped at 1 px.
            let k = 0.5 / (1.0 + dot).max(1e-3);
            let (mut ox, mut oy) = (sx * k, sy * k);
            let len = (ox * ox + oy * oy).sqrt();
            if len > 1.0 {
                ox /= len;
                oy /= len;
            }
            [pts[i][0] + ox - 0.5, pts[i][1] + oy - 0.5]
        })
        .collect()
}

/// Draws a closed polygon outline given in pixel-corner coordinates (see [`inset_pixel_path`]):
/// the line runs through the region's boundary pixels, so it stays on the object. Polygons with
/// fewer than 2 distinct points are ignored.
pub fn draw_polygon_outline(img: &mut RgbImage, polygon: &[[f32; 2]], colour: [u8; 3]) {
    let mut pts: Vec<Point<f32>> = inset_pixel_path(polygon)
        .into_iter()
        .map(|p| Point::new(p[0].round(), p[1].round()))
        .collect();
    pts.dedup();
    while pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    if pts.len() < 2 {
        return;
    }
    draw_hollow_polygon_mut(img, &pts, Rgb(colour));
}

/// The image with each instance of `seg` filled (opacity [`FILL_ALPHA`]) and outlined (its
/// polygon, opaque) in its class colour; `colours[c]` is class `c`'s colour, normally the
/// model's (`CsraNet::classes().colours()`, which the GeoJSON carries too); classes beyond the
/// list are drawn white.
pub fn segmentation_overlay(image: &RgbImage, seg: &Segmentation, colours: &[[u8; 3]]) -> RgbImage {
    assert_eq!(
        (image.width() as usize, image.height() as usize),
        (seg.width, seg.height),
        "image and segmentation sizes differ"
    );
    let class_colour = |c: u32| colours.get(c as usize).copied().unwrap_or([255, 255, 255]);
    let mut out = image.clone();
    let by_label = |l: u32| {
        seg.instances
            .get(l as usize - 1)
            .map(|i| class_colour(i.class))
    };
    fill_labels(&mut out, &seg.labels, by_label, FILL_ALPHA);
    for inst in &seg.instances {
        draw_polygon_outline(&mut out, &inst.polygon, class_colour(inst.class));
    }
    out
}

/// Panels of equal height side by side, separated by `gap` pixels of `background`.
///
/// # Panics
/// If `panels` is empty or the heights differ.
pub fn side_by_side(panels: &[RgbImage], gap: u32, background: [u8; 3]) -> RgbImage {
    assert!(!panels.is_empty(), "need at least one panel");
    let h = panels[0].height();
    assert!(
        panels.iter().all(|p| p.height() == h),
        "panels must have the same height"
    );
    let w = panels.iter().map(|p| p.width()).sum::<u32>() + gap * (panels.len() as u32 - 1);
    let mut out = RgbImage::from_pixel(w, h, Rgb(background));
    let mut x0 = 0;
    for p in panels {
        image::imageops::replace(&mut out, p, x0 as i64, 0);
        x0 += p.width() + gap;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::Instance;

    /// A 3x3 instance at (2..5, 2..5) in a 8x8 image.
    fn labels() -> Vec<u32> {
        let mut l = vec![0u32; 64];
        for y in 2..5 {
            for x in 2..5 {
                l[y * 8 + x] = 1;
            }
        }
        l
    }

    #[test]
    fn fill_and_outline_follow_the_labels() {
        let grey = RgbImage::from_pixel(8, 8, Rgb([100, 100, 100]));
        let l = labels();
        let mut img = grey.clone();
        fill_labels(&mut img, &l, |_| Some([200, 0, 0]), 0.5);
        assert_eq!(img.get_pixel(3, 3).0, [150, 50, 50]);
        assert_eq!(img.get_pixel(0, 0).0, [100, 100, 100]);
        let mut img = grey.clone();
        outline_labels(&mut img, &l, |_| Some([0, 255, 0]));
        for (x, y) in [(2, 2), (4, 2), (2, 4), (4, 4), (3, 2)] {
            assert_eq!(img.get_pixel(x, y).0, [0, 255, 0], "({x},{y}) is boundary");
        }
        assert_eq!(img.get_pixel(3, 3).0, [100, 100, 100], "interior untouched");
        assert_eq!(img.get_pixel(1, 3).0, [100, 100, 100], "outside untouched");
        // No colour: nothing drawn.
        let mut img = grey.clone();
        outline_labels(&mut img, &l, |_| None);
        assert_eq!(img, grey);
    }

    #[test]
    fn polygon_outline_lies_on_the_boundary_pixels() {
        let mut img = RgbImage::new(8, 8);
        // Pixel-corner square around pixels 2..5 x 2..5.
        let poly = [[2.0, 2.0], [5.0, 2.0], [5.0, 5.0], [2.0, 5.0]];
        draw_polygon_outline(&mut img, &poly, [255, 255, 0]);
        let mut drawn = vec![];
        for (x, y, p) in img.enumerate_pixels() {
            if p.0 != [0, 0, 0] {
                drawn.push((x, y));
            }
        }
        let l = labels();
        let mut expect = RgbImage::new(8, 8);
        outline_labels(&mut expect, &l, |_| Some([255, 255, 0]));
        assert_eq!(img, expect, "drawn {drawn:?}");
    }

    #[test]
    fn concave_outline_matches_the_label_boundary() {
        // An L: columns 2..4 of rows 2..7 plus columns 4..7 of rows 5..7, in a 10x10 image.
        let mut l = vec![0u32; 100];
        for y in 2..7 {
            for x in 2..4 {
                l[y * 10 + x] = 1;
            }
        }
        for y in 5..7 {
            for x in 4..7 {
                l[y * 10 + x] = 1;
            }
        }
        let outline = crate::infer::polygons::trace_outline(
            &l.iter().map(|&v| v == 1).collect::<Vec<_>>(),
            10,
            10,
        );
        let poly: Vec<[f32; 2]> = outline.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
        let mut img = RgbImage::new(10, 10);
        draw_polygon_outline(&mut img, &poly, [255, 255, 0]);
        let mut expect = RgbImage::new(10, 10);
        outline_labels(&mut expect, &l, |_| Some([255, 255, 0]));
        // The path also turns through the inner corner pixel (its diagonal neighbour is outside).
        expect.put_pixel(3, 5, Rgb([255, 255, 0]));
        assert_eq!(img, expect);
    }

    #[test]
    fn overlay_and_panels() {
        let img = RgbImage::from_pixel(8, 8, Rgb([255, 255, 255]));
        let seg = Segmentation {
            width: 8,
            height: 8,
            num_classes: 3,
            class_map: vec![0; 64],
            probabilities: None,
            labels: labels(),
            instances: vec![Instance {
                id: 1,
                class: 2,
                score: 1.0,
                area: 9,
                centroid: [3.5, 3.5],
                bbox: [2, 2, 5, 5],
                polygon: vec![[2.0, 2.0], [5.0, 2.0], [5.0, 5.0], [2.0, 5.0]],
            }],
        };
        let colours = [[0, 0, 0], [0, 0, 255], [255, 0, 0]];
        let o = segmentation_overlay(&img, &seg, &colours);
        assert_eq!(o.dimensions(), (8, 8));
        assert_eq!(
            o.get_pixel(2, 2).0,
            [255, 0, 0],
            "outline in the class colour"
        );
        let inner = o.get_pixel(3, 3).0;
        assert!(
            inner[0] == 255 && inner[1] < 255 && inner[1] > 0,
            "fill blended: {inner:?}"
        );
        assert_eq!(o.get_pixel(0, 0).0, [255, 255, 255]);
        let p = side_by_side(&[img.clone(), o.clone(), img], 2, [9, 9, 9]);
        assert_eq!(p.dimensions(), (28, 8));
        assert_eq!(p.get_pixel(8, 0).0, [9, 9, 9]);
        assert_eq!(p.get_pixel(12, 2).0, [255, 0, 0]);
    }
}
