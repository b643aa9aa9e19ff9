//! Random draws with a fixed RNG consumption, and the checks of the probabilities and ranges
//! they draw from.

use rand::Rng;

/// True with probability `p` (always consumes one `f64`).
pub(super) fn coin(rng: &mut impl Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// Uniform in `[lo, hi]` (always consumes one `f64`).
pub(super) fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// `Err` naming `name` unless `p` is a probability in `[0, 1]`.
pub(super) fn check_p(name: &str, p: f64) -> Result<(), String> {
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{name} must be a probability in [0, 1], got {p}"));
    }
    Ok(())
}

/// `Err` naming `name` unless `[lo, hi]` is a finite range with `min_allowed <= lo <= hi`.
pub(super) fn check_range(name: &str, lo: f64, hi: f64, min_allowed: f64) -> Result<(), String> {
    if !(lo.is_finite() && hi.is_finite() && lo >= min_allowed && lo <= hi) {
        return Err(format!(
            "{name} range [{lo}, {hi}] is invalid (need {min_allowed} <= min <= max, finite)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::test_support::rng;

    #[test]
    fn draws_consume_one_value_and_stay_in_range() {
        let (mut a, mut b) = (rng(3), rng(3));
        for _ in 0..200 {
            assert!(!coin(&mut a, 0.0));
            assert!(coin(&mut a, 1.0));
            let u = uniform(&mut a, -2.0, 0.5);
            assert!((-2.0..=0.5).contains(&u));
            // Three draws each took one f64 from the stream.
            for _ in 0..3 {
                b.random::<f64>();
            }
            assert_eq!(a.random::<u64>(), b.random::<u64>());
        }
    }

    #[test]
    fn checks_name_the_bad_parameter() {
        assert!(check_p("p", 0.0).is_ok() && check_p("p", 1.0).is_ok());
        assert!(check_p("hflip_p", 1.5).unwrap_err().contains("hflip_p"));
        assert!(check_p("p", f64::NAN).is_err());
        assert!(check_range("scale", 0.5, 2.0, f64::MIN_POSITIVE).is_ok());
        assert!(check_range("scale", 2.0, 0.5, 0.0)
            .unwrap_err()
            .contains("scale"));
        assert!(check_range("scale", 0.0, 1.0, f64::MIN_POSITIVE).is_err());
        assert!(check_range("scale", 0.5, f64::INFINITY, 0.0).is_err());
    }
}
