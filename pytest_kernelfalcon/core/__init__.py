"""The shared floor: records and rules both sides of the trust boundary use (no parent machinery)."""
