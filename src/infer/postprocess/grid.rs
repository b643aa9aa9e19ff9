//! The padded pixel grid and connectivity shared by the splitting stage.

/// The pixel grid, padded with one pixel of background all round (so that the 4 neighbours of
/// any foreground pixel are valid indices), with its classes (0 = background) and the
/// connectivity used throughout: 4-neighbours that are foreground and, with `by_class`, of the
/// same class. All per-pixel buffers of the splitting stage use this padded indexing.
pub(super) struct Grid {
    pub(super) cls: Vec<u32>,
    pub(super) pw: usize,
    pub(super) ph: usize,
    pub(super) by_class: bool,
}

impl Grid {
    pub(super) fn new(cls: &[u32], width: usize, height: usize, by_class: bool) -> Grid {
        let (pw, ph) = (width + 2, height + 2);
        let mut padded = vec![0u32; pw * ph];
        for y in 0..height {
            let row = (y + 1) * pw + 1;
            padded[row..row + width].copy_from_slice(&cls[y * width..(y + 1) * width]);
        }
        Grid {
            cls: padded,
            pw,
            ph,
            by_class,
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.pw * self.ph
    }

    #[inline]
    pub(super) fn fg(&self, i: usize) -> bool {
        self.cls[i] != 0
    }

    /// Whether foreground pixel `p` is connected to its 4-neighbour `q`.
    #[inline]
    pub(super) fn linked(&self, p: usize, q: usize) -> bool {
        let c = self.cls[q];
        c != 0 && (!self.by_class || c == self.cls[p])
    }

    /// The 4 neighbours of a non-padding pixel `i`.
    #[inline]
    pub(super) fn nbrs(&self, i: usize) -> [usize; 4] {
        [i - self.pw, i - 1, i + 1, i + self.pw]
    }
}
