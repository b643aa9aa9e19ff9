//! Owned 8-bit RGB images, as the dataset readers decode them.

use super::view::{ImageView, PixelFormat};

/// 8-bit RGB image, row-major, 3 bytes per pixel, no row padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `3 * width * height` bytes: R, G, B of each pixel, rows top to bottom.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// A checked view of the image (the checks of [`ImageView::new`]: sides and buffer size).
    pub fn view(&self) -> crate::Result<ImageView<'_>> {
        ImageView::new(
            &self.data,
            self.width,
            self.height,
            self.width * 3,
            PixelFormat::Rgb8,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_reads_the_pixels_and_checks_the_buffer() {
        let data: Vec<u8> = (0..40 * 33 * 3).map(|i| (i % 256) as u8).collect();
        let img = RgbImage {
            width: 40,
            height: 33,
            data,
        };
        let v = img.view().unwrap();
        assert_eq!((v.width(), v.height()), (40, 33));
        let o = (32 * 40 + 39) * 3;
        assert_eq!(
            v.rgb(39, 32),
            [img.data[o], img.data[o + 1], img.data[o + 2]]
        );
        let short = RgbImage {
            data: vec![0; 40 * 33 * 3 - 1],
            ..img
        };
        assert!(short.view().is_err());
    }
}
