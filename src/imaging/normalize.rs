//! Mean / std normalisation of 8-bit and planar images into network input tensors; inference
//! and training normalise through the same arithmetic, `(v / 255 - mean) / std`.

use super::planar::{PlanarImage, CHANNELS};
use candle_core::{bail, Device, Result, Tensor};

/// Per-channel normalisation `(v / 255 - mean) / std` (ImageNet by default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Per-channel mean (R, G, B) of values scaled to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation (R, G, B), positive.
    pub std: [f32; 3],
}

impl Default for Normalize {
    fn default() -> Self {
        Self {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

impl Normalize {
    /// Rejects a non-finite mean or std, a non-positive std, and statistics that take a pixel
    /// value beyond the f32 range.
    pub fn validate(&self) -> crate::Result<()> {
        for c in 0..3 {
            if !(self.mean[c].is_finite() && self.std[c].is_finite() && self.std[c] > 0.0) {
                return Err(crate::Error::invalid(format!(
                    "normalisation channel {c}: mean {} / std {} must be finite with std > 0",
                    self.mean[c], self.std[c]
                )));
            }
            // Every pixel value must normalise to a finite f32: a tiny std or a huge mean
            // would feed infinities to the network.
            let lo = (0.0 - self.mean[c]) / self.std[c];
            let hi = (1.0 - self.mean[c]) / self.std[c];
            if !(lo.is_finite() && hi.is_finite()) {
                return Err(crate::Error::invalid(format!(
                    "normalisation channel {c}: mean {} / std {} takes pixel values beyond the \
                     f32 range",
                    self.mean[c], self.std[c]
                )));
            }
        }
        Ok(())
    }
}

/// Packed RGB8 pixels (`w x h`, row-major) normalised into `out` (`3 * ph * pw`, CHW),
/// edge-replicated to `pw x ph` (`pw >= w`, `ph >= h`): the padding every forward pass of
/// an image or a tile uses, so a tile and the whole image see the same values.
pub fn rgb_chw(
    rgb: &[u8],
    (w, h): (usize, usize),
    (pw, ph): (usize, usize),
    norm: &Normalize,
    out: &mut [f32],
) {
    let plane = pw * ph;
    let lut: Vec<[f32; 3]> = (0..256)
        .map(|v| {
            let f = v as f32 / 255.0;
            [0, 1, 2].map(|c| (f - norm.mean[c]) / norm.std[c])
        })
        .collect();
    for py in 0..ph {
        let y = py.min(h - 1);
        for px in 0..pw {
            let x = px.min(w - 1);
            let p = &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
            for c in 0..3 {
                out[c * plane + py * pw + px] = lut[p[c] as usize][c];
            }
        }
    }
}

/// Same-sized planar images as one normalised `[B, 3, H, W]` tensor.
pub fn planar_tensor(imgs: &[PlanarImage], norm: &Normalize, device: &Device) -> Result<Tensor> {
    let Some(first) = imgs.first() else {
        bail!("no images to normalise")
    };
    let (w, h) = (first.width, first.height);
    if let Some(o) = imgs.iter().find(|i| (i.width, i.height) != (w, h)) {
        bail!(
            "images of different sizes: {w}x{h} and {}x{}",
            o.width,
            o.height
        )
    }
    let n = w * h;
    let mut buf = Vec::with_capacity(imgs.len() * CHANNELS * n);
    for im in imgs {
        for c in 0..CHANNELS {
            let (m, s) = (norm.mean[c], norm.std[c]);
            buf.extend(im.plane(c).iter().map(|v| (v - m) / s));
        }
    }
    Tensor::from_vec(buf, (imgs.len(), CHANNELS, h, w), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::{ImageView, PixelFormat};

    #[test]
    fn validate_refuses_bad_statistics() {
        assert!(Normalize::default().validate().is_ok());
        for (mean, std) in [(0.5, 0.0), (0.5, -1.0), (f32::NAN, 0.2), (0.5, 1e-40)] {
            let n = Normalize {
                mean: [mean, 0.5, 0.5],
                std: [std, 0.2, 0.2],
            };
            assert!(n.validate().is_err(), "{mean} / {std}");
        }
    }

    #[test]
    fn views_and_planar_images_normalise_identically() {
        let rgb: Vec<u8> = (0..40 * 36 * 3).map(|i| (i * 31 % 256) as u8).collect();
        let view = ImageView::new(&rgb, 40, 36, 120, PixelFormat::Rgb8).unwrap();
        let norm = Normalize::default();
        let dev = Device::Cpu;
        let mut buf = vec![0f32; 3 * 40 * 36];
        rgb_chw(&rgb, (40, 36), (40, 36), &norm, &mut buf);
        let a = Tensor::from_vec(buf, (1, 3, 36, 40), &dev).unwrap();
        let img = PlanarImage::from_view(&view);
        let b = planar_tensor(&[img], &norm, &dev).unwrap();
        assert_eq!(a.dims(), &[1, 3, 36, 40]);
        assert_eq!(b.dims(), a.dims());
        let (a, b) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        let want = (rgb[0] as f32 / 255.0 - norm.mean[0]) / norm.std[0];
        assert_eq!(a[0], want);
    }

    #[test]
    fn regions_are_edge_replicated() {
        // A 2 x 3 region padded to 6 x 5.
        let rgb: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 13 % 251) as u8).collect();
        let norm = Normalize {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let mut out = vec![0f32; 3 * 6 * 5];
        rgb_chw(&rgb, (2, 3), (6, 5), &norm, &mut out);
        let px = |x: usize, y: usize, c: usize| rgb[(y * 2 + x) * 3 + c] as f32 / 255.0;
        // Column 5 of the padded region repeats column 1; row 4 repeats row 2.
        for c in 0..3 {
            let plane = &out[c * 30..(c + 1) * 30];
            assert_eq!(plane[0], px(0, 0, c));
            assert_eq!(plane[5], px(1, 0, c));
            assert_eq!(plane[4 * 6], px(0, 2, c));
            assert_eq!(plane[4 * 6 + 5], px(1, 2, c));
        }
    }

    #[test]
    fn planar_tensor_refuses_mixed_sizes() {
        let imgs = [
            PlanarImage::filled(4, 4, [0.5; 3]),
            PlanarImage::filled(4, 5, [0.5; 3]),
        ];
        assert!(planar_tensor(&imgs, &Normalize::default(), &Device::Cpu).is_err());
        assert!(planar_tensor(&[], &Normalize::default(), &Device::Cpu).is_err());
    }
}
