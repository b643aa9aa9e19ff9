//! The CPU convolution against candle's conv2d and its autograd.

use super::geom::Geom;
use super::im2col::im2col;
use super::kernels::{forward, matmul, Epilogue};
use super::*;
use candle_core::{Device, Var};

fn reference(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    p: ConvParams,
    relu: bool,
) -> Result<Tensor> {
    let mut y = x.conv2d(w, p.padding, p.stride, p.dilation, 1)?;
    if let Some(b) = b {
        y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
    }
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// Every geometry the network uses (and a few more), forward and all gradients against
/// candle's conv2d and its autograd.
#[test]
fn matches_candle_forward_and_backward() -> Result<()> {
    let dev = Device::Cpu;
    let cases = [
        // (b, cin, h, w, cout, k, stride, padding, dilation)
        (2, 3, 19, 19, 4, 7, 2, 3, 1),
        (2, 5, 9, 9, 6, 3, 1, 1, 1),
        (1, 5, 10, 10, 6, 3, 2, 1, 1),
        (2, 4, 9, 9, 3, 3, 1, 2, 2),
        (2, 4, 8, 8, 3, 3, 1, 12, 12), // only the centre tap touches the image
        (2, 4, 8, 8, 3, 3, 1, 6, 6),   // some taps partially valid
        (2, 6, 7, 7, 5, 1, 1, 0, 1),
        (2, 6, 9, 9, 5, 1, 2, 0, 1),
        (1, 3, 12, 12, 2, 3, 1, 0, 1), // no padding
    ];
    for (i, &(b, cin, h, w, cout, k, s, pad, d)) in cases.iter().enumerate() {
        let p = ConvParams {
            stride: s,
            padding: pad,
            dilation: d,
        };
        for (bias, relu) in [(false, false), (true, true), (true, false)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, cin, h, w), &dev)?)?;
            let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (cout, cin, k, k), &dev)?)?;
            let bv = Var::from_tensor(&Tensor::randn(0f32, 1., cout, &dev)?)?;
            let bt = bias.then(|| bv.as_tensor());
            let ours = conv2d(x.as_tensor(), wt.as_tensor(), bt, p, relu)?;
            let theirs = reference(x.as_tensor(), wt.as_tensor(), bt, p, relu)?;
            assert_eq!(ours.dims(), theirs.dims(), "case {i}");
            let d0 = max_diff(&ours, &theirs)?;
            assert!(d0 < 1e-4, "case {i} forward: {d0}");
            let r = Tensor::randn(0f32, 1., ours.shape(), &dev)?;
            let go = (ours * &r)?.sum_all()?.backward()?;
            let gt = (theirs * &r)?.sum_all()?.backward()?;
            for (name, v) in [("x", &x), ("w", &wt)] {
                let a = go.get(v.as_tensor()).expect("grad");
                let bb = gt.get(v.as_tensor()).expect("grad");
                let dd = max_diff(a, bb)?;
                assert!(dd < 1e-3, "case {i} ({bias}, {relu}) d{name}: {dd}");
            }
            if bias {
                let dd = max_diff(
                    go.get(bv.as_tensor()).expect("grad"),
                    gt.get(bv.as_tensor()).expect("grad"),
                )?;
                assert!(dd < 1e-3, "case {i} dbias: {dd}");
            }
        }
    }
    Ok(())
}

