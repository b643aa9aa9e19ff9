//! Planar floating-point RGB images, the form augmentation works on.

use super::view::ImageView;

/// Number of channels of a [`PlanarImage`].
pub const CHANNELS: usize = 3;

/// RGB image, planar CHW (`data[c * height * width + y * width + x]`), values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanarImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `3 * width * height` values: the R plane, then G, then B, each row-major.
    pub data: Vec<f32>,
}

impl PlanarImage {
    /// Checks that `data` holds `3 * width * height` values.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self, String> {
        if width == 0 || height == 0 {
            return Err(format!("image size must be positive, got {width}x{height}"));
        }
        if data.len() != CHANNELS * width * height {
            return Err(format!(
                "image data has {} values, a {width}x{height} RGB image needs {}",
                data.len(),
                CHANNELS * width * height
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// An image of one colour.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Self {
        let n = width * height;
        let mut data = Vec::with_capacity(CHANNELS * n);
        for v in rgb {
            data.extend(std::iter::repeat_n(v, n));
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// From interleaved 8-bit RGB (HWC), scaled to [0, 1].
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<Self, String> {
        let n = width * height;
        if rgb.len() != CHANNELS * n {
            return Err(format!(
                "rgb8 buffer has {} bytes, {width}x{height} needs {}",
                rgb.len(),
                3 * n
            ));
        }
        let mut data = vec![0.0f32; CHANNELS * n];
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..CHANNELS {
                data[c * n + p] = px[c] as f32 / 255.0;
            }
        }
        Self::new(width, height, data)
    }

    /// From a checked 8-bit view (any [`super::PixelFormat`]), scaled to [0, 1].
    pub fn from_view(view: &ImageView) -> Self {
        let (w, h) = (view.width(), view.height());
        let mut data = vec![0f32; CHANNELS * w * h];
        for y in 0..h {
            for x in 0..w {
                let p = view.rgb(x, y);
                for c in 0..CHANNELS {
                    data[c * w * h + y * w + x] = p[c] as f32 / 255.0;
                }
            }
        }
        Self {
            width: w,
            height: h,
            data,
        }
    }

    /// Pixels per channel.
    pub fn plane_len(&self) -> usize {
        self.width * self.height
    }

    /// Channel `c` (0 = R, 1 = G, 2 = B).
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }

    /// Channel `c`, mutable.
    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.plane_len();
        &mut self.data[c * n..(c + 1) * n]
    }

    /// Value at channel `c`, row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[c * self.plane_len() + y * self.width + x]
    }

    /// The three planes (R, G, B), mutable.
    pub fn planes_mut(&mut self) -> (&mut [f32], &mut [f32], &mut [f32]) {
        let n = self.plane_len();
        let (r, gb) = self.data.split_at_mut(n);
        let (g, b) = gb.split_at_mut(n);
        (r, g, b)
    }

    /// True when every value is finite and in `[0, 1]`.
    pub fn is_valid_unit(&self) -> bool {
        self.data
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::PixelFormat;

    #[test]
    fn image_constructors_validate() {
        assert!(PlanarImage::new(2, 2, vec![0.0; 12]).is_ok());
        assert!(PlanarImage::new(2, 2, vec![0.0; 11]).is_err());
        assert!(PlanarImage::new(0, 2, vec![]).is_err());
        let img = PlanarImage::from_rgb8(2, 1, &[255, 0, 51, 0, 255, 0]).unwrap();
        assert_eq!(img.plane(0), &[1.0, 0.0]);
        assert_eq!(img.plane(1), &[0.0, 1.0]);
        assert!((img.get(2, 0, 0) - 0.2).abs() < 1e-7);
    }

    #[test]
    fn from_view_matches_from_rgb8() {
        let rgb: Vec<u8> = (0..32 * 32 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let view = ImageView::new(&rgb, 32, 32, 96, PixelFormat::Rgb8).unwrap();
        let a = PlanarImage::from_view(&view);
        let b = PlanarImage::from_rgb8(32, 32, &rgb).unwrap();
        assert_eq!(a, b);
        assert!((a.get(1, 0, 0) - 7.0 / 255.0).abs() < 1e-7);
    }
}
