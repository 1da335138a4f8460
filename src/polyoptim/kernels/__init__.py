"""Kernels: run a rule over tensors (eager torch ops, foreach buckets; fused later)."""
