//! Simulator: lagerkoll (to be written).
