//! The strong (photometric) view: colour jitter, grayscale, Gaussian blur and H&E stain jitter
//! in a fixed order; labels are unchanged. [`StrongConfig`] also holds the CutMix parameters.

use super::blur::gaussian_blur;
use super::colour::{color_jitter, grayscale, JitterParams};
use super::sampling::{check_p, check_range, coin, uniform};
use super::stain::{stain_jitter, StainParams, StainUnits, OD_EPS};
use crate::imaging::PlanarImage;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Strong (photometric) view and CutMix. Defaults follow METHOD.md section 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StrongConfig {
    /// Probability of colour jitter. Default 0.8.
    pub jitter_p: f64,
    /// Brightness strength `x` (factor in `[max(0, 1 - x), 1 + x]`). Default 0.5.
    pub brightness: f64,
    /// Contrast strength. Default 0.5.
    pub contrast: f64,
    /// Saturation strength. Default 0.5.
    pub saturation: f64,
    /// Hue strength `h` (shift in `[-h, h]` of the hue circle, `h <= 0.5`). Default 0.25.
    pub hue: f64,
    /// Probability of grayscale. Default 0.2.
    pub grayscale_p: f64,
    /// Probability of Gaussian blur. Default 0.5.
    pub blur_p: f64,
    /// Smallest blur sigma (pixels). Default 0.1.
    pub blur_sigma_min: f64,
    /// Largest blur sigma (pixels). Default 2.0.
    pub blur_sigma_max: f64,
    /// Probability of H&E stain jitter. Default 1.0 (our reading: METHOD gives none).
    pub stain_p: f64,
    /// Stain scale strength `s` (factor in `[1 - s, 1 + s]` per stain). Default 0.05.
    pub stain_scale: f64,
    /// Stain shift strength `s` (shift in `[-s, s]` per stain). Default 0.05.
    pub stain_shift: f64,
    /// Units of the stain shift (our reading). Default optical density.
    pub stain_units: StainUnits,
    /// Apply the stain jitter first instead of last. Default false (METHOD's listed order).
    pub stain_first: bool,
    /// Probability of a CutMix box. Default 0.5.
    pub cutmix_p: f64,
    /// Smallest box area as a fraction of the image. Default 0.02.
    pub cutmix_area_min: f64,
    /// Largest box area as a fraction of the image. Default 0.4.
    pub cutmix_area_max: f64,
    /// Smallest aspect ratio `h / w`. Default 0.3.
    pub cutmix_aspect_min: f64,
    /// Largest aspect ratio `h / w`. Default 3.3.
    pub cutmix_aspect_max: f64,
    /// Aspect drawn log-uniformly instead of uniformly (UniMatch). Default false.
    pub cutmix_log_aspect: bool,
}

impl Default for StrongConfig {
    fn default() -> Self {
        Self {
            jitter_p: 0.8,
            brightness: 0.5,
            contrast: 0.5,
            saturation: 0.5,
            hue: 0.25,
            grayscale_p: 0.2,
            blur_p: 0.5,
            blur_sigma_min: 0.1,
            blur_sigma_max: 2.0,
            stain_p: 1.0,
            stain_scale: 0.05,
            stain_shift: 0.05,
            stain_units: StainUnits::OpticalDensity,
            stain_first: false,
            cutmix_p: 0.5,
            cutmix_area_min: 0.02,
            cutmix_area_max: 0.4,
            cutmix_aspect_min: 0.3,
            cutmix_aspect_max: 3.3,
            cutmix_log_aspect: false,
        }
    }
}

