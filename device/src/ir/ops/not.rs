//! Not: the negation of a boolean tensor (an Equal, a Cast to bool, another Not).

logical_op!(Not, same_shape);
