//! host tests
