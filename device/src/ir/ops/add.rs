//! Add: element-wise a + b.
//!
//! HTP fuses a lone Relu/Clip reader into it: measured in the one-op suite, Add → Clip(0, 6) was 5 LSB off
//! with double rounding, ≤ 1 LSB without.

binary_op!(Add, act_reads_exact: true);
