//! The arithmetic the kernels share: the number types they accumulate in (f32, or f64 where f32 would not
//! be exact), GEMM on faer's safe API, and integer codes read from activations on an encoding's grid.

use crate::quant::Encoding;

/// How a GEMM operand lies in its slice: row-major with the given row stride, or column-major with the
/// given column stride.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Layout {
    Rows(usize),
    Cols(usize),
}

/// The arithmetic the kernels accumulate in: f32, or f64 where f32 would not be exact.
pub(crate) trait Num:
    Copy + Default + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    fn from_f32(v: f32) -> Self;
    /// c[m×n] = a[m×k] · b[k×n].
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        sa: Layout,
        b: &[Self],
        sb: Layout,
        c: &mut [Self],
    );
}

// GEMM goes through faer's safe API (its kernels dispatch to AVX-512, AVX2 or NEON at run time), so the
// reference backend needs no `unsafe`.
impl Num for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        sa: Layout,
        b: &[f32],
        sb: Layout,
        c: &mut [f32],
    ) {
        safe::gemm(m, k, n, a, sa, b, sb, c)
    }
}

impl Num for f64 {
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f64],
        sa: Layout,
        b: &[f64],
        sb: Layout,
        c: &mut [f64],
    ) {
        safe::gemm(m, k, n, a, sa, b, sb, c)
    }
}

mod safe {
    //! Strided GEMM through faer's safe API, single-threaded: amp runs evaluations side by side instead.
    use super::Layout;
    use faer::{Accum, MatMut, MatRef, Par};

    fn view<T>(d: &[T], rows: usize, cols: usize, l: Layout) -> MatRef<'_, T> {
        match l {
            Layout::Rows(rs) => MatRef::from_row_major_slice_with_stride(d, rows, cols, rs),
            Layout::Cols(cs) => MatRef::from_column_major_slice_with_stride(d, rows, cols, cs),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn gemm<T: faer::traits::RealField + Copy + From<f32>>(
        m: usize,
        k: usize,
        n: usize,
        a: &[T],
        sa: Layout,
        b: &[T],
        sb: Layout,
        c: &mut [T],
    ) {
        let c = MatMut::from_row_major_slice_mut(&mut c[..m * n], m, n);
        faer::linalg::matmul::matmul(
            c,
            Accum::Replace,
            view(a, m, k, sa),
            view(b, k, n, sb),
            T::from(1.0f32),
            Par::Seq,
        );
    }
}

/// Where a kernel reads its input: the activations themselves, or their integer codes (`round(x / scale)`,
/// which is `q + offset` for activations on the encoding's grid), converted one slice at a time so the
/// converted copy stays in cache.
pub(crate) enum Source<'a, T> {
    Ready(&'a [T]),
    Codes { x: &'a [f32], inv_scale: f32 },
}

/// Rounds half to even in f32 (exact for |v| < 2²²; codes stay below 2¹⁸).
#[inline]
pub(crate) fn round_code(v: f32) -> f32 {
    const MAGIC: f32 = 12582912.0; // 1.5 * 2^23
    (v.clamp(-4194304.0, 4194304.0) + MAGIC) - MAGIC
}

impl<'a, T: Num> Source<'a, T> {
    pub fn codes(x: &'a [f32], inv_scale: f32) -> Self {
        Source::Codes { x, inv_scale }
    }

    /// Elements `[lo, lo + len)`, converted into `scratch` when they are codes.
    pub fn get<'s>(&'s self, lo: usize, len: usize, scratch: &'s mut Vec<T>) -> &'s [T] {
        match self {
            Source::Ready(x) => &x[lo..lo + len],
            Source::Codes { x, inv_scale } => {
                // a zip over two slices vectorises (an `extend` from a map does not)
                if scratch.len() < len {
                    scratch.resize(len, T::default());
                }
                let dst = &mut scratch[..len];
                for (d, &v) in dst.iter_mut().zip(&x[lo..lo + len]) {
                    *d = T::from_f32(round_code(v * inv_scale));
                }
                dst
            }
        }
    }
}

/// Integer codes `q + offset` of activations that lie on `e`'s grid.
pub(crate) fn integer_codes<T: Num>(x: &[f32], e: &Encoding) -> Vec<T> {
    let mut v = Vec::new();
    Source::<T>::codes(x, 1.0 / e.scale).get(0, x.len(), &mut v);
    v
}
