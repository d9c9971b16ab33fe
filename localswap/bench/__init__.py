"""Everything behind `python -m localswap bench` (suite.py runs the sections: machine limits,
extraction, training and its faceswap baseline, conversion, time to quality), with the sample
media the benchmarks and the tests build from photos that ship inside packages (samples.py),
and `python -m localswap doctor` (doctor.py: every CUDA path run once on this machine)."""
