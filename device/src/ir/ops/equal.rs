//! Equal: whether the values two inputs stand for are equal, element by element with numpy broadcasting (a
//! constant operand of any broadcastable shape). The result is boolean: exact, never quantized
//! ([`super::OpDef::logical`]); it is read as a condition (Where), by Not or through a Cast to float.

logical_op!(Equal, binary_shape);
