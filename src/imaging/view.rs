//! Borrowed views of caller-owned 8-bit images, validated before any read.

use crate::{Error, Result};

/// Pixel layouts accepted from callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// 3 bytes per pixel: R, G, B.
    Rgb8,
    /// 4 bytes per pixel: R, G, B, alpha (ignored).
    Rgba8,
    /// 3 bytes per pixel: B, G, R.
    Bgr8,
    /// 4 bytes per pixel: B, G, R, alpha (ignored).
    Bgra8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes(self) -> usize {
        match self {
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 => 4,
        }
    }

    /// Byte offsets of R, G and B within a pixel.
    pub fn rgb_offsets(self) -> [usize; 3] {
        match self {
            Self::Rgb8 | Self::Rgba8 => [0, 1, 2],
            Self::Bgr8 | Self::Bgra8 => [2, 1, 0],
        }
    }

    /// From the C enum value.
    pub fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            0 => Self::Rgb8,
            1 => Self::Rgba8,
            2 => Self::Bgr8,
            3 => Self::Bgra8,
            _ => return None,
        })
    }
}

/// Smallest accepted side.
pub const MIN_SIDE: usize = 32;
/// Largest accepted side (a whole slide level is larger; tile it with `segment_image`).
pub const MAX_SIDE: usize = 1 << 20;

/// A checked view of an image: `height` rows of `stride` bytes, each holding `width`
/// pixels of `format`.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
}

impl<'a> ImageView<'a> {
    /// Validates sizes against the buffer; nothing is read out of bounds afterwards.
    pub fn new(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self> {
        if width < MIN_SIDE || height < MIN_SIDE {
            return Err(Error::invalid(format!(
                "image is {width}x{height}; the smallest accepted size is {MIN_SIDE}x{MIN_SIDE}"
            )));
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::invalid(format!(
                "image is {width}x{height}; sides above {MAX_SIDE} are refused"
            )));
        }
        let row = width
            .checked_mul(format.bytes())
            .ok_or_else(|| Error::invalid("width * bytes per pixel overflows"))?;
        if stride < row {
            return Err(Error::invalid(format!(
                "stride {stride} is smaller than a row of {width} pixels ({row} bytes)"
            )));
        }
        let need = stride
            .checked_mul(height - 1)
            .and_then(|v| v.checked_add(row))
            .ok_or_else(|| Error::invalid("stride * height overflows"))?;
        if data.len() < need {
            return Err(Error::invalid(format!(
                "image buffer holds {} bytes; {width}x{height} with stride {stride} needs {need}",
                data.len()
            )));
        }
        Ok(Self {
            data,
            width,
            height,
            stride,
            format,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// RGB of pixel (x, y).
    #[inline]
    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let o = y * self.stride + x * self.format.bytes();
        let [r, g, b] = self.format.rgb_offsets();
        [self.data[o + r], self.data[o + g], self.data[o + b]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_geometry() {
        let buf = vec![0u8; 64 * 64 * 3];
        assert!(ImageView::new(&buf, 64, 64, 192, PixelFormat::Rgb8).is_ok());
        let e = ImageView::new(&buf, 64, 64, 100, PixelFormat::Rgb8).unwrap_err();
        assert!(e.to_string().contains("stride"));
        let e = ImageView::new(&buf, 64, 65, 192, PixelFormat::Rgb8).unwrap_err();
        assert!(e.to_string().contains("needs"));
        assert!(ImageView::new(&buf, 16, 64, 48, PixelFormat::Rgb8).is_err());
        assert!(ImageView::new(&buf, 64, 64, usize::MAX / 2, PixelFormat::Rgb8).is_err());
        assert!(ImageView::new(&buf, 64, 64, 256, PixelFormat::Rgba8).is_err());
    }

    #[test]
    fn formats_read_the_same_colour() {
        let rgb = [10u8, 20, 30];
        let mk = |f: PixelFormat| -> Vec<u8> {
            let px: Vec<u8> = match f {
                PixelFormat::Rgb8 => vec![10, 20, 30],
                PixelFormat::Rgba8 => vec![10, 20, 30, 255],
                PixelFormat::Bgr8 => vec![30, 20, 10],
                PixelFormat::Bgra8 => vec![30, 20, 10, 255],
            };
            px.repeat(32 * 32)
        };
        for f in [
            PixelFormat::Rgb8,
            PixelFormat::Rgba8,
            PixelFormat::Bgr8,
            PixelFormat::Bgra8,
        ] {
            let b = mk(f);
            let v = ImageView::new(&b, 32, 32, 32 * f.bytes(), f).unwrap();
            assert_eq!(v.rgb(31, 31), rgb);
        }
    }
}