/// Shapes large enough for several im2col chunks per image, on 3 threads (row blocks
/// split across items, uneven input-channel groups), against candle. Without ReLU: with
/// 10^5 outputs, one pre-activation within rounding of zero lands on different sides in
/// the two summation orders now and then, and its mask flip moves the input gradient by
/// ~20% (the ReLU gradient is tested above and in `fused`).
#[test]
fn several_chunks_and_work_items_match_candle() -> Result<()> {
    let dev = Device::Cpu;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .map_err(candle_core::Error::wrap)?;
    for (b, cin, hw, cout, stride) in [(1, 32, 80, 16, 1), (2, 32, 80, 16, 1), (1, 40, 160, 8, 2)] {
        let p = ConvParams {
            stride,
            padding: 1,
            dilation: 1,
        };
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, cin, hw, hw), &dev)?)?;
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (cout, cin, 3, 3), &dev)?)?;
        let geom = Geom::new(x.dims(), wt.dims(), p)?;
        assert!(
            geom.rows_per_chunk(cin * 9) < geom.ho,
            "the case must need chunks"
        );
        let (ours, go) = pool.install(|| -> Result<_> {
            let y = conv2d(x.as_tensor(), wt.as_tensor(), None, p, false)?;
            let r = Tensor::randn(0f32, 1., y.shape(), &dev)?;
            let g = (&y * &r)?.sum_all()?.backward()?;
            Ok(((y, r), g))
        })?;
        let (ours, r) = ours;
        let theirs = reference(x.as_tensor(), wt.as_tensor(), None, p, false)?;
        let gt = (&theirs * &r)?.sum_all()?.backward()?;
        let rel = |a: &Tensor, b: &Tensor| -> Result<f32> {
            let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
            Ok(max_diff(a, b)? / scale.max(1.0))
        };
        let d0 = rel(&ours, &theirs)?;
        assert!(d0 < 1e-5, "{b}x{cin}x{hw} s{stride} forward: {d0}");
        for (name, v) in [("x", &x), ("w", &wt)] {
            let a = go.get(v.as_tensor()).expect("grad");
            let bb = gt.get(v.as_tensor()).expect("grad");
            let dd = rel(a, bb)?;
            assert!(dd < 1e-5, "{b}x{cin}x{hw} s{stride} d{name}: {dd}");
        }
    }
    Ok(())
}

#[test]
fn scaled_conv_equals_folded_weights() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (2, 5, 13, 13), &dev)?;
    let w = Tensor::randn(0f32, 1., (6, 5, 3, 3), &dev)?;
    let scale: Vec<f32> = (0..6).map(|i| 0.5 + i as f32 * 0.3).collect();
    let shift: Vec<f32> = (0..6).map(|i| i as f32 * 0.2 - 0.5).collect();
    for (p, relu) in [
        (
            ConvParams {
                stride: 1,
                padding: 1,
                dilation: 1,
            },
            true,
        ),
        (
            ConvParams {
                stride: 2,
                padding: 1,
                dilation: 1,
            },
            false,
        ),
        (
            ConvParams {
                stride: 1,
                padding: 12,
                dilation: 12,
            },
            true,
        ),
    ] {
        let ours = conv2d_scaled(&x, &w, scale.clone(), shift.clone(), p, relu)?
            .expect("cpu f32 untracked");
        let folded =
            w.broadcast_mul(&Tensor::new(scale.as_slice(), &dev)?.reshape((6, 1, 1, 1))?)?;
        let b = Tensor::new(shift.as_slice(), &dev)?;
        let theirs = reference(&x, &folded, Some(&b), p, relu)?;
        let d = max_diff(&ours, &theirs)?;
        assert!(d < 1e-4, "{p:?}: {d}");
    }
    // A tracked input needs the differentiable path.
    let xv = Var::from_tensor(&x)?;
    let p = ConvParams {
        stride: 1,
        padding: 1,
        dilation: 1,
    };
    assert!(conv2d_scaled(xv.as_tensor(), &w, scale.clone(), shift.clone(), p, true)?.is_none());
    assert!(conv2d_scaled(&x, &w, vec![1.0; 5], shift, p, true).is_err());
    Ok(())
}

#[test]
fn untracked_input_gets_no_gradient_and_small_chunks_agree() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (1, 3, 11, 11), &dev)?;
    let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (4, 3, 3, 3), &dev)?)?;
    let p = ConvParams {
        stride: 1,
        padding: 1,
        dilation: 1,
    };
    let y = conv2d(&x, wt.as_tensor(), None, p, false)?;
    let g = y.sum_all()?.backward()?;
    assert!(g.get(&x).is_none());
    assert!(g.get(wt.as_tensor()).is_some());
    // One output row per chunk gives the same result as one chunk.
    let geom = Geom::new(x.dims(), wt.dims(), p)?;
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let ws = wt.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let whole = forward(&geom, &xs, &ws, Epilogue::new(None, None, false));
    let taps = geom.taps();
    let kv = geom.cin * taps.len();
    let mut rows = vec![0f32; geom.cout * geom.ho * geom.wo];
    for r in 0..geom.ho {
        let mut col = vec![0f32; kv * geom.wo];
        im2col(&geom, &xs, &taps, r, r + 1, &mut col);
        let hw = geom.ho * geom.wo;
        matmul(
            geom.cout,
            geom.wo,
            kv,
            (rows[r * geom.wo..].as_mut_ptr(), hw, 1),
            false,
            (ws.as_ptr(), kv, 1),
            (col.as_ptr(), geom.wo, 1),
        );
    }
    let d = whole
        .iter()
        .zip(&rows)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "{d}");
    Ok(())
}
