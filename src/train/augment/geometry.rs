//! Quarter turns and mirrors of planes and images.

use crate::imaging::{PlanarImage, CHANNELS};

/// Rotates a `w x h` plane by `k` counter-clockwise quarter turns (as `numpy.rot90`); returns
/// the plane and its new width and height.
pub fn rot90_plane<T: Copy>(src: &[T], w: usize, h: usize, k: u8) -> (Vec<T>, usize, usize) {
    debug_assert_eq!(src.len(), w * h);
    match k % 4 {
        0 => (src.to_vec(), w, h),
        1 => {
            // out(y, x) = in(x, w - 1 - y); out is h wide, w high.
            let (nw, nh) = (h, w);
            let mut out = Vec::with_capacity(w * h);
            for y in 0..nh {
                for x in 0..nw {
                    out.push(src[x * w + (w - 1 - y)]);
                }
            }
            (out, nw, nh)
        }
        2 => {
            let mut out = src.to_vec();
            out.reverse();
            (out, w, h)
        }
        _ => {
            // out(y, x) = in(h - 1 - x, y).
            let (nw, nh) = (h, w);
            let mut out = Vec::with_capacity(w * h);
            for y in 0..nh {
                for x in 0..nw {
                    out.push(src[(h - 1 - x) * w + y]);
                }
            }
            (out, nw, nh)
        }
    }
}

/// Mirrors a `w x h` plane left-right, in place.
pub fn hflip_plane<T>(p: &mut [T], w: usize) {
    for row in p.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Mirrors a `w x h` plane top-bottom, in place.
pub fn vflip_plane<T>(p: &mut [T], w: usize, h: usize) {
    for y in 0..h / 2 {
        let (top, bottom) = p.split_at_mut((h - 1 - y) * w);
        top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
    }
}

/// Rotates an image by `k` counter-clockwise quarter turns.
pub fn rot90_image(img: &PlanarImage, k: u8) -> PlanarImage {
    if k.is_multiple_of(4) {
        return img.clone();
    }
    let mut data = Vec::with_capacity(img.data.len());
    let (mut nw, mut nh) = (img.width, img.height);
    for c in 0..CHANNELS {
        let (p, w2, h2) = rot90_plane(img.plane(c), img.width, img.height, k);
        data.extend_from_slice(&p);
        nw = w2;
        nh = h2;
    }
    PlanarImage {
        width: nw,
        height: nh,
        data,
    }
}

/// Mirrors an image left-right, in place.
pub fn hflip_image(img: &mut PlanarImage) {
    let w = img.width;
    hflip_plane(&mut img.data, w); // rows of all planes are rows of width w
}

/// Mirrors an image top-bottom, in place.
pub fn vflip_image(img: &mut PlanarImage) {
    let (w, h) = (img.width, img.height);
    for c in 0..CHANNELS {
        vflip_plane(img.plane_mut(c), w, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_rotations_and_flips() {
        // [[1, 2, 3], [4, 5, 6]] (w 3, h 2)
        let p = [1, 2, 3, 4, 5, 6];
        let (r1, w1, h1) = rot90_plane(&p, 3, 2, 1);
        assert_eq!((w1, h1), (2, 3));
        assert_eq!(r1, vec![3, 6, 2, 5, 1, 4]); // numpy.rot90
        let (r2, _, _) = rot90_plane(&p, 3, 2, 2);
        assert_eq!(r2, vec![6, 5, 4, 3, 2, 1]);
        let (r3, w3, h3) = rot90_plane(&p, 3, 2, 3);
        assert_eq!((w3, h3), (2, 3));
        assert_eq!(r3, vec![4, 1, 5, 2, 6, 3]);
        // Four quarter turns are the identity; 1 then 3 too.
        let (b, bw, bh) = rot90_plane(&r1, w1, h1, 3);
        assert_eq!((b, bw, bh), (p.to_vec(), 3, 2));
        let mut f = p;
        hflip_plane(&mut f, 3);
        assert_eq!(f, [3, 2, 1, 6, 5, 4]);
        let mut f = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        vflip_plane(&mut f, 3, 3);
        assert_eq!(f, [7, 8, 9, 4, 5, 6, 1, 2, 3]);
    }
}
