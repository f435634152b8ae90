//! lagerkoll connector against its simulator (to be written).
