//! Finite-difference gradient checking in f64 (tests only).
use candle_core::{Result, Tensor, Var};

/// Compares the autograd gradient of `sum(f(x) * r)` (r fixed random) with central
/// finite differences, element by element; fails if the max abs error exceeds `tol`.
pub fn check_grad<F>(x: &Tensor, f: F, tol: f64) -> Result<()>
where
    F: Fn(&Tensor) -> Result<Tensor>,
{
    let var = Var::from_tensor(&x.copy()?)?;
    let y = f(var.as_tensor())?;
    let r = Tensor::randn(0f64, 1f64, y.shape(), y.device())?;
    let loss = (y * &r)?.sum_all()?;
    let grads = loss.backward()?;
    let g = grads
        .get(var.as_tensor())
        .expect("no gradient reached the input")
        .flatten_all()?
        .to_vec1::<f64>()?;
    let base = x.flatten_all()?.to_vec1::<f64>()?;
    let eps = 1e-5;
    let mut worst = 0f64;
    for i in 0..base.len() {
        let eval = |delta: f64| -> Result<f64> {
            let mut v = base.clone();
            v[i] += delta;
            let t = Tensor::from_vec(v, x.shape(), x.device())?;
            (f(&t)? * &r)?.sum_all()?.to_scalar::<f64>()
        };
        let num = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
        worst = worst.max((num - g[i]).abs());
    }
    if worst > tol {
        candle_core::bail!("gradient check failed: max abs error {worst} > {tol}")
    }
    Ok(())
}
