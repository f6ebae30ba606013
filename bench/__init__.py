"""OrderHub benchmarks. Run the flash-sale benchmark with ``python -m bench.flash_sale``."""
