//! Min: element-wise minimum; a constant operand of any broadcastable shape bounds a tensor per channel,
//! say (a Relu with a per-channel ceiling).
//!
//! A Relu/Clip reading it requantizes Min's rounded result, unlike after Add: read as the exact minimum, a Min
//! → Relu chain agreed with HTP on 85% of elements, read rounded on 99.3% (host/tests/qnn_ops.rs).

binary_op!(Min, act_reads_exact: false);