impl StrongConfig {
    /// Checks ranges and probabilities.
    pub fn validate(&self) -> Result<(), String> {
        for (n, p) in [
            ("jitter_p", self.jitter_p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("stain_p", self.stain_p),
            ("cutmix_p", self.cutmix_p),
        ] {
            check_p(n, p)?;
        }
        for (n, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
            ("stain_scale", self.stain_scale),
            ("stain_shift", self.stain_shift),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{n} must be finite and >= 0, got {v}"));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(format!("hue must be in [0, 0.5], got {}", self.hue));
        }
        check_range(
            "blur_sigma",
            self.blur_sigma_min,
            self.blur_sigma_max,
            f64::MIN_POSITIVE,
        )?;
        check_range(
            "cutmix_area",
            self.cutmix_area_min,
            self.cutmix_area_max,
            f64::MIN_POSITIVE,
        )?;
        if self.cutmix_area_max > 1.0 {
            return Err(format!(
                "cutmix_area_max must be <= 1, got {}",
                self.cutmix_area_max
            ));
        }
        check_range(
            "cutmix_aspect",
            self.cutmix_aspect_min,
            self.cutmix_aspect_max,
            f64::MIN_POSITIVE,
        )?;
        Ok(())
    }
}

/// The photometric operations of one strong view, sampled by [`sample_strong_params`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrongParams {
    /// Colour jitter, when it fires.
    pub jitter: Option<JitterParams>,
    /// Grayscale on/off.
    pub grayscale: bool,
    /// Blur sigma in pixels, when the blur fires.
    pub blur_sigma: Option<f32>,
    /// Stain jitter, when it fires.
    pub stain: Option<StainParams>,
    /// Stain jitter first instead of last.
    pub stain_first: bool,
}

/// Draws the photometric operations of a strong view. Every decision consumes the RNG whether
/// or not the operation fires, so the stream does not depend on earlier outcomes.
pub fn sample_strong_params(cfg: &StrongConfig, rng: &mut impl Rng) -> StrongParams {
    fn fac(rng: &mut impl Rng, x: f64) -> f32 {
        uniform(rng, (1.0 - x).max(0.0), 1.0 + x) as f32
    }
    let jitter_on = coin(rng, cfg.jitter_p);
    let mut order = [0u8, 1, 2, 3];
    order.shuffle(rng);
    let jitter = JitterParams {
        order,
        brightness: fac(rng, cfg.brightness),
        contrast: fac(rng, cfg.contrast),
        saturation: fac(rng, cfg.saturation),
        hue: uniform(rng, -cfg.hue, cfg.hue) as f32,
    };
    let gray = coin(rng, cfg.grayscale_p);
    let blur_on = coin(rng, cfg.blur_p);
    let sigma = uniform(rng, cfg.blur_sigma_min, cfg.blur_sigma_max) as f32;
    let stain_on = coin(rng, cfg.stain_p);
    let unit = match cfg.stain_units {
        StainUnits::OpticalDensity => 1.0,
        StainUnits::Skimage => -(OD_EPS as f64).ln(),
    };
    let scale: [f32; 3] =
        std::array::from_fn(|_| uniform(rng, 1.0 - cfg.stain_scale, 1.0 + cfg.stain_scale) as f32);
    let shift_od: [f32; 3] =
        std::array::from_fn(|_| (uniform(rng, -cfg.stain_shift, cfg.stain_shift) * unit) as f32);
    StrongParams {
        jitter: jitter_on.then_some(jitter),
        grayscale: gray,
        blur_sigma: blur_on.then_some(sigma),
        stain: stain_on.then_some(StainParams { scale, shift_od }),
        stain_first: cfg.stain_first,
    }
}

/// Applies the photometric operations of a strong view, in place.
pub fn apply_strong(img: &mut PlanarImage, p: &StrongParams) {
    if p.stain_first {
        if let Some(s) = &p.stain {
            stain_jitter(img, s);
        }
    }
    if let Some(j) = &p.jitter {
        color_jitter(img, j);
    }
    if p.grayscale {
        grayscale(img);
    }
    if let Some(s) = p.blur_sigma {
        gaussian_blur(img, s);
    }
    if !p.stain_first {
        if let Some(s) = &p.stain {
            stain_jitter(img, s);
        }
    }
}

