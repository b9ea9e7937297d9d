//! Recycled activation buffers. A batch of activations is often tens of megabytes; allocated fresh for every
//! op, each one comes from the kernel as zero pages and costs a page fault per 4 KiB on first touch, which
//! was a third of the reference backend's time on EfficientNet-Lite0. Buffers freed after their last reader
//! come back here and serve the next op of the same run and the next batch.

/// Free buffers, reused by size.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Vec<Vec<f32>>,
}

/// How many free buffers are kept; beyond that the smallest are dropped.
const KEEP: usize = 32;

impl Buffers {
    /// A buffer of `len` elements whose contents are unspecified (the caller overwrites them all).
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut v = self.free.swap_remove(i);
                // within capacity: no reallocation, and only a tail that was never written is zeroed
                v.resize(len, 0.0);
                v.truncate(len);
                v
            }
            None => vec![0.0; len],
        }
    }

    /// Returns a buffer for reuse.
    pub fn give(&mut self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        self.free.push(v);
        if self.free.len() > KEEP {
            let smallest = (0..self.free.len())
                .min_by_key(|&i| self.free[i].capacity())
                .expect("not empty");
            self.free.swap_remove(smallest);
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
    fn keeps_a_bounded_number() {
        let mut b = Buffers::default();
        for i in 0..100 {
            b.give(vec![0.0; i + 1]);
        }
        assert_eq!(b.free.len(), KEEP);
        assert!(b.free.iter().all(|v| v.capacity() > 100 - KEEP));
    }
}
