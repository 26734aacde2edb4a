"""Quantization numerics: FP8 codecs, integer group quantization, FireQ scaling, and quantized
GEMM / attention error against fp32 (issue 14)."""
