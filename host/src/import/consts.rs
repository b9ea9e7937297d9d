//! Constant tensors during import and the ops folded on them (shape arithmetic exporters emit).

use amp_device::ir;

use super::proto;

#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A constant: float data (weights) or integer data (shapes, indices, axes).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstTensor {
    pub shape: Vec<usize>,
    pub data: ConstData,
}

fn le_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
}

impl ConstTensor {
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Self {
        ConstTensor {
            shape,
            data: ConstData::F32(v),
        }
    }
    pub fn i64(shape: Vec<usize>, v: Vec<i64>) -> Self {
        ConstTensor {
            shape,
            data: ConstData::I64(v),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn from_proto(t: &proto::TensorProto) -> Result<ConstTensor, String> {
        if !t.external_data.is_empty() || t.data_location == Some(1) {
            return Err("stores its data in an external file, which amp does not read; save the model with the data inside".into());
        }
        let shape: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let n: usize = shape.iter().product();
        let raw = t.raw_data.as_deref().unwrap_or(&[]);
        let dt = t.data_type.unwrap_or(0);
        let c = match dt {
            1 => ConstTensor::f32(
                shape,
                if raw.is_empty() {
                    t.float_data.clone()
                } else {
                    le_chunks::<4>(raw).map(f32::from_le_bytes).collect()
                },
            ),
            11 => ConstTensor::f32(
                shape,
                if raw.is_empty() {
                    t.double_data.iter().map(|&v| v as f32).collect()
                } else {
                    le_chunks::<8>(raw)
                        .map(|b| f64::from_le_bytes(b) as f32)
                        .collect()
                },
            ),
            10 => ConstTensor::f32(
                shape,
                if raw.is_empty() {
                    t.int32_data.iter().map(|&v| f16_to_f32(v as u16)).collect()
                } else {
                    le_chunks::<2>(raw)
                        .map(|b| f16_to_f32(u16::from_le_bytes(b)))
                        .collect()
                },
            ),
            7 => ConstTensor::i64(
                shape,
                if raw.is_empty() {
                    t.int64_data.clone()
                } else {
                    le_chunks::<8>(raw).map(i64::from_le_bytes).collect()
                },
            ),
            6 | 5 | 4 | 3 | 2 | 9 => {
                let v: Vec<i64> = if raw.is_empty() {
                    t.int32_data.iter().map(|&v| v as i64).collect()
                } else {
                    match dt {
                        6 => le_chunks::<4>(raw)
                            .map(|b| i32::from_le_bytes(b) as i64)
                            .collect(),
                        5 => le_chunks::<2>(raw)
                            .map(|b| i16::from_le_bytes(b) as i64)
                            .collect(),
                        4 => le_chunks::<2>(raw)
                            .map(|b| u16::from_le_bytes(b) as i64)
                            .collect(),
                        3 => raw.iter().map(|&b| b as i8 as i64).collect(),
                        _ => raw.iter().map(|&b| b as i64).collect(),
                    }
                };
                ConstTensor::i64(shape, v)
            }
            other => {
                return Err(format!(
                    "has ONNX data type {other}, which amp does not handle in constants"
                ))
            }
        };
        let len = match &c.data {
            ConstData::F32(v) => v.len(),
            ConstData::I64(v) => v.len(),
        };
        if len != n {
            return Err(format!(
                "declares shape {:?} ({n} elements) but holds {len} values; is the file truncated?",
                c.shape
            ));
        }
        Ok(c)
    }

    /// A tensor of `shape` holding the elements at `order` (flat indices into this one).
    /// The tensor of `shape` whose element at each multi-index is this one's element at the flat index
    /// `source(index, strides)`, `strides` being this tensor's row-major strides.
    fn rearranged(
        &self,
        shape: Vec<usize>,
        source: impl Fn(&[usize], &[usize]) -> usize,
    ) -> ConstTensor {
        let mut strides = vec![1; self.shape.len()];
        for i in (0..self.shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.shape[i + 1];
        }
        let n: usize = shape.iter().product();
        let mut order = Vec::with_capacity(n);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            order.push(source(&idx, &strides));
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        self.pick(shape, &order)
    }

    fn pick(&self, shape: Vec<usize>, order: &[usize]) -> ConstTensor {
        match &self.data {
            ConstData::F32(v) => ConstTensor::f32(shape, order.iter().map(|&i| v[i]).collect()),
            ConstData::I64(v) => ConstTensor::i64(shape, order.iter().map(|&i| v[i]).collect()),
        }
    }

    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            ConstData::F32(v) => v.clone(),
            ConstData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    pub fn to_i64(&self) -> Vec<i64> {
        match &self.data {
            ConstData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            ConstData::I64(v) => v.clone(),
        }
    }

    pub fn is_float(&self) -> bool {
        matches!(self.data, ConstData::F32(_))
    }

    /// Applies `f` elementwise with numpy broadcasting; the result is float if either side is.
    pub fn binary(
        &self,
        other: &ConstTensor,
        f: impl Fn(f64, f64) -> f64,
    ) -> Result<ConstTensor, String> {
        let float = self.is_float() || other.is_float();
        broadcast_map(&[self, other], float, |v| f(v[0], v[1]))
    }

    /// ONNX Range from `self` (a scalar) up to `limit` by `delta`: `max(⌈(limit − start) / delta⌉, 0)`
    /// values, float if any operand is.
    pub fn range(&self, limit: &ConstTensor, delta: &ConstTensor) -> Result<ConstTensor, String> {
        let one = |t: &ConstTensor, what| match t.to_f64()[..] {
            [v] => Ok(v),
            _ => Err(format!(
                "{what} must hold one value, found shape {:?}",
                t.shape
            )),
        };
        let (s, l, d) = (
            one(self, "start")?,
            one(limit, "limit")?,
            one(delta, "delta")?,
        );
        if d == 0.0 {
            return Err("delta is 0".into());
        }
        let n = ((l - s) / d).ceil().max(0.0) as usize;
        let v = (0..n).map(|i| s + i as f64 * d);
        Ok(if self.is_float() || limit.is_float() || delta.is_float() {
            ConstTensor::f32(vec![n], v.map(|x| x as f32).collect())
        } else {
            ConstTensor::i64(vec![n], v.map(|x| x as i64).collect())
        })
    }

    /// Booleans (1 or 0, as integers): whether `f` holds for each value.
    pub fn truth(&self, f: impl Fn(f64) -> bool) -> ConstTensor {
        let v = self.to_f64().into_iter().map(|x| i64::from(f(x))).collect();
        ConstTensor::i64(self.shape.clone(), v)
    }

    /// ONNX Where with `self` the condition: `a` where it is not zero, else `b`, with numpy broadcasting; the
    /// result is float if either value is.
    pub fn select(&self, a: &ConstTensor, b: &ConstTensor) -> Result<ConstTensor, String> {
        let float = a.is_float() || b.is_float();
        broadcast_map(
            &[self, a, b],
            float,
            |v| if v[0] != 0.0 { v[1] } else { v[2] },
        )
    }

    fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            ConstData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            ConstData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Selects `indices` along `axis` (ONNX Gather).
    pub fn gather(&self, axis: usize, indices: &ConstTensor) -> Result<ConstTensor, String> {
        let dim = *self.shape.get(axis).ok_or("axis out of range")?;
        let outer: usize = self.shape[..axis].iter().product();
        let inner: usize = self.shape[axis + 1..].iter().product();
        let idx: Vec<usize> = indices
            .to_i64()
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + dim as i64 } else { i };
                if j < 0 || j >= dim as i64 {
                    Err(format!("index {i} out of range for dim {dim}"))
                } else {
                    Ok(j as usize)
                }
            })
            .collect::<Result<_, _>>()?;
        let mut shape = self.shape[..axis].to_vec();
        shape.extend_from_slice(&indices.shape);
        shape.extend_from_slice(&self.shape[axis + 1..]);
        let pick = |o: usize, j: usize, k: usize| (o * dim + j) * inner + k;
        let order: Vec<usize> = (0..outer)
            .flat_map(|o| {
                idx.iter()
                    .flat_map(move |&j| (0..inner).map(move |k| pick(o, j, k)))
            })
            .collect();
        Ok(self.pick(shape, &order))
    }

    /// ONNX Transpose.
    pub fn transpose(&self, perm: &[usize]) -> Result<ConstTensor, String> {
        let rank = self.shape.len();
        if perm.len() != rank {
            return Err(format!("perm {perm:?} does not fit rank {rank}"));
        }
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        Ok(self.rearranged(shape, |idx, strides| {
            (0..rank).map(|d| idx[d] * strides[perm[d]]).sum()
        }))
    }

    /// ONNX Slice along the given axes.
    /// The elements an [`ir::Slice`] reads; unlike an activation's, a constant's first axis may be sliced.
    pub fn slice(&self, sl: &ir::Slice) -> ConstTensor {
        let rank = self.shape.len();
        self.rearranged(sl.lens.clone(), |idx, strides| {
            (0..rank).map(|d| sl.index(d, idx[d]) * strides[d]).sum()
        })
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) & 1) as u32;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign << 31,
        (0, f) => {
            // subnormal
            let v = f as f32 / 1024.0 * 2f32.powi(-14);
            return if sign == 1 { -v } else { v };
        }
        (31, f) => (sign << 31) | (0xff << 23) | (f << 13),
        (e, f) => (sign << 31) | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// `f` of the operands' values at each element of their numpy-broadcast shape, as float or integer data.