/// A strong view of an (already weak) image: photometric only, so labels are unchanged.
/// CutMix is drawn separately with [`cutmix_box`](super::cutmix_box).
pub fn strong_view(
    img: &PlanarImage,
    cfg: &StrongConfig,
    rng: &mut impl Rng,
) -> Result<PlanarImage, String> {
    cfg.validate()?;
    let p = sample_strong_params(cfg, rng);
    let mut out = img.clone();
    apply_strong(&mut out, &p);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::test_support::{he_like, random_image, rng};

    #[test]
    fn strong_view_deterministic_valid_and_varied() {
        let img = he_like(48, 40);
        let cfg = StrongConfig::default();
        let a = strong_view(&img, &cfg, &mut rng(10)).unwrap();
        let b = strong_view(&img, &cfg, &mut rng(10)).unwrap();
        assert_eq!(a, b);
        let c = strong_view(&img, &cfg, &mut rng(11)).unwrap();
        assert_ne!(a, c);
        let mut r = rng(12);
        let (mut jit, mut gray, mut blur) = (0, 0, 0);
        let rand_img = random_image(24, 24, 13);
        for i in 0..300 {
            let p = sample_strong_params(&cfg, &mut r);
            jit += p.jitter.is_some() as usize;
            gray += p.grayscale as usize;
            blur += p.blur_sigma.is_some() as usize;
            if let Some(s) = p.blur_sigma {
                assert!((0.1..=2.0).contains(&s));
            }
            if let Some(j) = &p.jitter {
                assert!((0.5..=1.5).contains(&j.brightness) && (-0.25..=0.25).contains(&j.hue));
                let mut o = j.order;
                o.sort();
                assert_eq!(o, [0, 1, 2, 3]);
            }
            let s = p.stain.as_ref().unwrap();
            assert!(s.scale.iter().all(|v| (0.95..=1.05).contains(v)));
            assert!(s.shift_od.iter().all(|v| (-0.05..=0.05).contains(v)));
            let mut x = if i % 2 == 0 {
                img.clone()
            } else {
                rand_img.clone()
            };
            apply_strong(&mut x, &p);
            assert!(x.is_valid_unit());
        }
        assert!((200..280).contains(&jit), "{jit}");
        assert!((35..90).contains(&gray), "{gray}");
        assert!((110..190).contains(&blur), "{blur}");
        // Extreme inputs stay finite and in range.
        for fill in [[0.0f32; 3], [1.0; 3]] {
            let x = strong_view(&PlanarImage::filled(8, 8, fill), &cfg, &mut r).unwrap();
            assert!(x.is_valid_unit());
        }
        // Skimage units scale the shift by -ln(1e-6).
        let sk = StrongConfig {
            stain_units: StainUnits::Skimage,
            ..Default::default()
        };
        let p = sample_strong_params(&sk, &mut r);
        assert!(p
            .stain
            .unwrap()
            .shift_od
            .iter()
            .all(|v| v.abs() <= 0.05 * 13.82));
    }

    #[test]
    fn strong_config_validation() {
        assert!(StrongConfig::default().validate().is_ok());
        for bad in [
            StrongConfig {
                jitter_p: -0.1,
                ..Default::default()
            },
            StrongConfig {
                hue: 0.6,
                ..Default::default()
            },
            StrongConfig {
                blur_sigma_min: 3.0,
                ..Default::default()
            },
            StrongConfig {
                cutmix_area_max: 1.5,
                ..Default::default()
            },
            StrongConfig {
                cutmix_aspect_min: 0.0,
                ..Default::default()
            },
            StrongConfig {
                stain_scale: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let c: StrongConfig =
            serde_json::from_str(r#"{"blur_p": 0.0, "stain_units": "skimage"}"#).unwrap();
        assert_eq!(c.blur_p, 0.0);
        assert_eq!(c.jitter_p, 0.8);
        assert_eq!(c.stain_units, StainUnits::Skimage);
    }
}
