"""Accuracy harness: measures real PyTorch memory on the CPU and compares it with the engine.

Needs the optional extra `validate` (torch, transformers, peft); nothing in the service imports
this package. `python -m validation.run` (or `make validate`) runs every case of `cases.py` in a
fresh process (`python -m validation.measure <case>`) and writes `docs/accuracy.md`;
`--device cuda` (`make validate-gpu`) runs them on a CUDA GPU and adds a GPU section.
"""