fn broadcast_map(
    operands: &[&ConstTensor],
    float: bool,
    f: impl Fn(&[f64]) -> f64,
) -> Result<ConstTensor, String> {
    let mut shape: Vec<usize> = Vec::new();
    for t in operands {
        shape = amp_device::ir::broadcast(&shape, &t.shape)?;
    }
    let values: Vec<Vec<f64>> = operands.iter().map(|t| t.to_f64()).collect();
    let mut at = vec![0.0; operands.len()];
    let v = (0..shape.iter().product::<usize>()).map(|i| {
        for ((a, t), vals) in at.iter_mut().zip(operands).zip(&values) {
            *a = vals[amp_device::ir::broadcast_offset(&shape, &t.shape, i)];
        }
        f(&at)
    });
    Ok(if float {
        ConstTensor::f32(shape.clone(), v.map(|x| x as f32).collect())
    } else {
        ConstTensor::i64(shape.clone(), v.map(|x| x as i64).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::node::slice_ranges;

    #[test]
    fn gather_and_slice_fold_shape_arithmetic() {
        let shape = ConstTensor::i64(vec![4], vec![1, 32, 7, 7]);
        let n = shape.gather(0, &ConstTensor::i64(vec![], vec![0])).unwrap();
        assert_eq!(n, ConstTensor::i64(vec![], vec![1]));
        let sl = |st, en, step| slice_ranges(&[4], &[st], &[en], &[0], &[step]).unwrap();
        assert_eq!(shape.slice(&sl(1, i64::MAX, 1)).to_i64(), vec![32, 7, 7]);
        assert_eq!(shape.slice(&sl(-1, -5, -1)).to_i64(), vec![7, 7, 32, 1]);
        assert_eq!(shape.slice(&sl(-1, i64::MIN, -2)).to_i64(), vec![7, 32]);
        assert!(slice_ranges(&[4], &[3], &[1], &[0], &[1]).is_err());
    }

    #[test]
    fn transpose_of_a_constant() {
        let t = ConstTensor::i64(vec![2, 3], vec![1, 2, 3, 4, 5, 6]);
        let r = t.transpose(&[1, 0]).unwrap();
        assert_eq!(
            (r.shape.clone(), r.to_i64()),
            (vec![3, 2], vec![1, 4, 2, 5, 3, 6])
        );
    }

    /// The shape arithmetic exporters write for a Reshape target (`Where(Equal(shape, -1), 1, shape)`) folds:
    /// booleans as integers 0 and 1, the selection broadcast, the result integer unless a value is float.
    #[test]
    fn equal_and_where_of_constants_fold() {
        let shape = ConstTensor::i64(vec![3], vec![2, -1, 4]);
        let eq = shape
            .binary(&ConstTensor::i64(vec![], vec![-1]), |a, b| {
                f64::from(u8::from(a == b))
            })
            .unwrap()
            .truth(|v| v != 0.0);
        assert_eq!(eq, ConstTensor::i64(vec![3], vec![0, 1, 0]));
        let ones = ConstTensor::i64(vec![1], vec![1]);
        assert_eq!(
            eq.select(&ones, &shape).unwrap(),
            ConstTensor::i64(vec![3], vec![2, 1, 4])
        );
        let half = ConstTensor::f32(vec![], vec![0.5]);
        assert_eq!(
            eq.truth(|v| v == 0.0).select(&half, &shape).unwrap(),
            ConstTensor::f32(vec![3], vec![0.5, -1.0, 0.5])
        );
    }

    /// Range as exporters write it for positions (`arange(seq)`) and with a negative or fractional step.
    #[test]
    fn range_of_constants() {
        let i = |v: i64| ConstTensor::i64(vec![], vec![v]);
        assert_eq!(
            i(0).range(&i(4), &i(1)).unwrap(),
            ConstTensor::i64(vec![4], vec![0, 1, 2, 3])
        );
        assert_eq!(i(10).range(&i(4), &i(-3)).unwrap().to_i64(), vec![10, 7]);
        assert_eq!(i(4).range(&i(0), &i(1)).unwrap().numel(), 0);
        let half = ConstTensor::f32(vec![], vec![0.5]);
        assert_eq!(
            i(0).range(&i(2), &half).unwrap(),
            ConstTensor::f32(vec![4], vec![0.0, 0.5, 1.0, 1.5])
        );
        assert!(i(0).range(&i(2), &i(0)).is_err());
        assert!(ConstTensor::i64(vec![2], vec![0, 1])
            .range(&i(2), &i(1))
            .is_err());
    }

    #[test]
    fn half_precision_decodes() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.25 * (1.0 + 341.0 / 1024.0));
    }
}
