//! Recycled activation buffers. A batch of activations is often tens of megabytes; allocated fresh for every
//! op, each one comes from the kernel as zero pages and costs a page fault per 4 KiB on first touch, which
//! was a third of the reference backend's time on EfficientNet-Lite0. Buffers freed after their last reader
//! come back here and serve the next op of the same run and the next batch. Kernels that allocate their
//! own outputs give those back too; a buffer no op of a whole run took is dropped at the run's end, so the
//! free buffers stay what one run of the model uses (before, up to 32 of the largest piled up: hundreds of
//! megabytes on an ImageNet model).

/// Free buffers, reused by size.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Vec<Vec<f32>>,
    /// f64 accumulators (of the convs that sum in f64), reused the same way.
    free64: Vec<Vec<f64>>,
    /// Per free buffer: whether it was free when the last run ended (one more, and it goes).
    idle: Vec<bool>,
    idle64: Vec<bool>,
}

/// How many free buffers are kept; beyond that the smallest are dropped.
const KEEP: usize = 32;

/// A buffer of `len` elements from `free` (the smallest that holds them) or a new one; contents unspecified.
fn take_from<T: Copy + Default>(
    free: &mut Vec<Vec<T>>,
    idle: &mut Vec<bool>,
    len: usize,
) -> Vec<T> {
    let best = (free.iter().enumerate())
        .filter(|(_, v)| v.capacity() >= len)
        .min_by_key(|(_, v)| v.capacity())
        .map(|(i, _)| i);
    match best {
        Some(i) => {
            idle.swap_remove(i);
            let mut v = free.swap_remove(i);
            // within capacity: no reallocation, and only a tail that was never written is zeroed
            v.resize(len, T::default());
            v.truncate(len);
            v
        }
        None => vec![T::default(); len],
    }
}

/// Puts `v` back into `free`, dropping the smallest buffer beyond [`KEEP`].
fn put_back<T>(free: &mut Vec<Vec<T>>, idle: &mut Vec<bool>, v: Vec<T>) {
    if v.capacity() == 0 {
        return;
    }
    free.push(v);
    idle.push(false);
    if free.len() > KEEP {
        let smallest = (0..free.len())
            .min_by_key(|&i| free[i].capacity())
            .expect("not empty");
        free.swap_remove(smallest);
        idle.swap_remove(smallest);
    }
}

/// At a run's end: drops the buffers that were already free at the last run's end (no op of this run took
/// them), and marks the others.
fn age<T>(free: &mut Vec<Vec<T>>, idle: &mut Vec<bool>) {
    let mut k = 0;
    while k < free.len() {
        if idle[k] {
            free.swap_remove(k);
            idle.swap_remove(k);
        } else {
            idle[k] = true;
            k += 1;
        }
    }
}

impl Buffers {
    /// A buffer of `len` elements whose contents are unspecified (the caller overwrites them all).
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        take_from(&mut self.free, &mut self.idle, len)
    }

    /// Returns a buffer for reuse.
    pub fn give(&mut self, v: Vec<f32>) {
        put_back(&mut self.free, &mut self.idle, v);
    }

    /// [`Buffers::take`] for f64.
    pub fn take64(&mut self, len: usize) -> Vec<f64> {
        take_from(&mut self.free64, &mut self.idle64, len)
    }

    /// [`Buffers::give`] for f64.
    pub fn give64(&mut self, v: Vec<f64>) {
        put_back(&mut self.free64, &mut self.idle64, v);
    }

    /// Called at the end of each run: drops what no op of the run took.
    pub fn end_run(&mut self) {
        age(&mut self.free, &mut self.idle);
        age(&mut self.free64, &mut self.idle64);
    }

    /// Free buffers full of NaN: a kernel that reads what it was to overwrite gives NaN.
    #[cfg(test)]
    pub fn poisoned(len: usize) -> Buffers {
        Buffers {
            free: vec![vec![f32::NAN; len]],
            free64: vec![vec![f64::NAN; len]],
            idle: vec![false],
            idle64: vec![false],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_smallest_buffer_that_fits() {
        let mut b = Buffers::default();
        let big = b.take(1000);
        let small = b.take(100);
        let (pb, ps) = (big.as_ptr(), small.as_ptr());
        b.give(big);
        b.give(small);
        let v = b.take(80);
        assert_eq!(v.len(), 80);
        assert_eq!(v.as_ptr(), ps);
        let w = b.take(900);
        assert_eq!(w.as_ptr(), pb);
        assert_eq!(w.len(), 900);
        // nothing fits: a new buffer
        let x = b.take(5000);
        assert_eq!(x.len(), 5000);
    }

    #[test]
    fn a_buffer_no_run_takes_is_dropped() {
        let mut b = Buffers::default();
        b.give(vec![0.0; 1000]);
        b.give(vec![0.0; 10]);
        // a run takes the large one and gives it back; the small one sits through two run ends
        b.end_run();
        let v = b.take(900);
        b.give(v);
        b.end_run();
        assert_eq!(b.free.len(), 1);
        assert_eq!(b.free[0].capacity(), 1000);
        b.end_run();
        assert!(b.free.is_empty());
        assert_eq!(b.free.len(), b.idle.len());
    }

    #[test]
    fn keeps_a_bounded_number() {
        let mut b = Buffers::default();
        for i in 0..100 {
            b.give(vec![0.0; i + 1]);
        }
        assert_eq!(b.free.len(), KEEP);
        assert!(b.free.iter().all(|v| v.capacity() > 100 - KEEP));
    }
}
